/**
 * The cachet runtime: the service every strategy runs on.
 *
 * **Details**
 *
 * - Single-flight: concurrent misses for one key in one process run the
 *   loader once. A caller's interruption does not cancel a load that others
 *   still wait on; the load stops when nobody waits any more.
 * - Loads run in fibers owned by the layer's scope; closing the layer
 *   interrupts them.
 * - Tags: `invalidateTag` records the time of the invalidation in the store;
 *   an entry whose tag was invalidated at or after its creation is gone. No
 *   per-tag key sets, so it works the same on every store.
 * - Stats: plain counters per keyspace, exposed by {@link stats} and as
 *   Effect `Metric`s with a `keyspace` attribute (no per-key labels).
 *
 * This module does not pick a store: provide one with a `CacheStore` layer
 * (memory, Redis, tiered), or use {@link layerMemory}.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option } from "effect"
import type * as Request from "effect/Request"
import type * as RequestResolver from "effect/RequestResolver"
import {
  type CacheEncodeError,
  CacheKeyError,
  CacheShuttingDown,
  type CacheStoreError,
  type CacheValueTooLarge
} from "./CacheError.ts"
import * as CacheStore from "./CacheStore.ts"
import * as internalBatch from "./internal/batch.ts"
import { make as makeRuntime } from "./internal/runtime/make.ts"
import * as internal from "./internal/runtime/service.ts"
import { FRESH, GONE, STALE } from "./internal/runtime/service.ts"
import * as internalStrategy from "./internal/strategy.ts"
import type * as Keyspace from "./Keyspace.ts"
import type * as Strategy from "./Strategy.ts"

/**
 * The runtime service. Strategies and the functions of this module require
 * it; provide it with {@link layer} or {@link layerMemory}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cachet } from "cachet"
 *
 * const program = Effect.gen(function*() {
 *   const runtime = yield* Cachet.Cachet
 *   return runtime.store.name
 * }).pipe(Effect.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const Cachet: typeof internal.Cachet = internal.Cachet

/**
 * The runtime service's type.
 *
 * @since 0.1.0
 * @category services
 */
export type Cachet = internal.Cachet

/**
 * Options of {@link layer}.
 *
 * - `tagRetention`: how long a tag invalidation is remembered; entries with
 *   tags live at most this long. Default 1 day.
 * - `logInterval`: least time between two warnings about failures of one
 *   kind. Default 10 seconds.
 * - `metricPrefix`: prefix of metric names. Default `"cachet"`.
 * - `writeBehind`: the write-behind queue (bounds, batching, retry schedule,
 *   shutdown deadline, `onDeadLetter`); see `Strategy.WriteBehindOptions`.
 *
 * @example
 * ```ts
 * import type { Cachet } from "cachet"
 * const options: Cachet.Options = { tagRetention: "12 hours" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Options = internal.RuntimeOptions

/**
 * A snapshot of the runtime's counters, in total and per keyspace.
 *
 * - `hits`, `misses`, `staleHits`: requests by result; `hitRate` is
 *   (hits + staleHits) / requests.
 * - `loads`, `loadFailures`: loader runs (single-flight shares one run).
 * - `sets`, `deletes`: entries written and deleted.
 * - `errors`: every cache-side error, split into `storeErrors`,
 *   `decodeErrors`, `encodeErrors`, `keyErrors`.
 * - `store`: the store's entries, bytes and evictions, where it keeps them.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cachet } from "cachet"
 * const report = Effect.map(Cachet.stats, (s: Cachet.CacheStats) => `${(s.hitRate * 100).toFixed(1)}% hits`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type CacheStats = internal.CacheStats

/**
 * The counters of one keyspace (see {@link CacheStats}).
 *
 * @example
 * ```ts
 * import type { Cachet } from "cachet"
 * const rate = (s: Cachet.KeyspaceStats) => s.hitRate
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type KeyspaceStats = internal.KeyspaceStats

/**
 * The runtime, on the `CacheStore` in context. The layer's scope owns the
 * runtime's fibers and metric series.
 *
 * **Gotchas**
 *
 * Invalid options throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet, CacheStore } from "cachet"
 *
 * const CacheLive = Cachet.layer().pipe(Layer.provide(CacheStore.layerMemory({ capacity: 10_000 })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Cachet, never, CacheStore.CacheStore> =>
  Layer.effect(internal.Cachet, makeRuntime(options))

/**
 * The runtime on the embedded in-memory store, in one layer. It also provides
 * the `CacheStore`, for tests that want to look at it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cachet } from "cachet"
 *
 * const main = Effect.void.pipe(Effect.provide(Cachet.layerMemory({ capacity: 50_000 })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (
  options?: Options & CacheStore.MemoryOptions
): Layer.Layer<Cachet | CacheStore.CacheStore> =>
  layer(options).pipe(Layer.provideMerge(CacheStore.layerMemory(options)))

/**
 * An entry as read, with where it is on its timeline.
 *
 * @example
 * ```ts
 * import type { Cachet } from "cachet"
 * const age = (e: Cachet.Entry<string>, now: number) => now - e.createdAt
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry<A> {
  readonly value: A
  readonly state: "fresh" | "stale"
  readonly createdAt: number
  readonly freshUntil: number
  readonly staleUntil: number
  readonly tags: ReadonlyArray<string>
}

/** Reads a non-negative entry that is fresh or stale; counts hit/stale/miss. */
const readEntry = <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P
): Effect.Effect<Option.Option<Entry<A>>, never, Cachet> =>
  Effect.flatMap(internal.service, (rt) => {
    if (rt.isClosed()) return Effect.succeed(Option.none())
    const state = rt.stateOf(keyspace)
    const key = rt.keyOf(state, params)
    if (key === undefined) return Effect.succeed(Option.none())
    return Effect.map(Effect.orDie(rt.read(state, key, false)), (entry) => {
      const where = entry === undefined || entry.negative ? GONE : rt.stateNow(entry)
      if (where === GONE || entry === undefined) {
        state.counters.misses++
        return Option.none()
      }
      if (where === FRESH) state.counters.hits++
      else state.counters.staleHits++
      return Option.some({
        value: entry.value as A,
        state: where === STALE ? "stale" : "fresh",
        createdAt: entry.createdAt,
        freshUntil: entry.freshUntil,
        staleUntil: entry.staleUntil,
        tags: entry.tags
      })
    })
  })

/**
 * The fresh value of an entry, if any. A stale entry reads as `None` (use
 * {@link getEntry} to see it). Store failures read as `None`.
 *
 * @example
 * ```ts
 * import { Effect, Option, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })
 * const program = Effect.gen(function*() {
 *   yield* Cachet.set(Users, { id: 1 }, "Ada")
 *   return yield* Cachet.get(Users, { id: 1 }) // Option.some("Ada")
 * }).pipe(Effect.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const get = <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P
): Effect.Effect<Option.Option<A>, never, Cachet> =>
  Effect.map(readEntry(keyspace, params), (entry) =>
    Option.isSome(entry) && entry.value.state === "fresh" ? Option.some(entry.value.value) : Option.none()
  )

/**
 * The entry for `params` if it is fresh or stale, with its timeline.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute", staleFor: "1 hour" })
 * const state = Cachet.getEntry(Users, { id: 1 }).pipe(Effect.map((e) => e._tag === "Some" ? e.value.state : "gone"))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const getEntry: <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P
) => Effect.Effect<Option.Option<Entry<A>>, never, Cachet> = readEntry

/**
 * Fresh values for many parameter sets, in one store round trip where the
 * store supports it (MGET on Redis).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })
 * const many = Cachet.getMany(Users, [{ id: 1 }, { id: 2 }]) // Effect<Array<Option<string>>>
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const getMany = <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: ReadonlyArray<P>
): Effect.Effect<Array<Option.Option<A>>, never, Cachet> =>
  Effect.flatMap(internal.service, (rt) => {
    if (rt.isClosed()) return Effect.succeed(params.map(() => Option.none()))
    const state = rt.stateOf(keyspace)
    const keys = params.map((p) => rt.keyOf(state, p))
    const present = keys.filter((k): k is string => k !== undefined)
    // The read path's visibility rules (hidden keys, tags), in one store call.
    return Effect.map(rt.readMany(state, present), (entries) => {
      const byKey = new Map<string, (typeof entries)[number]>()
      for (let i = 0; i < present.length; i++) byKey.set(present[i]!, entries[i])
      return keys.map((key) => {
        const entry = key === undefined ? undefined : byKey.get(key)
        if (entry === undefined || entry.negative || rt.stateNow(entry) !== FRESH) {
          state.counters.misses++
          return Option.none<A>()
        }
        state.counters.hits++
        return Option.some(entry.value as A)
      })
    })
  })

/**
 * Stores a value, fresh from now for the keyspace's `ttl`.
 *
 * **Details**
 *
 * The value is checked against the keyspace Schema first: one that does not
 * satisfy it fails with `CacheEncodeError` and nothing is stored. A store
 * failure is counted and ignored in degrade mode (default), or fails with
 * `CacheStoreError` with `{ onStoreError: "fail" }`. A load of the same key in
 * flight does not overwrite this value.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })
 * const program = Cachet.set(Users, { id: 1 }, "Ada").pipe(Effect.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category mutations
 */
export const set = <P, A, EN, const O extends Strategy.Options = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P,
  value: A,
  options?: O
): Effect.Effect<
  void,
  CacheEncodeError | CacheValueTooLarge | CacheKeyError | CacheShuttingDown | Strategy.StrictError<O>,
  Cachet
> =>
  Effect.flatMap(
    internal.service,
    (
      rt
    ): Effect.Effect<
      void,
      CacheEncodeError | CacheValueTooLarge | CacheKeyError | CacheShuttingDown | CacheStoreError
    > => {
      if (rt.isClosed()) return Effect.fail(new CacheShuttingDown({ op: "set" }))
      const state = rt.stateOf(keyspace)
      let key: string
      try {
        key = keyspace.keyUnsafe(params)
      } catch (error) {
        state.counters.keyErrors++
        return Effect.fail(
          error instanceof CacheKeyError
            ? error
            : new CacheKeyError({ keyspace: keyspace.name, message: String(error) })
        )
      }
      rt.invalidateFlights(key, true)
      return Effect.flatMap(
        rt.write(state, key, params, value, rt.clock.currentTimeMillisUnsafe(), false),
        (error): Effect.Effect<void, CacheEncodeError | CacheValueTooLarge | CacheStoreError> =>
          error === undefined || (error._tag === "CacheStoreError" && options?.onStoreError !== "fail")
            ? Effect.void
            : Effect.fail(error)
      )
    }
  ) as Effect.Effect<
    void,
    CacheEncodeError | CacheValueTooLarge | CacheKeyError | CacheShuttingDown | Strategy.StrictError<O>,
    Cachet
  >

const strictly = <O extends Strategy.Options>(
  options: O | undefined,
  error: CacheStoreError | undefined
): Effect.Effect<void, Strategy.StrictError<O>> =>
  (error !== undefined && options?.onStoreError === "fail" ? Effect.fail(error) : Effect.void) as Effect.Effect<
    void,
    Strategy.StrictError<O>
  >

/**
 * Deletes the entry for `params`. A load of that key in flight will not store
 * its result.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })
 * const evict = Cachet.invalidate(Users, { id: 1 })
 * ```
 *
 * @since 0.1.0
 * @category invalidation
 */
export const invalidate = <P, A, EN, const O extends Strategy.Options = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P,
  options?: O
): Effect.Effect<void, Strategy.StrictError<O>, Cachet> =>
  Effect.flatMap(internal.service, (rt) => {
    const state = rt.stateOf(keyspace)
    const key = rt.keyOf(state, params)
    if (key === undefined) return Effect.void
    rt.invalidateFlights(key, true)
    return Effect.flatMap(rt.remove(state, key), (error) =>
      // Not taken by the store: applied here at once and replayed later.
      error === undefined
        ? Effect.void
        : Effect.andThen(rt.journal({ _tag: "Key", state, key }), strictly(options, error))
    )
  })

/**
 * Invalidates every entry carrying `tag`, in every keyspace, on every
 * instance that shares the store. O(1): it records the time of the
 * invalidation; entries created at or before it read as gone.
 *
 * @example
 * ```ts
 * import { Cachet } from "cachet"
 * const orgChanged = (orgId: number) => Cachet.invalidateTag(`org:${orgId}`)
 * ```
 *
 * @since 0.1.0
 * @category invalidation
 */
export const invalidateTag = <const O extends Strategy.Options = {}>(
  tag: string,
  options?: O
): Effect.Effect<void, Strategy.StrictError<O>, Cachet> =>
  Effect.flatMap(internal.service, (rt) =>
    rt
      .invalidateTag(tag)
      .pipe(
        Effect.catch((error) =>
          rt
            .storeFailed(undefined, "tags", error)
            .pipe(
              Effect.andThen(rt.journal({ _tag: "Tag", tag, retainMillis: rt.tagRetention })),
              Effect.andThen(strictly(options, error))
            )
        )
      )
  )

/**
 * Deletes every entry of a keyspace (on Redis: SCAN with an exact MATCH on
 * every master, UNLINK in batches).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })
 * const clearUsers = Cachet.invalidateKeyspace(Users)
 * ```
 *
 * @since 0.1.0
 * @category invalidation
 */
export const invalidateKeyspace = <P, A, EN, const O extends Strategy.Options = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  options?: O
): Effect.Effect<number, Strategy.StrictError<O>, Cachet> =>
  Effect.flatMap(internal.service, (rt) => {
    const state = rt.stateOf(keyspace)
    const prefix = `${keyspace.name}:`
    rt.invalidateFlights(prefix, false)
    return rt.store.deletePrefix(prefix).pipe(
      Effect.tap((n) => Effect.sync(() => (state.counters.deletes += n))),
      Effect.catch((error) =>
        rt
          .storeFailed(state, "delete", error)
          .pipe(
            Effect.andThen(rt.journal({ _tag: "Keyspace", state })),
            Effect.andThen(Effect.as(strictly(options, error), 0))
          )
      )
    )
  })

/**
 * What {@link warm} did.
 *
 * @example
 * ```ts
 * import type { Cachet } from "cachet"
 * const summary = (r: Cachet.WarmResult) => `${r.loaded} loaded, ${r.skipped} already fresh, ${r.failed} failed`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface WarmResult {
  readonly loaded: number
  readonly skipped: number
  readonly failed: number
}

/**
 * Loads and stores entries ahead of demand. Entries already fresh are skipped
 * unless `force`; loads share single-flight with concurrent readers; a failed
 * load is counted, not raised.
 *
 * - `concurrency`: loads at once. Default 8.
 * - `force`: reload fresh entries too. Default false.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })
 * const warmUp = Cachet.warm(Users, [{ id: 1 }, { id: 2 }], (p) => Effect.succeed(`user ${p.id}`))
 * ```
 *
 * @since 0.1.0
 * @category mutations
 */
export const warm = <P, A, EN, E, R>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: Iterable<P>,
  loader: (params: P) => Effect.Effect<A, E, R>,
  options?: { readonly concurrency?: number | undefined; readonly force?: boolean | undefined }
): Effect.Effect<WarmResult, never, R | Cachet> =>
  Effect.flatMap(internal.service, (rt) => {
    const state = rt.stateOf(keyspace)
    let loaded = 0
    let skipped = 0
    let failed = 0
    return Effect.forEach(
      params,
      (p) => {
        const key = rt.keyOf(state, p)
        if (key === undefined) {
          failed++
          return Effect.void
        }
        const fresh: Effect.Effect<boolean> = options?.force
          ? Effect.succeed(false)
          : Effect.map(Effect.orDie(rt.read(state, key, false)), (e) => e !== undefined && rt.stateNow(e) === FRESH)
        return Effect.flatMap(fresh, (isFresh) => {
          if (isFresh) {
            skipped++
            return Effect.void
          }
          return Effect.map(rt.load(state, key, p, loader(p)), ({ exit }) => {
            if (exit._tag === "Success") loaded++
            else failed++
          })
        })
      },
      { concurrency: options?.concurrency ?? 8, discard: true }
    ).pipe(Effect.map(() => ({ loaded, skipped, failed })))
  }) as Effect.Effect<WarmResult, never, R | Cachet>

/**
 * A memoised function: `(params) => Effect<A, E, R | Cachet>`, cached in a
 * keyspace with a strategy.
 *
 * **Details**
 *
 * Without a strategy, the keyspace's strategy comes from context (see
 * `Strategy.auto`: `Strategy.layer`, then `Strategy.layerDefault`, then
 * `Strategy.cacheAside`), so a Layer can change it without touching the call
 * site.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })
 * const findUser = Cachet.cached(Users, (p: { readonly id: number }) => Effect.succeed(`user ${p.id}`), Strategy.cacheAside)
 * const ada = findUser({ id: 1 })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const cached = <P, A, EN, E, R>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  loader: (params: P) => Effect.Effect<A, E, R>,
  strategy?: Strategy.Strategy
): ((params: P) => Effect.Effect<A, E | EN, R | Cachet>) => {
  if (strategy === undefined) {
    return (params) => internalStrategy.auto(loader(params), keyspace, params)
  }
  return (params) => strategy(keyspace, params)(loader(params))
}

/**
 * A batched memoised function: `(params[]) => Effect<A[], E, R | Cachet>`,
 * cached in a keyspace, loading every miss of a call with one `loadMany`
 * call (cache-manager's `mget`, Caffeine's `getAll`, DataLoader).
 *
 * **Details**
 *
 * - One store read for all the keys of a call (the store's `getMany`:
 *   `MGET` on Redis, grouped by slot on a Cluster).
 * - Fresh entries answer; the others are loaded with one `loadMany` call,
 *   given each missing key's parameters once (duplicates in a call are
 *   loaded once). Keys that another reader is already loading are joined,
 *   not loaded again, and the batch's keys are joined by other readers
 *   (`Strategy.cacheAside` and the like) while it runs.
 * - The results are written in one batched store call (one script call per
 *   node on Redis), each key fenced by its own load start, as single loads
 *   are: a key invalidated or written while the batch ran keeps that newer
 *   state.
 * - `loadMany` must answer one value per parameter, in order (else the call
 *   dies, naming the counts). When it fails, keys with a stale value inside
 *   their window answer it (stale-if-error); if any key has none, the call
 *   fails. Loader failures are not cached (no negative caching here).
 * - The result is aligned with `params`. Parameters that cannot form a key
 *   (counted as key errors) are loaded with their own `loadMany` call, not
 *   cached.
 * - The keyspace's `ttl`/`staleFor` (functions too), and its hard timeout
 *   per key, apply.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
 * // SELECT ... WHERE id IN (...): one query for every miss of a call
 * const findUsers = (ps: ReadonlyArray<{ readonly id: number }>) => Effect.succeed(ps.map((p) => `user ${p.id}`))
 *
 * const getUsers = Cachet.cachedMany(Users, findUsers)
 * const three = getUsers([{ id: 1 }, { id: 2 }, { id: 3 }]) // Effect<ReadonlyArray<string>, never, Cachet>
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const cachedMany: <P, A, EN, E, R>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  loadMany: (params: ReadonlyArray<P>) => Effect.Effect<ReadonlyArray<A>, E, R>
) => (params: ReadonlyArray<P>) => Effect.Effect<ReadonlyArray<A>, E | EN, R | Cachet> = internalBatch.cachedMany as any

/**
 * Caching for `Effect.request` users: wraps a `RequestResolver` so that
 * requests are answered from a keyspace, and only the misses of a batch
 * reach the wrapped resolver, in one batch.
 *
 * **Details**
 *
 * The request itself is the keyspace's parameters (a request class with an
 * `id` field fits a `"{id}"` key), and its success type the keyspace's
 * value. A batch collected by effect's request machinery is read from the
 * store in one call; the misses go to the wrapped resolver as one batch
 * (its `batchKey`, `delay` and `collectWhile` are kept), with single-flight
 * and fenced writes as {@link cachedMany}. Each request completes with its
 * own result: one failing request does not fail the others.
 *
 * Built with the runtime in context (an effect needing `Cachet`); the
 * resolver it gives needs nothing more than the wrapped one.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import * as Request from "effect/Request"
 * import * as RequestResolver from "effect/RequestResolver"
 * import { Cachet, Keyspace } from "cachet"
 *
 * class GetUser extends Request.Class<{ readonly id: number }, string> {}
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
 * const fromDb = RequestResolver.make<GetUser>((entries) =>
 *   Effect.sync(() => entries.forEach((entry) => entry.completeUnsafe(Effect.succeed(`user ${entry.request.id}`) as never)))
 * )
 *
 * const program = Effect.gen(function* () {
 *   const users = yield* Cachet.resolver(Users, fromDb)
 *   return yield* Effect.forEach([1, 2, 3], (id) => Effect.request(new GetUser({ id }), users), { concurrency: "unbounded" })
 * }).pipe(Effect.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const resolver: <P, A, EN, Req extends Request.Request<A, any, any> & P>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  resolver: RequestResolver.RequestResolver<Req>
) => Effect.Effect<RequestResolver.RequestResolver<Req>, never, Cachet> = internalBatch.resolver as any

/**
 * A snapshot of the counters, in total and per keyspace.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cachet } from "cachet"
 * const logStats = Effect.flatMap(Cachet.stats, (s) => Effect.log(`hit rate ${s.hitRate}`))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats: Effect.Effect<CacheStats, never, Cachet> = Effect.flatMap(internal.service, (rt) => rt.stats)
