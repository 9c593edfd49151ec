/**
 * Strategies: *how* a keyspace is cached. Each is a combinator over the
 * effect that loads (or writes) the value; it keeps that effect's `A`, `E` and
 * `R`, and adds only `Cachet` to `R` (and `CacheStoreError` to `E` in strict
 * mode).
 *
 * | strategy | read speed | write speed | consistency | complexity |
 * |---|---|---|---|---|
 * | `cacheAside` | hit: memory speed; miss: loader | n/a | fresh within `ttl` | low |
 * | `staleWhileRevalidate` | always memory speed once warm | n/a | may serve up to `ttl + staleFor` old | low |
 * | `refreshAhead` | memory speed for keys read steadily | n/a | fresh within `ttl`, refreshed before it | medium |
 * | `writeThrough` | (reads: any strategy) | source + one cache write | cache = source after each write | low |
 * | `writeBehind` | (reads: any strategy) | one cache write; source later | source lags; read-your-writes in this process | high |
 *
 * Background work (revalidations, refreshes, write-behind flushes) runs in
 * fibers owned by the `Cachet` layer: deduplicated per key, interrupted (or,
 * for write-behind, flushed) when the layer closes. Nothing is written to the
 * store once the layer starts closing.
 *
 * This module does not talk to any store: strategies run on the `Cachet`
 * runtime, which runs on whatever `CacheStore` its layer was given.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import { Effect as E, Layer } from "effect"
import type { PersistedQueueFactory } from "effect/persistence/PersistedQueue"
import type { Redis } from "effect/persistence/Redis"
import type { CacheEncodeError, CacheKeyError, CacheShuttingDown } from "./CacheError.ts"
import * as internalDurable from "./internal/durableWriteBehind.ts"
import type { Cachet } from "./internal/runtime/service.ts"
import * as internalWriteBehind from "./internal/runtime/writeBehind.ts"
import * as internal from "./internal/strategy.ts"
import type * as Keyspace from "./Keyspace.ts"

/**
 * Options shared by strategies.
 *
 * - `onStoreError`: `"degrade"` (default) reads a store failure as a miss and
 *   lets the loader answer, with `E` unchanged; `"fail"` surfaces it as
 *   `CacheStoreError` in `E`.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * const strict: Strategy.Options = { onStoreError: "fail" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly onStoreError?: "degrade" | "fail" | undefined
}

/**
 * The error a strategy adds for its options: `CacheStoreError` unless the
 * mode is provably degrade (absent or `"degrade"`). A widened
 * `Strategy.Options` value, or a mode chosen at run time, may be `"fail"`,
 * so it adds the error too.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * type E = Strategy.StrictError<{ onStoreError: "fail" }> // CacheStoreError
 * ```
 *
 * @since 0.1.0
 * @category type-level
 */
export type StrictError<O> = internal.StrictError<O>

/**
 * Options of the read strategies (`cacheAside`, `staleWhileRevalidate`,
 * `refreshAhead`, `readOnly`): the mode, and per-call overrides of the
 * keyspace's policy for what this call loads.
 *
 * - `ttl`, `staleFor`: the lifetimes of the entry this call stores, a
 *   duration or a function `(value, params) => Duration.Input`. Clamped to
 *   the keyspace's `maxTtl` (by default its static ttl: a call can shorten
 *   it, not lengthen it).
 * - `timeout`: `{ soft, hard }` for this call's wait (see
 *   `Keyspace.TimeoutOptions`); a bound given here replaces the keyspace's.
 *   A `hard` bound adds `CacheLoadTimeout` to `E`.
 * - `failureBackoff`: as the keyspace option.
 *
 * Read on a miss only: a hit costs the same with or without them.
 * `readOnly` never stores, so it ignores the lifetimes and timeouts.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * const options: Strategy.ReadOptions = { ttl: "10 seconds", timeout: { hard: "2 seconds" } }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ReadOptions extends internal.ReadOptions {}

/**
 * Options of a write (`writeThrough`, `Cachet.set`): the mode
 * (`onStoreError`), and `ttl` / `staleFor` for this value (a duration or a
 * function of the value and parameters), clamped to the keyspace's `maxTtl`
 * as for a read's overrides.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * const shortLived: Strategy.WriteOptions = { ttl: "30 seconds", staleFor: 0 }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface WriteOptions extends internal.WriteOptions {}

/**
 * A read strategy as a value, for `Cachet.cached` and `Strategy.layer`:
 * given a keyspace and parameters, a combinator over the loader.
 *
 * **Details**
 *
 * `cacheAside`, `staleWhileRevalidate`, `refreshAhead`, `readOnly` and
 * `bypass` are all `Strategy` values. For one with options, write a generic
 * arrow: `(keyspace, params) => Strategy.refreshAhead(keyspace, params, { at: 0.5 })`.
 *
 * @example
 * ```ts
 * import { Cachet, Strategy } from "cachet"
 * const pick: Strategy.Strategy = Strategy.cacheAside
 * const early: Strategy.Strategy = (keyspace, params) => Strategy.refreshAhead(keyspace, params, { at: 0.5 })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Strategy = <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P
) => <E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | EN, R | Cachet>

/**
 * `dual` for strategies, without `arguments`: effect's predicate form of
 * `dual` materialises `arguments` and spreads it into a closure on every call,
 * which is a third of the cost of a memory hit. Data-first when the first
 * argument is an Effect, exactly as `dualStrategy(f)`.
 */
const dualStrategy =
  <F extends (self: any, keyspace: any, params: any, options?: any) => any>(f: F): any =>
  (a: unknown, b: unknown, c: unknown, d: unknown) =>
    isEffect(a) ? f(a, b, c, d) : (self: unknown) => f(self, a, b, c)

/**
 * `Effect.isEffect` without its cost: it is `Predicate.hasProperty`, a `dual`
 * that inspects `arguments` (4% of a memory hit on the profile). Same test:
 * an object or function carrying Effect's type id.
 */
const isEffect = (u: unknown): u is E.Effect<unknown, unknown, unknown> =>
  (typeof u === "object" || typeof u === "function") && u !== null && E.TypeId in u

/**
 * The shape of a read strategy with options (`cacheAside`,
 * `staleWhileRevalidate`, `readOnly`): data-last for `.pipe`, or data-first.
 * It keeps the loader's `A`, `E` and `R`, adds `Cachet` to `R`, the keyspace's
 * errors (negative caching, `CacheLoadTimeout` with a hard timeout), in strict
 * mode `CacheStoreError`, and with a per-call hard timeout `CacheLoadTimeout`
 * to `E`.
 *
 * @example
 * ```ts
 * import { Strategy } from "cachet"
 * const pick: Strategy.ReadCombinator = Strategy.staleWhileRevalidate
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadCombinator {
  <P, A, EN, const O extends ReadOptions = {}>(
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): <E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | EN | StrictError<O> | Keyspace.TimeoutError<O>, R | Cachet>
  <A, E, R, P, EN, const O extends ReadOptions = {}>(
    self: Effect.Effect<A, E, R>,
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): Effect.Effect<A, E | EN | StrictError<O> | Keyspace.TimeoutError<O>, R | Cachet>
}

/**
 * The shape of a read strategy without options (`bypass`, `auto`).
 *
 * @example
 * ```ts
 * import { Strategy } from "cachet"
 * const pick: Strategy.PlainCombinator = Strategy.bypass
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface PlainCombinator {
  <P, A, EN>(
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P
  ): <E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | EN, R | Cachet>
  <A, E, R, P, EN>(
    self: Effect.Effect<A, E, R>,
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P
  ): Effect.Effect<A, E | EN, R | Cachet>
}

/**
 * Cache-aside (lazy loading): a fresh entry is returned; otherwise the loader
 * runs (once per key across concurrent callers) and its value is stored.
 *
 * **Details**
 *
 * - A stale entry (past `ttl`, inside `staleFor`) is not served, except as the
 *   fallback when the loader fails (stale-if-error).
 * - Loader failures are not cached, unless the keyspace asks for negative
 *   caching.
 * - In degrade mode (default) a store failure is logged, counted and read as
 *   a miss: the loader answers and `E` is unchanged. With
 *   `{ onStoreError: "fail" }` it fails with `CacheStoreError`.
 *
 * ```text
 * time ──────────────|ttl──────────────|ttl+staleFor──────▶
 *        fresh: hit  │ stale: load;    │ gone: load
 *                    │ stale if the    │
 *                    │ loader fails    │
 * ```
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const findUser = (id: number) => Effect.succeed(`user ${id}`)
 *
 * const getUser = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))
 * const getUserStrict = (id: number) => Strategy.cacheAside(findUser(id), Users, { id }, { onStoreError: "fail" })
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const cacheAside: ReadCombinator = internal.withPlan(
  dualStrategy(internal.cacheAside),
  internal.plans.cacheAside
)

/**
 * Stale-while-revalidate: a stale entry is served at once, and one
 * background reload of its key starts; readers never wait for the loader
 * once the key is warm (inside `ttl + staleFor`).
 *
 * **Details**
 *
 * - Fresh: a hit. Stale (past `ttl`, inside the keyspace's `staleFor`): the
 *   stale value is returned at once (counted as a `staleHit`) and a reload
 *   starts in the background, unless a load of that key is already in flight:
 *   1,000 concurrent readers of one stale key start one reload.
 * - The reload runs in a fiber of the `Cachet` layer, with the reader's
 *   context; it shares single-flight with foreground loads, so a reader of a
 *   gone entry waits on the running reload rather than loading again.
 * - A failed reload keeps the stale value (it is never replaced by an error,
 *   nor by a negative entry), and is counted (`revalidationFailures`, metric
 *   `cachet_revalidations_total{outcome="failure"}`) and logged. The next
 *   stale read tries again.
 * - Gone (past `ttl + staleFor`), missing or negative: as `cacheAside`.
 * - Closing the layer interrupts reloads in flight; none writes after that.
 *
 * ```text
 * createdAt          freshUntil (ttl)                 staleUntil (+staleFor)
 *     |───── fresh ─────|──────────── stale ────────────|──── gone ────▶
 *        hit               stale value at once,            load (wait)
 *                          one reload in the background
 *
 * reads:  r   r   r   r | r   r   r   r   r
 *                       | └─ reload ─┘  (one, for all of them)
 *                       |  served: old    new ▶
 * ```
 *
 * **Gotchas**
 *
 * A served value can be up to `ttl + staleFor` old for a key read rarely; for
 * a key read steadily, at most `ttl` plus the loader's run time. With
 * `staleFor` 0 this is `cacheAside`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 *
 * const Prices = Keyspace.make({ name: "price", key: "{sku}", value: Schema.Number, ttl: "30 seconds", staleFor: "10 minutes" })
 * const fetchPrice = (sku: string) => Effect.succeed(9.99)
 *
 * const price = (sku: string) => fetchPrice(sku).pipe(Strategy.staleWhileRevalidate(Prices, { sku }))
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const staleWhileRevalidate: ReadCombinator = internal.withPlan(
  dualStrategy(internal.staleWhileRevalidate),
  internal.plans.staleWhileRevalidate
)

/**
 * Options of {@link refreshAhead}.
 *
 * - `at`: the refresh point, as a fraction of the entry's ttl, in [0, 1].
 *   Default 0.8.
 * - `jitter`: moves each entry's refresh point earlier by up to
 *   `jitter * ttl`, by an amount fixed per entry (from a hash of its key and
 *   creation time, salted per runtime from Effect's `Random`), so that keys
 *   written together do not refresh in the same instant. In [0, `at`].
 *   Default 0 (off, and free).
 * - `beta`: probabilistic early refresh (XFetch): a read refreshes when
 *   `now - delta * beta * ln(random)` reaches the refresh point, `delta` being
 *   the keyspace's mean load time; the closer to the point, the likelier.
 *   Random numbers come from Effect's `Random`. Default 0 (off). 1 is the
 *   usual choice.
 * - `onStoreError`: as every strategy.
 *
 * Invalid values throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * const options: Strategy.RefreshAheadOptions = { at: 0.75, jitter: 0.1 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RefreshAheadOptions extends ReadOptions {
  readonly at?: number | undefined
  readonly jitter?: number | undefined
  readonly beta?: number | undefined
}

/**
 * Refresh-ahead: a fresh hit past the entry's refresh point (by default 80%
 * of its ttl) is served at once and also starts one background refresh, so a
 * key read steadily never expires and never makes a reader wait.
 *
 * **Details**
 *
 * - Before the refresh point: a hit, at the cost of cache-aside's (one
 *   comparison more).
 * - Past it, still fresh: the hit is served and a refresh starts in the
 *   `Cachet` layer's scope, unless a load of the key is in flight (one
 *   refresh per key, however many readers). The refreshed entry's ttl starts
 *   when the refresh started.
 * - Keys nobody reads are never refreshed: they expire as with cache-aside.
 * - Stale or gone: as `cacheAside` (load; stale-if-error).
 * - A failed refresh keeps the entry, is counted as a revalidation failure
 *   and logged; the next read past the point tries again.
 * - `jitter` or `beta` spread the refreshes of keys written together (see
 *   {@link RefreshAheadOptions}).
 *
 * ```text
 * createdAt           refresh point (at * ttl)   freshUntil (ttl)
 *     |──────── hit ────────|──── hit + one refresh ───|── stale: as cacheAside ──▶
 *                           └── refresh ──┘
 *                                         new entry: createdAt = refresh start
 * ```
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 *
 * const Rates = Keyspace.make({ name: "fx", key: "{pair}", value: Schema.Number, ttl: "1 minute" })
 * const fetchRate = (pair: string) => Effect.succeed(1.08)
 *
 * const rate = (pair: string) => fetchRate(pair).pipe(Strategy.refreshAhead(Rates, { pair }, { at: 0.8, jitter: 0.1 }))
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const refreshAhead: {
  <P, A, EN, const O extends RefreshAheadOptions = {}>(
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): <E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | EN | StrictError<O> | Keyspace.TimeoutError<O>, R | Cachet>
  <A, E, R, P, EN, const O extends RefreshAheadOptions = {}>(
    self: Effect.Effect<A, E, R>,
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): Effect.Effect<A, E | EN | StrictError<O> | Keyspace.TimeoutError<O>, R | Cachet>
} = internal.withPlan(
  ((...args: Array<any>) => {
    // Not `dual`: the data-last form validates its options (and builds the
    // refresh hook) once, when the combinator is made, not per read.
    if (isEffect(args[0])) return internal.refreshAhead(args[0], args[1], args[2], args[3])
    const keyspace = args[0] as Keyspace.Any
    const params: unknown = args[1]
    const options = args[2] as RefreshAheadOptions | undefined
    const hook = internal.refreshAheadHook(options)
    const strict = options?.onStoreError === "fail"
    return (self: Effect.Effect<unknown, unknown, unknown>) =>
      internal.readThrough(self, keyspace, params, strict, internal.loadOrStale, hook, options)
  }) as any,
  internal.plans.refreshAhead
)

/**
 * Write-through: runs the write (the effect returns the value as saved),
 * then stores that value in the cache, so the next read is a hit on what the
 * source holds.
 *
 * **Details**
 *
 * - The write fails: the cache is untouched and the failure is returned.
 * - The write succeeds, the cache write fails: the key is *invalidated*
 *   (deleted), never left holding the value from before the write. The
 *   failure is counted (degrade, default) or returned as `CacheStoreError`
 *   (strict; the source write has happened all the same).
 * - A value that does not satisfy the keyspace Schema is returned but not
 *   stored, and the key is invalidated.
 * - Loads of the key in flight when the write runs (which may have read the
 *   old value) do not store their result.
 * - Once the write has returned, no reader in this process sees the value from
 *   before it: if even the delete fails (the store is down), this process
 *   ignores the key's older entries until it can write or delete it, or until
 *   they have expired.
 *
 * ```text
 * caller ── write(source) ──ok──▶ cache.set(saved) ──ok──▶ saved
 *               │                       └fail─▶ cache.delete ──fail─▶ hide old entries here
 *               └fail─▶ error (cache untouched)
 * ```
 *
 * **Gotchas**
 *
 * When the store fails both the set and the delete, *other* instances that
 * share the store may serve the old entry until it expires (with
 * `TieredStore`, the invalidation bus tells them). After the layer has
 * closed, the write runs and the cache is not touched.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const saveUser = (id: number, name: string) => Effect.succeed(name) // returns the saved row
 *
 * const rename = (id: number, name: string) => saveUser(id, name).pipe(Strategy.writeThrough(Users, { id }))
 * // This value's own lifetime (clamped to the keyspace's maxTtl):
 * const renameBriefly = (id: number, name: string) =>
 *   saveUser(id, name).pipe(Strategy.writeThrough(Users, { id }, { ttl: "30 seconds" }))
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const writeThrough: {
  <P, A, EN, const O extends WriteOptions = {}>(
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): <E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StrictError<O>, R | Cachet>
  <A, E, R, P, EN, const O extends WriteOptions = {}>(
    self: Effect.Effect<A, E, R>,
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): Effect.Effect<A, E | StrictError<O>, R | Cachet>
} = dualStrategy(internal.writeThrough)

/**
 * The write-behind queue is full; the call was refused and nothing changed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Strategy } from "cachet"
 * declare const save: Effect.Effect<void, Strategy.WriteBehindQueueFull>
 * const handled = save.pipe(Effect.catchTag("WriteBehindQueueFull", (e) => Effect.logWarning(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const WriteBehindQueueFull: typeof internalWriteBehind.WriteBehindQueueFull =
  internalWriteBehind.WriteBehindQueueFull

/**
 * The type of {@link WriteBehindQueueFull}.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * const describe = (e: Strategy.WriteBehindQueueFull) => `${e.limit}: ${e.entries} entries`
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type WriteBehindQueueFull = internalWriteBehind.WriteBehindQueueFull

/**
 * A write-behind operation that could not be written, as given to
 * `onDeadLetter`.
 *
 * - `reason`: `"RetriesExhausted"` (the retry schedule gave up; the cache
 *   entry of a `set` was invalidated, unless a newer write of the key is
 *   queued) or `"Shutdown"` (still queued when the layer's shutdown deadline
 *   passed; the store is not touched during shutdown).
 * - `cause`: the last failure, or the interruption at shutdown.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Strategy } from "cachet"
 * const onDeadLetter = (letter: Strategy.DeadLetter) =>
 *   Effect.logError(`lost ${letter.op} of ${letter.key} (${letter.reason}, ${letter.attempts} attempts)`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type DeadLetter = internalWriteBehind.DeadLetter

/**
 * Write-behind options, given to `Cachet.layer({ writeBehind })`: one queue
 * per runtime, shared by every keyspace.
 *
 * | option | default | meaning |
 * |---|---|---|
 * | `maxEntries` | 10,000 | operations queued or being written; a new key past it fails with `WriteBehindQueueFull` |
 * | `maxBytes` | 64 MiB | bytes of queued values (by `sizeOf`); same policy |
 * | `sizeOf` | structural estimate | bytes of a value; called once per queued write |
 * | `batchSize` | 100 | operations per batch; a batch starts early when this many are queued |
 * | `concurrency` | 8 | writers at once within a batch |
 * | `flushInterval` | 1 second | how long a write waits, coalescing later writes of its key, before it is attempted |
 * | `retry` | 5 retries, exponential from 100 ms | `Schedule` of the retries of a failed write (its input is the failure) |
 * | `shutdownTimeout` | 10 seconds | on close, how long to keep writing what is queued |
 * | `onDeadLetter` | none | called with each operation given up |
 *
 * Invalid values throw at `Cachet.layer(...)`, naming the option.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import type { Strategy } from "cachet"
 * const options: Strategy.WriteBehindOptions = {
 *   maxEntries: 50_000,
 *   flushInterval: "500 millis",
 *   retry: Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 30 })),
 *   onDeadLetter: (letter) => Effect.logError(`lost write of ${letter.key}`)
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type WriteBehindOptions = internalWriteBehind.WriteBehindOptions

/**
 * What writes a value to the source in {@link writeBehind}: an effect, or a
 * function of the value (its input must be the keyspace's value type).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Strategy } from "cachet"
 * const writer: Strategy.Writer<string, never, never> = (name) => Effect.log(`UPDATE users SET name = ${name}`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Writer<A, E, R> = internal.Writer<A, E, R>

/**
 * Write-behind: stores the value in the cache at once and queues the write
 * to the source; a background flusher owned by the `Cachet` layer writes it
 * later, coalesced and in batches.
 *
 * **Details**
 *
 * - The call returns once the value is cached and the write queued
 *   (acknowledged). `E` holds only the reasons it can be refused:
 *   `WriteBehindQueueFull` (the queue is at `maxEntries` or `maxBytes`:
 *   nothing is cached or queued; fall back to a synchronous write if you
 *   wish), `CacheShuttingDown` (the layer is closing), `CacheEncodeError`
 *   (the value fails its Schema), `CacheKeyError`; and `CacheStoreError` in
 *   strict mode when the cache write failed (the write is queued all the
 *   same).
 * - Per key, the last write wins; operations of one key are never written
 *   concurrently, so a {@link deleteBehind} is never resurrected by an older
 *   write. A write waits `flushInterval`, then goes out in batches; a failed
 *   one is retried on the `retry` schedule, then dead-lettered (counted,
 *   logged, handed to `onDeadLetter`, its cache entry invalidated).
 * - Read-your-writes in this process: a read that misses while the key's
 *   write is queued answers with the queued value, not the source's.
 * - Closing the layer writes what is queued within `shutdownTimeout` and
 *   dead-letters the rest (reason `Shutdown`). The README's "writeBehind"
 *   section has the timeline.
 * - The writer runs with the caller's context (captured at the call), so `R`
 *   is required here, at the call.
 *
 * **Gotchas**
 *
 * The queue lives in this process: a crash loses what is queued. Coalescing
 * assumes the writer *sets* the state of the key (an increment would lose
 * updates). Options are per runtime, from `Cachet.layer({ writeBehind })`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const saveUser = (id: number) => (name: string) => Effect.log(`UPDATE users SET name = '${name}' WHERE id = ${id}`)
 *
 * const rename = (id: number, name: string) => Strategy.writeBehind(Users, { id }, name, saveUser(id))
 *
 * const CacheLive = Cachet.layerMemory({ writeBehind: { flushInterval: "200 millis" } })
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const writeBehind: <P, A, EN, E, R, const O extends Options = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P,
  value: NoInfer<A>,
  writer: Writer<NoInfer<A>, E, R>,
  options?: O
) => Effect.Effect<
  void,
  CacheShuttingDown | WriteBehindQueueFull | CacheEncodeError | CacheKeyError | StrictError<O>,
  R | Cachet
> = internal.writeBehind

/**
 * The delete of {@link writeBehind}: deletes the cache entry at once and
 * queues `deleter` for the source, coalesced with the key's writes (last
 * operation wins; an older queued or failing write never lands after it).
 *
 * **Details**
 *
 * Errors as `writeBehind`. If the cache delete fails, this process ignores the
 * key's older entries until it can write or delete it.
 *
 * **Gotchas**
 *
 * Until the delete reaches the source, a read that misses runs the loader,
 * which still finds the row: its value is returned but not cached.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const removeUser = (id: number) => Strategy.deleteBehind(Users, { id }, Effect.log(`DELETE FROM users WHERE id = ${id}`))
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const deleteBehind: <P, A, EN, E, R, const O extends Options = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P,
  deleter: Effect.Effect<unknown, E, R>,
  options?: O
) => Effect.Effect<void, CacheShuttingDown | WriteBehindQueueFull | CacheKeyError | StrictError<O>, R | Cachet> =
  internal.deleteBehind

/**
 * Writes what write-behind has queued now, without waiting for
 * `flushInterval`; resolves when each of those operations is written,
 * dead-lettered, or replaced by a newer one. Retries keep their schedule.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Strategy } from "cachet"
 * const beforeReport = Strategy.flushWriteBehind.pipe(Effect.andThen(Effect.log("source is up to date")))
 * ```
 *
 * @since 0.1.0
 * @category write-behind
 */
export const flushWriteBehind: Effect.Effect<void, never, Cachet> = internal.flushWriteBehind

/**
 * The durable write-behind queue could not take the write (its backend
 * failed, or the parameters are not JSON); nothing was cached.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Strategy } from "cachet"
 * declare const save: Effect.Effect<void, Strategy.WriteBehindPersistError>
 * const handled = save.pipe(Effect.catchTag("WriteBehindPersistError", (e) => Effect.logError(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const WriteBehindPersistError: typeof internalDurable.WriteBehindPersistError =
  internalDurable.WriteBehindPersistError

/**
 * The type of {@link WriteBehindPersistError}.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * const describe = (e: Strategy.WriteBehindPersistError) => `${e.keyspace}: ${e.message}`
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type WriteBehindPersistError = internalDurable.WriteBehindPersistError

/**
 * The durable write-behind service, provided by
 * {@link layerDurableWriteBehind} and required by {@link writeBehindDurable}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Strategy } from "cachet"
 * declare const program: Effect.Effect<void, never, Strategy.DurableWriteBehind>
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const DurableWriteBehind: typeof internalDurable.DurableWriteBehind = internalDurable.DurableWriteBehind

/**
 * The type of the {@link DurableWriteBehind} service.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * type Needs = Strategy.DurableWriteBehind
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export type DurableWriteBehind = internalDurable.DurableWriteBehind

/**
 * How durable write-behind writes one keyspace to the source; built with
 * {@link durableWriter}.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * declare const writers: ReadonlyArray<Strategy.DurableWriter<never>>
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type DurableWriter<R> = internalDurable.DurableWriter<R>

/**
 * Registers how a keyspace is written to the source in durable mode: `set`
 * gets the value (decoded from the queue) and the parameters; `delete` (for
 * {@link deleteBehindDurable}) the parameters.
 *
 * **Gotchas**
 *
 * Writers run later, possibly in another process after a restart: they get
 * everything from their arguments and the layer's context, never from the
 * call site. Parameters travel as JSON.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const usersWriter = Strategy.durableWriter(Users, {
 *   set: (name, params) => Effect.log(`UPDATE users SET name = '${name}' WHERE id = ${params.id}`),
 *   delete: (params) => Effect.log(`DELETE FROM users WHERE id = ${params.id}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const durableWriter = <P, A, EN, E1, R1, E2 = never, R2 = never>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  handlers: {
    readonly set: (value: A, params: P) => Effect.Effect<unknown, E1, R1>
    readonly delete?: ((params: P) => Effect.Effect<unknown, E2, R2>) | undefined
  }
): DurableWriter<R1 | R2> => ({ keyspace, set: handlers.set, delete: handlers.delete })

/**
 * Options of {@link layerDurableWriteBehind}.
 *
 * - `queue`: the `PersistedQueue` name. Give each instance its own, stable
 *   across restarts (a pod name): per-key order holds within one consumer.
 *   On Redis Cluster, put it in a hash tag (`"{cachet-wb-pod-1}"`) so the
 *   queue's keys share a slot.
 * - `writers`: one {@link durableWriter} per keyspace.
 * - `retry`: `Schedule` of in-place retries of a failed write (input: the
 *   failure). Default: none (a failure is a dead letter at once).
 * - `onDeadLetter`: called with each write given up.
 * - `maxTrackedKeys`: keys whose newest sequence number is remembered, to
 *   skip older writes (last write wins). Default 100,000.
 *
 * @example
 * ```ts
 * import { Schedule } from "effect"
 * import type { Strategy } from "cachet"
 * const options: Strategy.DurableOptions<never> = {
 *   queue: "cachet-wb-pod-1",
 *   writers: [],
 *   retry: Schedule.exponential("200 millis").pipe(Schedule.upTo({ times: 8 }))
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DurableOptions<R> extends internalDurable.DurableOptions<R> {}

/**
 * Durable write-behind: the queue lives in a `PersistedQueue` (effect's
 * persistence), so a write acknowledged by {@link writeBehindDurable}
 * survives a crash of the process; a worker in this layer writes it to the
 * source, and after a crash another process on the same queue does.
 *
 * **Details**
 *
 * - Requires a `PersistedQueueFactory`: on Redis,
 *   `PersistedQueue.layer` over `PersistedQueue.layerStoreRedis()` over
 *   `IoRedis.layer(...)` (which provides effect's `Redis` service on the
 *   project's ioredis client); in tests, over `PersistedQueue.layerStoreMemory`.
 * - One worker takes one operation at a time and retries it in place, so
 *   nothing of this process overtakes a failing write; an operation older
 *   than one this process queued or wrote for its key is skipped (last write
 *   wins; a delete is never resurrected).
 * - Delivery is at least once: a write taken by a process that crashed before
 *   acknowledging it is taken again (after the queue's lock expiry: within
 *   12.5 s of the crash with {@link layerDurableQueueRedis}'s defaults; 90 s
 *   and more with effect's `layerStoreRedis()` defaults), so writers must be
 *   idempotent.
 * - Dead letters as in-memory write-behind: counted, logged, `onDeadLetter`,
 *   cache entry invalidated.
 * - Closing the layer stops the worker; what is queued stays queued for the
 *   next process on this queue (nothing is lost, nothing is dead-lettered).
 *
 * ```text
 * call ── PersistedQueue.offer (acknowledged, durable) ── cache.set ──▶ ok
 * worker: take ── superseded? skip ── writer (retry in place) ──ok──▶ ack
 *                                                └gave up─▶ dead letter, ack
 * crash:  queued and unacknowledged writes are taken by the next process
 * ```
 *
 * **Gotchas**
 *
 * No coalescing in the queue itself: each operation is stored; older ones
 * are skipped when taken. Several processes taking from one queue may write
 * one key's operations out of order: use a queue per instance.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Schema } from "effect"
 * import * as PersistedQueue from "effect/persistence/PersistedQueue"
 * import { Cachet, Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const Durable = Strategy.layerDurableWriteBehind({
 *   queue: "cachet-wb-pod-1",
 *   writers: [Strategy.durableWriter(Users, { set: (name, p) => Effect.log(`save ${p.id}: ${name}`) })]
 * }).pipe(
 *   Layer.provideMerge(Cachet.layerMemory()),
 *   Layer.provide(PersistedQueue.layer),
 *   Layer.provide(PersistedQueue.layerStoreMemory)
 * )
 * const rename = Strategy.writeBehindDurable(Users, { id: 1 }, "Ada").pipe(Effect.provide(Durable))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDurableWriteBehind: <R>(
  options: DurableOptions<R>
) => Layer.Layer<DurableWriteBehind, never, PersistedQueueFactory | Cachet | R> = internalDurable.layer

/**
 * Options of {@link layerDurableQueueRedis}.
 *
 * - `lockExpiration`: how long a write taken by a worker stays locked to it
 *   without a refresh. A live worker refreshes its locks every
 *   `recoveryInterval`; a crashed one does not, and its write is taken again
 *   once the lock expired. Default 10 seconds (effect's own default is 90).
 * - `recoveryInterval`: how often expired locks are looked for (and live
 *   locks refreshed). At most half of `lockExpiration`. Default 2 seconds.
 * - `pollInterval`: how often the queue is polled for writes offered by other
 *   processes (and recovered ones). Default 500 ms.
 * - `prefix`: of the queue's Redis keys. Default effect's `"effectq:"`.
 *
 * **Details**
 *
 * Delivery bound: a write that a crashed process held is taken again within
 * `lockExpiration + recoveryInterval + pollInterval` (12.5 s with the
 * defaults) of the crash, once a process on the queue runs.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * const options: Strategy.DurableQueueRedisOptions = { lockExpiration: "5 seconds", recoveryInterval: "1 second" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DurableQueueRedisOptions extends internalDurable.QueueRedisOptions {}

/**
 * The `PersistedQueueFactory` that {@link layerDurableWriteBehind} needs, on
 * Redis (effect's `PersistedQueue.layer` over `PersistedQueue.layerStoreRedis`),
 * with timings for a cache: a write held by a crashed process comes back in
 * seconds, not minutes.
 *
 * **Details**
 *
 * Requires effect's `Redis` service (`IoRedis.layer` provides it). A write
 * taken by a process that was killed before it finished is taken again within
 * `lockExpiration + recoveryInterval + pollInterval` of the kill (default
 * 10 s + 2 s + 500 ms = 12.5 s; see {@link DurableQueueRedisOptions}). The
 * layer waits (up to 10 s) for Redis to answer before it starts the queue.
 *
 * **Gotchas**
 *
 * - A live worker whose process stalls (a blocked event loop) for longer
 *   than `lockExpiration - recoveryInterval` loses its lock, and its write
 *   may be taken again by another process: delivery is at least once, so
 *   writers must be idempotent. Raise `lockExpiration` for writers that can
 *   block the process that long.
 * - effect 4.1's Redis store stops its lock recovery at the first Redis
 *   error it meets; this layer catches the errors of that one script (a
 *   rate-limited warning) so that recovery goes on after an outage. It
 *   recognises the script by its text: a test fails if an effect upgrade
 *   changes it.
 * - Invalid options (a bad duration, `recoveryInterval` above half of
 *   `lockExpiration`) throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Schema } from "effect"
 * import { Cachet, Keyspace, Strategy } from "cachet"
 * import { IoRedis } from "cachet/redis"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const Durable = Strategy.layerDurableWriteBehind({
 *   queue: "cachet-wb-pod-1",
 *   writers: [Strategy.durableWriter(Users, { set: (name, p) => Effect.log(`save ${p.id}: ${name}`) })]
 * }).pipe(
 *   Layer.provideMerge(Cachet.layerMemory()),
 *   Layer.provide(Strategy.layerDurableQueueRedis({ lockExpiration: "10 seconds" })),
 *   Layer.provide(IoRedis.layer({ url: "redis://localhost:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDurableQueueRedis: (
  options?: DurableQueueRedisOptions
) => Layer.Layer<PersistedQueueFactory, never, Redis> = internalDurable.layerQueueRedis

/**
 * Durable {@link writeBehind}: persists the write in the durable queue
 * (acknowledged once the queue's backend has it), then caches the value. The
 * source is written later by the keyspace's {@link durableWriter}.
 *
 * **Details**
 *
 * Fails with `WriteBehindPersistError` when the queue cannot take it (nothing
 * cached), `CacheShuttingDown`, `CacheEncodeError`, `CacheKeyError`, and
 * `CacheStoreError` in strict mode (the write is queued all the same). Dies
 * when no writer is registered for the keyspace.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const rename = (id: number, name: string) => Strategy.writeBehindDurable(Users, { id }, name)
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const writeBehindDurable: <P, A, EN, const O extends Options = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P,
  value: NoInfer<A>,
  options?: O
) => Effect.Effect<
  void,
  CacheShuttingDown | WriteBehindPersistError | CacheEncodeError | CacheKeyError | StrictError<O>,
  DurableWriteBehind | Cachet
> = internalDurable.writeBehindDurable as any

/**
 * Durable {@link deleteBehind}: persists the delete, then deletes the cache
 * entry; the keyspace's {@link durableWriter} `delete` runs later.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const remove = (id: number) => Strategy.deleteBehindDurable(Users, { id })
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const deleteBehindDurable: <P, A, EN, const O extends Options = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P,
  options?: O
) => Effect.Effect<
  void,
  CacheShuttingDown | WriteBehindPersistError | CacheKeyError | StrictError<O>,
  DurableWriteBehind | Cachet
> = internalDurable.deleteBehindDurable as any

/**
 * Never caches: the loader runs on every call. A `Strategy` value, to switch
 * caching off for a whole program (`Strategy.layerDefault(Strategy.bypass)`)
 * or a keyspace, in tests or during an incident.
 *
 * ```text
 * read ──▶ loader ──▶ value      (the cache is neither read nor written)
 * ```
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const live = Effect.succeed("Ada").pipe(Strategy.bypass(Users, { id: 1 }))
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const bypass: PlainCombinator = internal.withPlan(dualStrategy(internal.bypass), internal.plans.bypass)

/**
 * Reads the cache, never writes it: a fresh entry is served; otherwise the
 * loader runs for this caller (no single-flight) and its value is returned,
 * not stored. A stale entry is the fallback if the loader fails.
 *
 * ```text
 * read ──▶ fresh? ──yes──▶ value
 *            │no
 *            ▼
 *          loader ──ok──▶ value (not stored)
 *                 └fail─▶ stale value if inside staleFor, else the error
 * ```
 *
 * **Gotchas**
 *
 * Use it for a replica or a tool that must not change what the cache holds.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const peek = Effect.succeed("Ada").pipe(Strategy.readOnly(Users, { id: 1 }))
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const readOnly: ReadCombinator = internal.withPlan(dualStrategy(internal.readOnly), internal.plans.readOnly)

/**
 * The strategy of a keyspace taken from context: the one given by
 * {@link layer} for this keyspace, else by {@link layerDefault}, else
 * `cacheAside`. `Cachet.cached` without a strategy uses it too.
 *
 * **Details**
 *
 * Write call sites with `auto` and choose the policy with Layers: production
 * provides `Strategy.layer(Users, Strategy.staleWhileRevalidate)`, a test
 * provides `Strategy.layerDefault(Strategy.bypass)`, and no call site changes.
 * Costs one context lookup (two without a per-keyspace layer) per call.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const getUser = (id: number) => Effect.succeed("Ada").pipe(Strategy.auto(Users, { id }))
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const auto: PlainCombinator = dualStrategy(internal.auto)

/**
 * Provides the strategy of one keyspace, for {@link auto} and
 * `Cachet.cached` without a strategy. Layers for different keyspaces merge
 * freely; the innermost layer for one keyspace wins.
 *
 * @example
 * ```ts
 * import { Layer, Schema } from "effect"
 * import { Cachet, Keyspace, Strategy } from "cachet"
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes", staleFor: "1 hour" })
 * const Policies = Layer.mergeAll(
 *   Strategy.layer(Users, Strategy.staleWhileRevalidate),
 *   Cachet.layerMemory()
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <P, A, EN>(keyspace: Keyspace.Keyspace<P, A, EN>, strategy: Strategy): Layer.Layer<never> =>
  Layer.succeed(internal.referenceFor(keyspace.name), strategy as internal.AnyStrategy)

/**
 * Provides the strategy of every keyspace that has none of its own (see
 * {@link layer}), for {@link auto} and `Cachet.cached`. With
 * `Strategy.bypass` or `Strategy.readOnly`, it switches a whole program's
 * caching policy without touching a call site.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Strategy } from "cachet"
 * declare const program: Effect.Effect<void>
 * const uncached = program.pipe(Effect.provide(Strategy.layerDefault(Strategy.bypass)))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDefault = (strategy: Strategy): Layer.Layer<never> =>
  Layer.succeed(internal.DefaultStrategy, strategy as internal.AnyStrategy)
