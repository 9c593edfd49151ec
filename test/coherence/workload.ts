/**
 * The coherence workload: clients (cache instances) run a random mix of slow
 * loads, explicit writes and invalidations against a versioned register per
 * key, and record the history the checker judges. Shared by
 * `test/coherence/` and `npm run soak -- --coherence`.
 */
import { Clock, type Context, Effect, Layer, Schema, type Scope } from "effect"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import type { Operation } from "./checker.ts"

export const Items = Keyspace.make({
  name: "item",
  key: "{id}",
  value: Schema.Number,
  ttl: "1 minute",
  tags: (p) => ["items", `item:${p.id}`]
})

/** A clock `offset` ms away from `base` (an instance whose clock is skewed). */
export const skewed = (base: Clock.Clock, offset: number): Clock.Clock => ({
  currentTimeMillisUnsafe: () => base.currentTimeMillisUnsafe() + offset,
  currentTimeMillis: Effect.sync(() => base.currentTimeMillisUnsafe() + offset),
  currentTimeNanosUnsafe: () => base.currentTimeNanosUnsafe() + BigInt(offset) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => base.currentTimeNanosUnsafe() + BigInt(offset) * 1_000_000n),
  monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
  monotonicTimeNanos: base.monotonicTimeNanos,
  sleep: (duration) => base.sleep(duration)
})

/**
 * An instance for fault runs: a RedisStore on `url` with short bounds (200 ms
 * calls, a breaker open 200 ms), a journal replayed every 50 ms, and a clock
 * `offset` ms off.
 */
export const faultTolerant = (
  url: string,
  prefix: string,
  offset: number
): Effect.Effect<Context.Context<Cachet.Cachet>, never, Scope.Scope> =>
  Effect.clockWith((base) =>
    Layer.build(
      Cachet.layer({ journalRetry: "50 millis" }).pipe(
        Layer.provide(
          RedisStore.layer({ url, prefix, commandTimeout: 200, breaker: { failures: 3, openFor: "200 millis" } })
        ),
        Layer.provide(Layer.succeed(Clock.Clock, skewed(base, offset)))
      )
    )
  )

export interface Client {
  readonly name: string
  readonly ctx: Context.Context<Cachet.Cachet>
}

/** Sleeps on a real timer (the workload runs in real time against real servers). */
const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const handle = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(handle))
  })

/**
 * Runs `ops` operations per client (concurrently across clients, one after
 * another within one) until done or until `until()` says stop; answers the
 * history. Deterministic choices from `seed`.
 */
export const runWorkload = (
  clients: ReadonlyArray<Client>,
  options: {
    readonly ops: number
    readonly seed?: number | undefined
    readonly keys?: number | undefined
    readonly until?: (() => boolean) | undefined
  }
): Effect.Effect<Array<Operation>, unknown> =>
  Effect.gen(function* () {
    const versions = new Map<number, number>()
    const history: Array<Operation> = []
    const t = () => performance.now()
    let seed = options.seed ?? 10
    const random = () => {
      seed = (seed * 16807) % 2147483647
      return seed / 2147483647
    }
    const keys = Array.from({ length: options.keys ?? 4 }, (_, i) => i + 1)
    const run = <A, E>(ctx: Context.Context<Cachet.Cachet>, effect: Effect.Effect<A, E, Cachet.Cachet>) =>
      Effect.provide(effect, ctx)
    const op = (client: Client) =>
      Effect.gen(function* () {
        const id = keys[Math.floor(random() * keys.length)]!
        const roll = random()
        const invokedAt = t()
        if (roll < 0.65) {
          const loadFor = Math.floor(random() * 15)
          const load = Effect.sync(() => versions.get(id) ?? 0).pipe(
            Effect.tap(() => (loadFor > 0 ? sleepReal(loadFor) : Effect.void))
          )
          const version = yield* run(client.ctx, load.pipe(Strategy.cacheAside(Items, { id })))
          history.push({ type: "read", client: client.name, key: String(id), version, invokedAt, completedAt: t() })
          return
        }
        const version = (versions.get(id) ?? 0) + 1
        versions.set(id, version)
        const how = Math.floor(random() * 4)
        if (how === 0) yield* run(client.ctx, Cachet.invalidate(Items, { id }))
        else if (how === 1) yield* run(client.ctx, Cachet.set(Items, { id }, version))
        else if (how === 2) yield* run(client.ctx, Cachet.invalidateTag(`item:${id}`))
        else yield* run(client.ctx, Cachet.invalidateTag("items"))
        const kind = ["invalidate", "set", "invalidateTag(item)", "invalidateTag(items)"][how]
        history.push({
          type: "write",
          client: `${client.name} ${kind}`,
          key: String(id),
          version,
          invokedAt,
          completedAt: t()
        })
      })
    yield* Effect.forEach(
      clients,
      (client) =>
        Effect.gen(function* () {
          for (let i = 0; i < options.ops && !(options.until?.() ?? false); i++) yield* op(client)
        }),
      { concurrency: "unbounded", discard: true }
    )
    return history
  })
