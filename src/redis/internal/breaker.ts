/**
 * The Redis store's circuit breakers, one per node (effect's `CircuitBreaker`,
 * in memory, keyed by node: `"standalone"`, or a Cluster master's
 * `host:port`): consecutive outages of a node open its circuit, calls to that
 * node then fail fast, and a background probe (a PING on the layer's own
 * fiber, never a caller's call) closes it again once the node answers.
 *
 * @internal
 */
import { Cause, Duration, Effect, Exit, FiberMap, Option, type Scope, Stream } from "effect"
import { CircuitBreaker } from "effect/persistence"
import type { CacheStoreError } from "../../CacheError.ts"
import { sleepReal, storeError } from "./io.ts"

/** Runs a call to `node` through that node's breaker (or as is, with breakers off). */
export type Guard = <A>(
  op: string,
  node: string,
  effect: Effect.Effect<A, CacheStoreError>
) => Effect.Effect<A, CacheStoreError>

/**
 * The state of one node's breaker, as `RedisStore.nodeStates` reports it.
 *
 * - `state`: `"Closed"` (calls pass), `"Open"` (calls fail fast with
 *   `CircuitOpen`; a background probe runs), `"HalfOpen"` (the probe is in flight).
 * - `failures`: calls to the node that failed with `Timeout`/`Unavailable`.
 * - `rejected`: calls refused by the open circuit.
 * - `openings`: times the circuit opened from closed.
 * - `probes`: background probes sent (each a PING).
 * - `redirects`: MOVED/ASK replies followed (Cluster only).
 */
export interface NodeState {
  readonly node: string
  readonly state: "Closed" | "Open" | "HalfOpen"
  readonly failures: number
  readonly rejected: number
  readonly openings: number
  readonly probes: number
  readonly redirects: number
}

interface Counters {
  failures: number
  rejected: number
  openings: number
  probes: number
  redirects: number
}

/** The breakers of one store. */
export interface Breakers {
  readonly guard: Guard
  /** Every node seen so far, with its breaker's state and counters. */
  readonly states: Effect.Effect<ReadonlyArray<NodeState>>
  /** Counts a MOVED/ASK redirect followed on a call to `node`. */
  readonly redirected: (node: string) => void
  /** A connection to `node` became ready (or the topology changed): probe now rather than at the next tick. */
  readonly wake: (node?: string) => void
}

/** How the background probe reaches a node; `"gone"` when the node no longer owns anything. */
export interface Probe {
  readonly ping: (node: string) => Effect.Effect<void, CacheStoreError>
  readonly gone: (node: string) => boolean
}

/**
 * The breakers of one store, living in the current scope; `undefined`
 * settings turn them off (calls run as they are; counters still count).
 */
export const make = (
  settings: { readonly failures: number; readonly openFor: number } | undefined,
  probe: Probe
): Effect.Effect<Breakers, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const counters = new Map<string, Counters>()
    const countersOf = (node: string): Counters => {
      let c = counters.get(node)
      if (c === undefined) {
        c = { failures: 0, rejected: 0, openings: 0, probes: 0, redirects: 0 }
        counters.set(node, c)
      }
      return c
    }
    const breaker =
      settings === undefined
        ? undefined
        : yield* CircuitBreaker.make({
            tripPolicy: CircuitBreaker.consecutive(settings.failures),
            openDuration: Duration.millis(settings.openFor)
          }).pipe(Effect.provide(CircuitBreaker.layerStoreMemory()))

    // The probe fibers, one per open node: owned by the layer's scope.
    const probes = yield* FiberMap.make<string>()
    const wakers = new Map<string, () => void>()

    const classify = (exit: Exit.Exit<unknown, CacheStoreError>): CircuitBreaker.Outcome => {
      if (Exit.isSuccess(exit)) return CircuitBreaker.success
      const error = Cause.findErrorOption(exit.cause)
      if (Option.isNone(error)) return CircuitBreaker.ignored
      return error.value.reason === "Protocol" ? CircuitBreaker.ignored : CircuitBreaker.failure()
    }

    const throughBreaker = <A>(
      active: CircuitBreaker.CircuitBreaker,
      op: string,
      node: string,
      effect: Effect.Effect<A, CacheStoreError>
    ): Effect.Effect<A, CacheStoreError> =>
      active
        .execute(effect, { key: node, classify })
        .pipe(
          Effect.mapError((error) =>
            error._tag === "CircuitBreakerError"
              ? storeError(op, error.reason._tag === "CircuitBreakerStoreError" ? "Unavailable" : "CircuitOpen", error)
              : error
          )
        )

    /**
     * Waits `millis` on a real timer (I/O pacing, see `io.ts`'s `sleepReal`),
     * or less when `wake` is called for the node.
     */
    const pause = (node: string, millis: number): Effect.Effect<void> =>
      Effect.raceFirst(
        sleepReal(millis),
        Effect.callback<void>((resume) => {
          wakers.set(node, () => resume(Effect.void))
          return Effect.sync(() => wakers.delete(node))
        })
      )

    /**
     * While the node's circuit is not closed: a PING through the breaker
     * (admitted as the half-open probe once the open window has passed),
     * then a pause of `openFor` (cut short by `wake`). Ends when the circuit
     * closes, or when the node owns nothing any more (a failed-over master).
     */
    const probeLoop = (active: CircuitBreaker.CircuitBreaker, node: string, openFor: number): Effect.Effect<void> =>
      Effect.gen(function* () {
        while (!probe.gone(node)) {
          const state = yield* Effect.orElseSucceed(active.state(node), () => undefined)
          if (state?._tag === "Closed") return
          if (state?._tag === "Open") {
            const exit = yield* Effect.exit(
              active.execute(
                Effect.suspend(() => {
                  countersOf(node).probes++
                  return probe.ping(node)
                }),
                { key: node, classify }
              )
            )
            if (Exit.isSuccess(exit)) return
            // Still inside the open window: try again as soon as it ends.
            const tooEarly = Cause.findErrorOption(exit.cause).pipe(
              Option.exists((e) => e._tag === "CircuitBreakerError" && e.reason._tag === "CircuitOpen")
            )
            yield* pause(node, tooEarly ? Math.max(5, openFor / 10) : openFor)
          } else {
            yield* pause(node, Math.max(5, openFor / 10))
          }
        }
      })

    // When the loop ends (closed, or the node owns nothing any more), the
    // node's calls take the fast path again; one that fails records anew.
    const ensureProbe = (active: CircuitBreaker.CircuitBreaker, node: string, openFor: number): Effect.Effect<void> =>
      Effect.asVoid(
        FiberMap.run(
          probes,
          node,
          Effect.ensuring(
            probeLoop(active, node, openFor),
            Effect.sync(() => unhealthy.delete(node))
          ),
          { onlyIfMissing: true }
        )
      )

    if (breaker !== undefined && settings !== undefined) {
      yield* breaker.transitions.pipe(
        Stream.runForEach((t) => {
          if (t.to === "Open" && t.from === "Closed") {
            countersOf(t.key).openings++
            return Effect.andThen(
              ensureProbe(breaker, t.key, settings.openFor),
              Effect.logWarning(
                `cachet: Redis circuit opened for ${t.key} after consecutive failures; calls to it fail fast, a background PING probes it every ${Duration.format(t.retryAfter)}`
              )
            )
          }
          // A failed probe reopens the circuit: once per `openFor` while a
          // node is down, so at debug level.
          if (t.to === "Open")
            return Effect.logDebug(`cachet: Redis circuit reopened for ${t.key} after a failed probe`)
          if (t.to === "Closed")
            return Effect.logInfo(`cachet: Redis circuit closed for ${t.key}; the node answers again`)
          return Effect.logDebug(`cachet: Redis circuit half-open for ${t.key}; probing`)
        }),
        Effect.forkIn(scope, { startImmediately: true })
      )
    }

    // Fast path, per node: while a node's circuit is closed with no failure
    // counted, a call to it runs without admission or recording (a success
    // there changes nothing). Its first failure is recorded after the fact
    // and turns the fast path off for that node; from then on its calls go
    // through the breaker, until one succeeds with the circuit closed again.
    // While the circuit is open or half-open, callers fail at once and never
    // probe: the probe fiber does.
    const unhealthy = new Set<string>()
    const countFailure = (node: string, error: CacheStoreError): void => {
      if (error.reason === "Timeout" || error.reason === "Unavailable") countersOf(node).failures++
    }
    const onFirstFailure = (active: CircuitBreaker.CircuitBreaker, node: string, error: CacheStoreError) =>
      Effect.suspend(() => {
        countFailure(node, error)
        if (error.reason === "Protocol") return Effect.void
        unhealthy.add(node)
        return Effect.ignore(active.execute(Effect.fail(error), { key: node, classify }))
      })

    const guard: Guard = (op, node, effect) => Effect.suspend(() => guardNow(op, node, effect))
    const guardNow: Guard = (op, node, effect) => {
      if (!counters.has(node)) countersOf(node)
      const active = breaker
      if (active === undefined || settings === undefined) {
        return Effect.tapError(effect, (error) => Effect.sync(() => countFailure(node, error)))
      }
      if (!unhealthy.has(node)) return Effect.tapError(effect, (error) => onFirstFailure(active, node, error))
      return Effect.flatMap(
        Effect.orElseSucceed(active.state(node), () => undefined),
        (state) => {
          if (state !== undefined && state._tag !== "Closed") {
            countersOf(node).rejected++
            return Effect.andThen(
              ensureProbe(active, node, settings.openFor),
              Effect.fail(
                storeError(op, "CircuitOpen", new Error(`the circuit of ${node} is ${state._tag.toLowerCase()}`))
              )
            )
          }
          const counted = Effect.tapError(effect, (error) => Effect.sync(() => countFailure(node, error)))
          return Effect.tap(throughBreaker(active, op, node, counted), () =>
            Effect.ignore(
              Effect.map(active.state(node), (now) => {
                if (now._tag === "Closed") unhealthy.delete(node)
              })
            )
          )
        }
      )
    }

    const states: Effect.Effect<ReadonlyArray<NodeState>> = Effect.suspend(() =>
      Effect.forEach([...counters.keys()], (node) =>
        Effect.map(
          breaker === undefined
            ? Effect.succeed<NodeState["state"]>("Closed")
            : Effect.orElseSucceed(
                Effect.map(breaker.state(node), (s) => s._tag),
                () => "Open" as const
              ),
          (state): NodeState => ({ node, state, ...countersOf(node) })
        )
      )
    )

    const wake = (node?: string) => {
      if (node === undefined) for (const w of [...wakers.values()]) w()
      else wakers.get(node)?.()
    }

    return {
      guard,
      states,
      redirected: (node) => {
        countersOf(node).redirects++
      },
      wake
    }
  })
