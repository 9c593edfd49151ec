/**
 * Batched loads over the runtime: `Cachet.cachedMany` and `Cachet.resolver`.
 * One store read for every key, one batch loader call for the misses (keys
 * already loading are joined), one batched, fenced write.
 *
 * @internal
 */
import { Cause, Effect, Exit } from "effect"
import * as Request from "effect/Request"
import * as RequestResolver from "effect/RequestResolver"
import type { Keyspace } from "../Keyspace.ts"
import { type BatchLoader, FRESH, GONE, type RuntimeService, service } from "./runtime/service.ts"

/**
 * The exit of every parameter (aligned), reading the cache once and loading
 * the misses with one `loader` call.
 */
const exitsOf = (
  rt: RuntimeService,
  keyspace: Keyspace<any, any, any>,
  params: ReadonlyArray<unknown>,
  loader: BatchLoader
): Effect.Effect<Array<Exit.Exit<unknown, unknown>>, never, unknown> => {
  if (params.length === 0) return Effect.succeed([])
  if (rt.closed) return Effect.map(loader(params), (exits) => [...exits])
  const state = rt.stateOf(keyspace)
  const keys = params.map((p) => rt.keyOf(state, p))
  const unique: Array<string> = []
  const firstParams = new Map<string, unknown>()
  // Parameters that cannot form a key (counted) are loaded, not cached.
  const uncached: Array<number> = []
  keys.forEach((key, i) => {
    if (key === undefined) uncached.push(i)
    else if (!firstParams.has(key)) {
      firstParams.set(key, params[i])
      unique.push(key)
    }
  })
  return Effect.flatMap(rt.readMany(state, unique), (entries) => {
    const exitOf = new Map<string, Exit.Exit<unknown, unknown>>()
    const toLoad: Array<{ readonly key: string; readonly params: unknown }> = []
    const stale = new Map<string, unknown>()
    unique.forEach((key, i) => {
      const entry = entries[i]
      const where = entry === undefined || entry.negative ? GONE : rt.stateNow(entry)
      if (where === FRESH) {
        state.counters.hits++
        exitOf.set(key, Exit.succeed(entry!.value))
        return
      }
      if (where !== GONE) stale.set(key, entry!.value)
      toLoad.push({ key, params: firstParams.get(key) })
    })
    const loaded =
      toLoad.length === 0
        ? Effect.void
        : Effect.map(rt.loadMany(state, toLoad, loader, state.policy), (results) => {
            results.forEach(({ exit }, i) => {
              const key = toLoad[i]!.key
              if (Exit.isFailure(exit) && stale.has(key) && !Cause.hasInterruptsOnly(exit.cause)) {
                // Stale-if-error, per key.
                state.counters.staleHits++
                exitOf.set(key, Exit.succeed(stale.get(key)))
                return
              }
              state.counters.misses++
              exitOf.set(key, exit)
            })
          })
    const direct =
      uncached.length === 0
        ? Effect.succeed([] as ReadonlyArray<Exit.Exit<unknown, unknown>>)
        : loader(uncached.map((i) => params[i]))
    return Effect.map(Effect.zip(loaded, direct, { concurrent: true }), ([, directExits]) => {
      const out: Array<Exit.Exit<unknown, unknown>> = new Array(params.length)
      keys.forEach((key, i) => {
        if (key !== undefined) out[i] = exitOf.get(key)!
      })
      uncached.forEach((i, j) => {
        out[i] = directExits[j]!
      })
      return out
    })
  })
}

/** A user's `loadMany` as a `BatchLoader`: one exit per parameter. */
const fromLoadMany =
  (loadMany: (params: ReadonlyArray<any>) => Effect.Effect<ReadonlyArray<unknown>, unknown, unknown>): BatchLoader =>
  (params) =>
    Effect.map(Effect.exit(Effect.suspend(() => loadMany(params))), (exit) => {
      if (Exit.isFailure(exit)) return params.map(() => exit)
      const values = exit.value
      if (!Array.isArray(values) || values.length !== params.length) {
        const defect = Exit.die(
          new Error(
            `cachet: Cachet.cachedMany: loadMany returned ${Array.isArray(values) ? values.length : typeof values} values for ${params.length} parameters; it must return one value per parameter, in order`
          )
        )
        return params.map(() => defect)
      }
      return values.map((value) => Exit.succeed(value))
    })

/** `Cachet.cachedMany`. */
export const cachedMany = (
  keyspace: Keyspace<any, any, any>,
  loadMany: (params: ReadonlyArray<any>) => Effect.Effect<ReadonlyArray<unknown>, unknown, unknown>
) => {
  const loader = fromLoadMany(loadMany)
  return (params: ReadonlyArray<unknown>): Effect.Effect<Array<unknown>, unknown, unknown> =>
    Effect.flatMap(service, (rt) =>
      Effect.flatMap(exitsOf(rt, keyspace, params, loader), (exits): Effect.Effect<Array<unknown>, unknown> => {
        const out: Array<unknown> = new Array(exits.length)
        for (let i = 0; i < exits.length; i++) {
          const exit = exits[i]!
          if (Exit.isFailure(exit)) return Effect.failCause(exit.cause)
          out[i] = exit.value
        }
        return Effect.succeed(out)
      })
    )
}

/** `Cachet.resolver`. */
export const resolver = <A extends Request.Any>(
  keyspace: Keyspace<any, any, any>,
  inner: RequestResolver.RequestResolver<A>
): Effect.Effect<RequestResolver.RequestResolver<A>, never, unknown> =>
  Effect.map(service, (rt) =>
    RequestResolver.makeWith<A>({
      batchKey: (entry) => inner.batchKey(entry),
      preCheck: inner.preCheck,
      delay: inner.delay,
      collectWhile: (entries) => inner.collectWhile(entries),
      runAll: (entries, batchKey) => {
        const byRequest = new Map<unknown, Request.Entry<A>>()
        for (const entry of entries) if (!byRequest.has(entry.request)) byRequest.set(entry.request, entry)
        // The misses go to the wrapped resolver as one batch, through entries
        // that record each result.
        const loader: BatchLoader = (requests) =>
          Effect.suspend(() => {
            const exits: Array<Exit.Exit<unknown, unknown> | undefined> = new Array(requests.length)
            const proxies = requests.map((request, i) => {
              const original = byRequest.get(request)!
              return Request.makeEntry<A>({
                request: request as A,
                context: original.context,
                uninterruptible: original.uninterruptible,
                completeUnsafe: (exit) => {
                  exits[i] = exit
                }
              })
            })
            return Effect.map(
              Effect.exit(inner.runAll(proxies as [Request.Entry<A>, ...Array<Request.Entry<A>>], batchKey)),
              (run) =>
                exits.map(
                  (exit) =>
                    exit ??
                    (Exit.isFailure(run)
                      ? run
                      : Exit.die(new Error("cachet: Cachet.resolver: the wrapped resolver did not complete a request")))
                )
            )
          })
        return Effect.map(
          exitsOf(
            rt,
            keyspace,
            entries.map((entry) => entry.request),
            loader
          ),
          (exits) => {
            entries.forEach((entry, i) => {
              entry.completeUnsafe(exits[i] as any)
            })
          }
        ) as Effect.Effect<void>
      }
    })
  )
