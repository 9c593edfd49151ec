/**
 * A fault-injecting wrapper around any `CacheStore`, for tests of how a
 * program behaves when its cache backend fails or slows down.
 *
 * **Details**
 *
 * Each store call fails with `CacheStoreError` (reason `Unavailable`, store
 * `"chaos"`) with probability `failRate`, after waiting `latency`. Randomness
 * comes from Effect's `Random` and waiting from Effect's `Clock`, so a test can
 * seed one and drive the other with `TestClock`. The wrapper hides the inner
 * store's synchronous fast path, so every read goes through the Effect path
 * that real remote stores take.
 *
 * `ChaosControl` changes the faults while the program runs (an outage that
 * starts and ends).
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Random } from "effect"
import { CacheStoreError } from "../CacheError.ts"
import { CacheStore, make } from "../CacheStore.ts"

/**
 * Fault settings.
 *
 * - `failRate`: probability in [0, 1] that a call fails. Default 0.
 * - `latency`: added to every call. Default none.
 * - `ops`: the operations affected. Default all.
 *
 * @example
 * ```ts
 * import type { ChaosStore } from "cachet/testing"
 * const outage: ChaosStore.Options = { failRate: 1 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly failRate?: number | undefined
  readonly latency?: Duration.Input | undefined
  readonly ops?: ReadonlyArray<Op> | undefined
}

/**
 * The store operations faults can target.
 *
 * @example
 * ```ts
 * import type { ChaosStore } from "cachet/testing"
 * const reads: ReadonlyArray<ChaosStore.Op> = ["get", "getMany"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Op =
  | "get"
  | "getMany"
  | "set"
  | "setMany"
  | "delete"
  | "deleteMany"
  | "deletePrefix"
  | "deletePattern"
  | "getTagTimes"
  | "setTagTime"
  | "ping"

/**
 * Changes the faults of a running `ChaosStore`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosStore } from "cachet/testing"
 *
 * const outage = Effect.gen(function*() {
 *   const chaos = yield* ChaosStore.ChaosControl
 *   yield* chaos.set({ failRate: 1 })
 *   // ... the program runs with its store down ...
 *   yield* chaos.set({ failRate: 0 })
 * })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class ChaosControl extends Context.Service<
  ChaosControl,
  {
    /** Replaces the fault settings. */
    readonly set: (options: Options) => Effect.Effect<void>
    /** How many calls were failed so far. */
    readonly injected: Effect.Effect<number>
  }
>()("cachet/testing/ChaosControl") {}

const validate = (
  options: Options
): { failRate: number; latency: Duration.Duration | undefined; ops: Set<Op> | undefined } => {
  const failRate = options.failRate ?? 0
  if (!(failRate >= 0 && failRate <= 1)) {
    throw new Error(`cachet: ChaosStore option "failRate" must be between 0 and 1, got ${String(options.failRate)}`)
  }
  return {
    failRate,
    latency: options.latency === undefined ? undefined : Duration.fromInputUnsafe(options.latency),
    ops: options.ops === undefined ? undefined : new Set(options.ops)
  }
}

/**
 * Wraps the `CacheStore` in context with fault injection, and provides a
 * `ChaosControl` to change the faults at run time.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet, CacheStore } from "cachet"
 * import { ChaosStore } from "cachet/testing"
 *
 * const Flaky = Cachet.layer().pipe(
 *   Layer.provideMerge(ChaosStore.layer({ failRate: 0.3, latency: "5 millis" })),
 *   Layer.provide(CacheStore.layerMemory())
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<CacheStore | ChaosControl, never, CacheStore> => {
  const initial = validate(options)
  return Layer.effectContext(
    Effect.gen(function* () {
      let settings = initial
      let injected = 0
      const inner = yield* CacheStore
      const chaos = <A, E>(op: Op, effect: Effect.Effect<A, E>): Effect.Effect<A, E | CacheStoreError> =>
        Effect.suspend(() => {
          const { failRate, latency, ops } = settings
          if (ops !== undefined && !ops.has(op)) return effect
          const fault: Effect.Effect<void, CacheStoreError> =
            failRate === 0
              ? Effect.void
              : Effect.flatMap(Random.next, (r) => {
                  if (r >= failRate) return Effect.void
                  injected++
                  return Effect.fail(new CacheStoreError({ reason: "Unavailable", op, store: "chaos" }))
                })
          const delayed = latency === undefined ? fault : Effect.andThen(Effect.sleep(latency), fault)
          return Effect.andThen(delayed, effect)
        })
      const store = make({
        name: `chaos(${inner.name})`,
        get: (key, codec) => chaos("get", inner.get(key, codec)),
        getMany: (keys, codec) => chaos("getMany", inner.getMany(keys, codec)),
        set: (key, entry, codec) => chaos("set", inner.set(key, entry, codec)),
        setMany: (entries, codec) => chaos("setMany", inner.setMany(entries, codec)),
        delete: (key) => chaos("delete", inner.delete(key)),
        deleteMany: (keys) => chaos("deleteMany", inner.deleteMany(keys)),
        deletePrefix: (prefix) => chaos("deletePrefix", inner.deletePrefix(prefix)),
        getTagTimes: (tags) => chaos("getTagTimes", inner.getTagTimes(tags)),
        setTagTime: (tag, time, retain) => chaos("setTagTime", inner.setTagTime(tag, time, retain)),
        ping: chaos("ping", inner.ping),
        info: inner.info,
        setOrdered:
          inner.setOrdered === undefined
            ? undefined
            : (key, entry, codec, elapsed, expect) =>
                chaos("set", inner.setOrdered!(key, entry, codec, elapsed, expect)),
        time: inner.time === undefined ? undefined : (key) => chaos("get", inner.time!(key)),
        getShared:
          inner.getShared === undefined ? undefined : (key, codec) => chaos("get", inner.getShared!(key, codec)),
        has: inner.has === undefined ? undefined : (keys) => chaos("getMany", inner.has!(keys)),
        deletePattern:
          inner.deletePattern === undefined
            ? undefined
            : (prefix, pattern) => chaos("deletePattern", inner.deletePattern!(prefix, pattern)),
        // Health and events are the inner store's (faults apply to its calls, not to these reports).
        health: inner.health,
        subscribe: inner.subscribe
      })
      const control = ChaosControl.of({
        set: (next) =>
          Effect.sync(() => {
            settings = validate(next)
          }),
        injected: Effect.sync(() => injected)
      })
      return Context.make(CacheStore, store).pipe(Context.add(ChaosControl, control))
    })
  )
}
