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
import { Effect, Layer, Option, type Queue, type Scope, Stream } from "effect"
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
import * as Glob from "./internal/glob.ts"
import { namespaceOf } from "./internal/runtime/keyspaces.ts"
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
 * - `tracing`: `"loads"` (default), `"all"` or `"off"`; see {@link TracingMode}.
 * - `traceKeys`: spans carry the key as `cachet.key`. Default false.
 * - `eventsCapacity`: events queued per {@link events} subscriber. Default 1024.
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

/** Reads a non-negative entry that is fresh or stale; counts hit/stale/miss unless `quiet`. */
const readEntry = <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P,
  quiet?: boolean
): Effect.Effect<Option.Option<Entry<A>>, never, Cachet> =>
  Effect.flatMap(internal.service, (rt) => {
    if (rt.closed) return Effect.succeed(Option.none())
    const state = rt.stateOf(keyspace)
    const key = rt.keyOf(state, params)
    if (key === undefined) return Effect.succeed(Option.none())
    return Effect.map(Effect.orDie(rt.read(state, key, false)), (entry) => {
      const where = entry === undefined || entry.negative ? GONE : rt.stateNow(entry)
      if (where === GONE || entry === undefined) {
        if (quiet !== true) {
          state.counters.misses++
          rt.observe.emitKey("Miss", state, key)
        }
        return Option.none()
      }
      // A peek (`quiet`) counts nothing and emits nothing, as on a miss.
      if (quiet !== true) {
        if (where === FRESH) state.counters.hits++
        else state.counters.staleHits++
        rt.observe.emitKey(where === FRESH ? "Hit" : "Stale", state, key)
      }
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
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
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
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute", staleFor: "1 hour" })
 * const state = Cachet.getEntry(Users, { id: 1 }).pipe(Effect.map((e) => e._tag === "Some" ? e.value.state : "gone"))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const getEntry = <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P
): Effect.Effect<Option.Option<Entry<A>>, never, Cachet> => readEntry(keyspace, params)

/**
 * The entry for `params` with its timeline, like {@link getEntry}, but
 * counting no hit or miss: for inspecting the cache (a dashboard, a test, a
 * debugging endpoint) without moving its hit rate.
 *
 * **Details**
 *
 * The read follows the same visibility rules as every read (tags, the
 * invalidation journal, hidden keys), so what it shows is what a strategy
 * would be served. A store failure is still counted as a store error and
 * reads as `None`; a key error as a key error. The memory store and the L1
 * of a `TieredStore` still note the read for their eviction policy.
 *
 * @example
 * ```ts
 * import { Effect, Option, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
 * const program = Effect.gen(function*() {
 *   yield* Cachet.set(Users, { id: 1 }, "Ada")
 *   const entry = yield* Cachet.peek(Users, { id: 1 }) // Option.some({ value: "Ada", state: "fresh", ... })
 *   const stats = yield* Cachet.stats // hits and misses unchanged
 *   return Option.map(entry, (e) => e.freshUntil - e.createdAt)
 * }).pipe(Effect.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const peek = <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P
): Effect.Effect<Option.Option<Entry<A>>, never, Cachet> => readEntry(keyspace, params, true)

/**
 * Fresh values for many parameter sets, in one store round trip where the
 * store supports it (MGET on Redis).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
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
    if (rt.closed) return Effect.succeed(params.map(() => Option.none()))
    const state = rt.stateOf(keyspace)
    const keys = params.map((p) => rt.keyOf(state, p))
    const present = keys.includes(undefined)
      ? keys.filter((k): k is string => k !== undefined)
      : (keys as Array<string>)
    // The read path's visibility rules (hidden keys, tags), in one store
    // call; its answers are aligned with `present`, in the order of `keys`.
    return Effect.map(rt.readMany(state, present), (entries) => {
      let j = 0
      return keys.map((key) => {
        const entry = key === undefined ? undefined : entries[j++]
        if (entry === undefined || entry.negative || rt.stateNow(entry) !== FRESH) {
          state.counters.misses++
          if (key !== undefined) rt.observe.emitKey("Miss", state, key)
          return Option.none<A>()
        }
        state.counters.hits++
        rt.observe.emitKey("Hit", state, key!)
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
 * flight does not overwrite this value. `{ ttl, staleFor }` give this value
 * its own lifetimes (a duration or a function of the value and parameters),
 * clamped to the keyspace's `maxTtl` (see `Strategy.WriteOptions`).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
 * const program = Cachet.set(Users, { id: 1 }, "Ada").pipe(Effect.provide(Cachet.layerMemory()))
 * const briefly = Cachet.set(Users, { id: 2 }, "Grace", { ttl: "10 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category mutations
 */
export const set = <P, A, EN, const O extends Strategy.WriteOptions = {}>(
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
      if (rt.closed) return Effect.fail(new CacheShuttingDown({ op: "set" }))
      const state = rt.stateOf(keyspace)
      const key = internalStrategy.keyOrFail(state, params)
      if (typeof key !== "string") return Effect.fail(key)
      rt.invalidateFlights(key, true)
      const policy = internalStrategy.writePolicyOf(state, options)
      return Effect.flatMap(
        rt.write(state, key, params, value, rt.clock.currentTimeMillisUnsafe(), false, undefined, undefined, policy),
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

/** An `Invalidate` event, when anybody listens (journalled or not: the invalidation applies here). */
const emitInvalidate = (rt: internal.RuntimeService, keyspace: string | undefined, tag: string | undefined) => {
  if (rt.observe.listening()) {
    rt.observe.emit({ _tag: "Invalidate", keyspace, tag, at: rt.clock.currentTimeMillisUnsafe() })
  }
}

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
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
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
    rt.invalidateTag(tag).pipe(
      Effect.ensuring(Effect.sync(() => emitInvalidate(rt, undefined, tag))),
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
 * Options of {@link invalidateKeyspace}: the store error mode, and
 * `allVersions` (default false) to clear the entries of every version of the
 * keyspace, not only its current one.
 *
 * @example
 * ```ts
 * import type { Cachet } from "cachet"
 * const options: Cachet.InvalidateKeyspaceOptions = { allVersions: true, onStoreError: "fail" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface InvalidateKeyspaceOptions extends Strategy.Options {
  readonly allVersions?: boolean | undefined
}

/**
 * Deletes every entry of a keyspace (on Redis: SCAN with an exact MATCH on
 * every master, UNLINK in batches), returning how many there were.
 *
 * **Details**
 *
 * Only the keyspace's current `version` by default. With
 * `{ allVersions: true }` the entries of every version go too (`user:*`
 * and `user@<n>:*`): after a deploy that bumped `version`, to free what the
 * old one left rather than wait for its ttl.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute", version: 2 })
 * const clearUsers = Cachet.invalidateKeyspace(Users)
 * const clearEveryVersion = Cachet.invalidateKeyspace(Users, { allVersions: true })
 * ```
 *
 * @since 0.1.0
 * @category invalidation
 */
export const invalidateKeyspace = <P, A, EN, const O extends InvalidateKeyspaceOptions = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  options?: O
): Effect.Effect<number, Strategy.StrictError<O>, Cachet> =>
  Effect.flatMap(internal.service, (rt) => {
    const state = rt.stateOf(keyspace)
    const current = `${namespaceOf(keyspace)}:`
    // Version 1 lives under `<name>:`, later ones under `<name>@<n>:`
    // (names never contain "@", so `<name>@` is this keyspace's alone).
    const prefixes =
      options?.allVersions === true
        ? [current, ...[`${keyspace.name}:`, `${keyspace.name}@`].filter((p) => p !== current)]
        : [current]
    let firstError: CacheStoreError | undefined
    return Effect.map(
      Effect.forEach(prefixes, (prefix) => {
        rt.invalidateFlights(prefix, false)
        return rt.store.deletePrefix(prefix).pipe(
          Effect.tap((n) => Effect.sync(() => (state.counters.deletes += n))),
          Effect.catch((error) => {
            firstError ??= error
            return rt
              .storeFailed(state, "delete", error)
              .pipe(
                Effect.andThen(
                  rt.journal(prefix === current ? { _tag: "Keyspace", state } : { _tag: "Keyspace", state, prefix })
                ),
                Effect.as(0)
              )
          })
        )
      }),
      (counts) => counts.reduce((n, m) => n + m, 0)
    ).pipe(
      Effect.ensuring(Effect.sync(() => emitInvalidate(rt, keyspace.name, undefined))),
      Effect.flatMap((n) => Effect.as(strictly(options, firstError), n))
    )
  })

/**
 * Deletes the entries of a keyspace whose key matches a glob, returning how
 * many there were.
 *
 * **Details**
 *
 * The pattern is matched against an entry's key: the part after the
 * keyspace, as the template renders it from the raw parameter values (for
 * `key: "{id}"` the id; for `key: "org:{org}:user:{id}"` the whole
 * `org:7:user:42`). Redis's glob syntax: `*` any run of characters, `?`
 * one character, `[abc]`, `[a-z]`, `[^a-z]` one of (or none of) a set, `\`
 * makes the next character literal. It never reaches outside the
 * keyspace: the keyspace's own prefix is fixed, and the characters a
 * parameter may contain (`*`, `[`, `:`) are escaped in stored keys, so the
 * pattern is applied to each key of the keyspace, not handed to the store
 * as text. A key longer than `maxKeyBytes` is stored hashed: it is deleted
 * when a key with its readable start could match (a few more entries, never
 * fewer).
 *
 * Per store: the memory store scans its entries; Redis runs SCAN on every
 * master (a Cluster: each one) with a MATCH on the pattern's literal start,
 * tests each key exactly and UNLINKs in batches, after recording a clear of
 * the keyspace so that loads of the keyspace that started before it store
 * nothing (any process; such loads count as `fencedWrites`); a
 * `TieredStore` clears its L1, its L2, and tells the other instances' L1s
 * on the bus. Loads in flight in this process of a matching key do not
 * store their result. A store without pattern support clears the whole
 * keyspace.
 *
 * **Gotchas**
 *
 * When the store does not answer, the invalidation is journalled like any
 * other (see the README's "Coherence"): this process stops serving matching
 * entries at once, and the deletion is replayed in order when the store
 * answers; the count is then 0. With `{ onStoreError: "fail" }` it also
 * fails with `CacheStoreError`. On Redis the count includes the tombstones
 * of matching keys invalidated within `tombstoneRetention`. A malformed pattern (`"[a"`, a trailing
 * `\`) fails with `CacheKeyError` and deletes nothing. It scans every key
 * of the store on Redis (SCAN cannot be narrowed by prefix): a tool for
 * occasional invalidations, not for every request.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
 * const program = Effect.gen(function*() {
 *   yield* Cachet.set(Users, { id: 41 }, "Ada")
 *   yield* Cachet.set(Users, { id: 42 }, "Grace")
 *   yield* Cachet.set(Users, { id: 7 }, "Edsger")
 *   return yield* Cachet.invalidatePattern(Users, "4*") // 2
 * }).pipe(Effect.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.2.0
 * @category invalidation
 */
export const invalidatePattern = <P, A, EN, const O extends Strategy.Options = {}>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  pattern: string,
  options?: O
): Effect.Effect<number, CacheKeyError | Strategy.StrictError<O>, Cachet> =>
  Effect.flatMap(internal.service, (rt): Effect.Effect<number, CacheKeyError | CacheStoreError> => {
    const state = rt.stateOf(keyspace)
    const matcher = Glob.compile(pattern)
    if (typeof matcher === "string") {
      state.counters.keyErrors++
      return Effect.fail(new CacheKeyError({ keyspace: keyspace.name, message: matcher }))
    }
    const prefix = `${state.namespace}:`
    rt.invalidateFlightsWhere(prefix, (part) => Glob.covers(matcher, part))
    const store = rt.store
    const deleted =
      store.deletePattern === undefined ? store.deletePrefix(prefix) : store.deletePattern(prefix, matcher.source)
    return deleted.pipe(
      Effect.ensuring(Effect.sync(() => emitInvalidate(rt, keyspace.name, undefined))),
      Effect.tap((n) => Effect.sync(() => (state.counters.deletes += n))),
      Effect.catch((error) =>
        rt
          .storeFailed(state, "delete", error)
          .pipe(
            Effect.andThen(rt.journal({ _tag: "Pattern", state, matcher })),
            Effect.andThen(Effect.as(strictly(options, error), 0))
          )
      )
    )
  }) as Effect.Effect<number, CacheKeyError | Strategy.StrictError<O>, Cachet>

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
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
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
 * With a built-in strategy (or none), `loader` is called only when the read
 * needs it (a miss, a stale entry, a refresh-ahead hook, an observed read):
 * a fresh hit builds no loader effect. A strategy of your own (an arrow) is
 * applied to `loader(params)` on every call.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Cachet, Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
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
): ((params: P) => Effect.Effect<A, E | EN, R | Cachet>) =>
  // With a built-in strategy (or none), `loader` runs on a miss only: a
  // fresh hit builds no loader effect and applies no combinator.
  internalStrategy.memoised(keyspace, loader, strategy as internalStrategy.AnyStrategy | undefined)

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

/**
 * What the runtime spans through Effect's tracer (`Cachet.layer({ tracing })`).
 *
 * **Details**
 *
 * - `"loads"` (default): `cachet.load` (a loader run, with the write of its
 *   result), `cachet.revalidate` (a background reload),
 *   `cachet.writeBehind.flush` (one batch), and `cachet.store.<op>` for the
 *   store calls of loads, writes and invalidations (`set`, `setMany`,
 *   `delete`, `deleteMany`, `deletePrefix`, `setTagTime`). Hits and store
 *   reads are not spanned: a memory hit costs what it costs without tracing.
 * - `"all"`: also `cachet.get` around every read (hits included) and
 *   `cachet.store.get`/`getMany` around every store read. Costs a span per
 *   hit (several times a memory hit's cost).
 * - `"off"`: no spans.
 *
 * Attributes: `cachet.keyspace`; `cachet.result` on loads (`"miss"`,
 * `"stale"` or `"fenced"`: the store refused the write because the key was
 * written or invalidated since the load started) and on reads (`"hit"`,
 * `"miss"`, `"stale"`); `cachet.key` only with `traceKeys: true` (keys may
 * hold user data). A load runs in a fiber of the layer, with the caller's
 * span as its parent.
 *
 * **Gotchas**
 *
 * Spans go to the `Tracer` in context. Under effect's default one
 * (`Tracer.nativeTracer`, which exports nothing) cachet starts no span at
 * all and builds no attributes: they would cost a memory miss ~40% and
 * nobody could see them. So inside a loader `Effect.currentSpan` is then the
 * caller's span, not `cachet.load`. Provide an exporter (effect/observability's
 * `Otlp.layerJson`, any `Tracer` layer) to get them.
 *
 * @example
 * ```ts
 * import { Cachet } from "cachet"
 * const mode: Cachet.TracingMode = "loads"
 * const CacheLive = Cachet.layerMemory({ tracing: mode })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type TracingMode = internal.TracingMode

/**
 * One event of {@link events}: a read's result (`Hit`, `Miss`, `Stale`), a
 * loader run (`Load`, with its time and outcome, `background` for a
 * revalidation), an entry written or deleted (`Set`, `Delete`), a tag or
 * keyspace invalidated (`Invalidate`), a TieredStore bus reset that dropped
 * the L1 (`BusReset`), a write-behind operation given up (`DeadLetter`).
 * `at` is the runtime's clock (ms).
 *
 * **Gotchas**
 *
 * Events carry keys (they stay in the process); spans carry them only when
 * asked. `Miss` and `Stale` say what the read found: a stale entry that a
 * cache-aside read then reloads is a `Stale` followed by a `Load`.
 *
 * @example
 * ```ts
 * import type { Cachet } from "cachet"
 * const describe = (e: Cachet.CacheEvent) =>
 *   e._tag === "Load" ? `${e.keyspace} loaded in ${e.millis} ms` : e._tag
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type CacheEvent = internal.CacheEvent

/**
 * A subscription to the cache's events for the current scope: a bounded
 * queue (see {@link events}) that receives every event from now on, until
 * the scope closes. For code that must not miss the events right after it
 * subscribes (tests, a startup check); {@link events} is the same as a
 * `Stream`.
 *
 * @example
 * ```ts
 * import { Effect, Queue, Schema } from "effect"
 * import { Cachet, Keyspace } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
 * const seen = Effect.scoped(
 *   Effect.gen(function*() {
 *     const events = yield* Cachet.subscribeEvents
 *     yield* Cachet.set(Users, { id: 1 }, "Ada")
 *     return yield* Queue.takeAll(events) // [{ _tag: "Set", keyspace: "user", key: "user:1", at: 0 }]
 *   })
 * ).pipe(Effect.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const subscribeEvents: Effect.Effect<Queue.Dequeue<CacheEvent>, never, Cachet | Scope.Scope> = Effect.flatMap(
  internal.service,
  (rt) => rt.observe.subscribe
)

/**
 * The cache's events as a `Stream`: every subscriber (each run of the
 * stream) gets its own bounded queue (`eventsCapacity`, default 1024).
 *
 * **Details**
 *
 * An event that finds a subscriber's queue full is dropped for that
 * subscriber and counted (`Cachet.health`'s `events.dropped`): a reader
 * that stops reading never slows the cache down or grows its memory.
 * Without a subscriber no event is built: a hit then pays one number check.
 *
 * **Gotchas**
 *
 * The subscription starts when the stream runs: events before that are not
 * seen. To subscribe first and read later, use {@link subscribeEvents}.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Cachet } from "cachet"
 *
 * const logEvents = Cachet.events.pipe(
 *   Stream.filter((e) => e._tag === "DeadLetter" || e._tag === "BusReset"),
 *   Stream.runForEach((e) => Effect.logWarning(`cache: ${e._tag}`))
 * )
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const events: Stream.Stream<CacheEvent, never, Cachet> = Stream.unwrap(
  Effect.map(subscribeEvents, Stream.fromQueue)
)

/**
 * A health report of the cache (see {@link health}).
 *
 * - `status`: `"down"` when the store did not answer its ping,
 *   `"degraded"` when it answers but a breaker is not closed, the bus is
 *   not subscribed, invalidations wait in the journal or a keyspace
 *   bypasses the cache, else `"ok"`.
 * - `store`: its name, whether the ping succeeded, how long it took (ms,
 *   the runtime's clock) and its error.
 * - `breakers`: one per breaker of the store (`node`, `state`); empty for a
 *   store without breakers.
 * - `bus`: TieredStore's bus (subscribed, subscriptions, gaps, and the last
 *   reset of the L1 with its time and reason), else `undefined`.
 * - `journalDepth`, `writeBehindQueued`, `events` (subscribers, dropped),
 *   and per keyspace its write-behind depth and whether it is bypassed.
 *
 * @example
 * ```ts
 * import type { Cachet } from "cachet"
 * const httpStatus = (h: Cachet.Health) => (h.status === "down" ? 503 : 200)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Health = internal.Health

/**
 * The state of one keyspace in a {@link Health} report.
 *
 * @example
 * ```ts
 * import type { Cachet } from "cachet"
 * const bypassed = (h: Cachet.Health) => Object.entries(h.keyspaces).filter(([, k]: [string, Cachet.KeyspaceHealth]) => k.bypassed)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type KeyspaceHealth = internal.KeyspaceHealth

/**
 * Checks the cache now: pings the store (timed), reads its breakers and
 * bus, the journal's depth and the write-behind queue. Never fails: a store
 * that does not answer is `status: "down"`. The ping is bounded by the
 * store's command timeout.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cachet } from "cachet"
 *
 * const program = Effect.gen(function*() {
 *   const health = yield* Cachet.health
 *   return `${health.status}: ${health.store.name} in ${health.store.latencyMillis} ms`
 * }).pipe(Effect.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const health: Effect.Effect<Health, never, Cachet> = Effect.flatMap(internal.service, (rt) => rt.health)
