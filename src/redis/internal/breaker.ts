/**
 * The Redis store's circuit breaker (effect's `CircuitBreaker`, in memory):
 * consecutive outages open it, calls then fail fast until a probe succeeds.
 *
 * @internal
 */
import { Cause, Duration, Effect, Exit, Option, type Scope, Stream } from "effect"
import { CircuitBreaker } from "effect/persistence"
import type { CacheStoreError } from "../../CacheError.ts"
import type { BreakerHealth } from "../../internal/store.ts"
import { storeError } from "./connection.ts"

const BREAKER_KEY = "redis"

/** Runs a call through the breaker (or as is, with the breaker off). */
export type Guard = <A>(op: string, effect: Effect.Effect<A, CacheStoreError>) => Effect.Effect<A, CacheStoreError>

/** A guard that can also report its breakers' states (`Cachet.health`); none with the breaker off. */
export type GuardWithHealth = Guard & { readonly health: Effect.Effect<ReadonlyArray<BreakerHealth>> }

const healthOf = (state: CircuitBreaker.State["_tag"]): BreakerHealth["state"] =>
  state === "Closed" ? "closed" : state === "Open" ? "open" : "half-open"

/** The breaker of one store, living in the current scope; `undefined` settings turn it off. */
export const make = (
  settings: { readonly failures: number; readonly openFor: number } | undefined
): Effect.Effect<GuardWithHealth, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const breaker =
      settings === undefined
        ? undefined
        : yield* CircuitBreaker.make({
            tripPolicy: CircuitBreaker.consecutive(settings.failures),
            openDuration: Duration.millis(settings.openFor)
          }).pipe(Effect.provide(CircuitBreaker.layerStoreMemory()))

    if (breaker !== undefined) {
      yield* breaker.transitions.pipe(
        Stream.runForEach((t) =>
          t.to === "Open"
            ? Effect.logWarning(
                `cachet: Redis circuit opened after ${t.from === "HalfOpen" ? "a failed probe" : "consecutive failures"}; calls fail fast for ${Duration.format(t.retryAfter)}`
              )
            : t.to === "Closed"
              ? Effect.logInfo("cachet: Redis circuit closed; Redis answers again")
              : Effect.logDebug("cachet: Redis circuit half-open; probing")
        ),
        Effect.forkIn(scope, { startImmediately: true })
      )
    }

    const classify = (exit: Exit.Exit<unknown, CacheStoreError>): CircuitBreaker.Outcome => {
      if (Exit.isSuccess(exit)) return CircuitBreaker.success
      const error = Cause.findErrorOption(exit.cause)
      if (Option.isNone(error)) return CircuitBreaker.ignored
      return error.value.reason === "Protocol" ? CircuitBreaker.ignored : CircuitBreaker.failure()
    }

    const throughBreaker = <A>(
      active: CircuitBreaker.CircuitBreaker,
      op: string,
      effect: Effect.Effect<A, CacheStoreError>
    ): Effect.Effect<A, CacheStoreError> =>
      active
        .execute(effect, { key: BREAKER_KEY, classify })
        .pipe(
          Effect.mapError((error) =>
            error._tag === "CircuitBreakerError"
              ? storeError(op, error.reason._tag === "CircuitBreakerStoreError" ? "Unavailable" : "CircuitOpen", error)
              : error
          )
        )

    // Fast path: while the circuit is closed with no failure counted, a call
    // runs without admission or recording (a success there changes nothing).
    // Its first failure is recorded after the fact and turns the fast path
    // off; from then on every call goes through the breaker, until one
    // succeeds with the circuit closed again.
    let healthy = true
    const recordFailure = (active: CircuitBreaker.CircuitBreaker, error: CacheStoreError): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (error.reason === "Protocol") return Effect.void
        healthy = false
        return Effect.ignore(active.execute(Effect.fail(error), { key: BREAKER_KEY, classify }))
      })
    const markHealthy = (active: CircuitBreaker.CircuitBreaker): Effect.Effect<void> =>
      Effect.ignore(
        Effect.map(active.state(BREAKER_KEY), (state) => {
          if (state._tag === "Closed") healthy = true
        })
      )

    const guard = <A>(op: string, effect: Effect.Effect<A, CacheStoreError>): Effect.Effect<A, CacheStoreError> => {
      const active = breaker
      if (active === undefined) return effect
      return Effect.suspend(() =>
        healthy
          ? Effect.tapError(effect, (error) => recordFailure(active, error))
          : Effect.tap(throughBreaker(active, op, effect), () => markHealthy(active))
      )
    }

    // One breaker today, named for the store; per-node breakers report one entry per node.
    const health: Effect.Effect<ReadonlyArray<BreakerHealth>> =
      breaker === undefined
        ? Effect.succeed([])
        : breaker.state(BREAKER_KEY).pipe(
            Effect.map((state) => [{ node: BREAKER_KEY, state: healthOf(state._tag) }]),
            // The breaker's own store is in memory; should it fail, say open.
            Effect.orElseSucceed(() => [{ node: BREAKER_KEY, state: "open" as const }])
          )

    return Object.assign(guard, { health })
  })
