/**
 * The store service: where cache entries live.
 *
 * A store moves entries with an expiry, and nothing else. It knows nothing of
 * strategies, freshness, single-flight, locks or metrics: the `Cachet` runtime
 * does that above it. Stores that keep entries outside the process (Redis)
 * encode values with the {@link EntryCodec} that each call carries; stores in
 * the process keep decoded values, so a hit costs no serialisation.
 *
 * **Storage layout (memory store)**
 *
 * Entries are slots: indices into typed arrays (no object per entry), found
 * from `<keyspace>:<key>` through an open-addressing index of slots and
 * threaded on the doubly linked lists of the eviction policy (W-TinyLFU: a
 * window LRU, a probation and a protected LRU, beside a count-min sketch of
 * 4-bit counters in an `Int32Array`, 8 bytes per entry of capacity, and two
 * small sampled shadow caches that steer the window; or one LRU list); about
 * 111 bytes of structure per entry (README "Layout and footprint"). A `Map`
 * from tag to the time it was last invalidated. Entries expire at
 * `staleUntil`, read from Effect's `Clock` (so `TestClock` drives expiry in
 * tests).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import * as MemoryStore from "./internal/memoryStore.ts"
import type * as Store from "./internal/store.ts"

/**
 * One cache entry, as stored.
 *
 * **Details**
 *
 * `value` is the decoded value for stores in the process; a remote store
 * encodes it with the call's {@link EntryCodec} and decodes it on the way back.
 * Times are epoch milliseconds from Effect's `Clock`. The store's own expiry is
 * `staleUntil`; `freshUntil <= staleUntil`.
 *
 * `negative` marks a cached loader failure (negative caching): `value` is then
 * the error.
 *
 * @example
 * ```ts
 * import type { CacheStore } from "cachet"
 * const entry: CacheStore.StoredEntry = {
 *   value: { id: 1 }, createdAt: 0, freshUntil: 60_000, staleUntil: 120_000, tags: ["users"]
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredEntry extends Store.StoredEntry {}

/**
 * How a remote store turns an entry's value into JSON-compatible data and
 * back. The `Cachet` runtime builds one per keyspace from its Schema and
 * passes it with every call; stores in the process ignore it.
 *
 * **Details**
 *
 * A store that finds an entry it cannot read (bad envelope, failed decode)
 * treats it as a miss, deletes it, and reports it with `onCorrupt` so that the
 * runtime counts it. Decode failures must never be reported as
 * `CacheStoreError`: they are not a sign of an unhealthy backend.
 *
 * @example
 * ```ts
 * import { Result } from "effect"
 * import type { CacheStore } from "cachet"
 * const identity: CacheStore.EntryCodec = {
 *   keyspace: "raw",
 *   encode: (value) => Result.succeed(value),
 *   decode: (data) => Result.succeed(data),
 *   onCorrupt: () => {}
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface EntryCodec extends Store.EntryCodec {}

/**
 * Size and eviction figures of a store, where it keeps them.
 *
 * @example
 * ```ts
 * import type { CacheStore } from "cachet"
 * const info: CacheStore.StoreInfo = { entries: 10, bytes: 2048, evictions: 0 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreInfo extends Store.StoreInfo {}

/**
 * The state of one circuit breaker of a store, as `Cachet.health` reports it.
 *
 * @example
 * ```ts
 * import type { CacheStore } from "cachet"
 * const open = (b: CacheStore.BreakerHealth) => b.state === "open"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface BreakerHealth extends Store.BreakerHealth {}

/**
 * The state of a store's invalidation bus (TieredStore), as `Cachet.health`
 * reports it: whether it is subscribed, and when the L1 was last dropped.
 *
 * @example
 * ```ts
 * import type { CacheStore } from "cachet"
 * const lastGap = (b: CacheStore.BusHealth) => (b.lastReset?.reason === "gap" ? b.lastReset.at : undefined)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface BusHealth extends Store.BusHealth {}

/**
 * What a store reports about itself beyond `ping` (its optional `health`
 * member): breaker states, and its bus when it has one.
 *
 * @example
 * ```ts
 * import type { CacheStore } from "cachet"
 * const healthy: CacheStore.StoreHealth = { breakers: [{ node: "standalone", state: "closed" }] }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface StoreHealth extends Store.StoreHealth {}

/**
 * An event a store reports to the runtime through its optional `subscribe`
 * member (today: a bus reset of TieredStore, which dropped its L1).
 *
 * @example
 * ```ts
 * import type { CacheStore } from "cachet"
 * const reset: CacheStore.StoreEvent = { _tag: "BusReset", reason: "gap" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type StoreEvent = Store.StoreEvent

/**
 * The store interface.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CacheStore } from "cachet"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* CacheStore.CacheStore
 *   yield* store.ping
 * }).pipe(Effect.provide(CacheStore.layerMemory({ capacity: 100 })))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class CacheStore extends Context.Service<CacheStore, Store.StoreService>()("cachet/CacheStore") {}

/**
 * What a backend must provide; {@link make} derives the rest.
 *
 * @example
 * ```ts
 * import type { CacheStore } from "cachet"
 * declare const primitives: CacheStore.StorePrimitives
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface StorePrimitives {
  readonly name: string
  readonly get: CacheStore["Service"]["get"]
  readonly set: CacheStore["Service"]["set"]
  readonly delete: CacheStore["Service"]["delete"]
  readonly deletePrefix: CacheStore["Service"]["deletePrefix"]
  readonly getTagTimes: CacheStore["Service"]["getTagTimes"]
  readonly setTagTime: CacheStore["Service"]["setTagTime"]
  readonly getMany?: CacheStore["Service"]["getMany"] | undefined
  readonly setMany?: CacheStore["Service"]["setMany"] | undefined
  readonly deleteMany?: CacheStore["Service"]["deleteMany"] | undefined
  readonly ping?: CacheStore["Service"]["ping"] | undefined
  readonly info?: CacheStore["Service"]["info"] | undefined
  readonly getUnsafe?: CacheStore["Service"]["getUnsafe"]
  readonly getTagTimeUnsafe?: CacheStore["Service"]["getTagTimeUnsafe"]
  readonly getFrontUnsafe?: CacheStore["Service"]["getFrontUnsafe"]
  readonly setOrdered?: CacheStore["Service"]["setOrdered"]
  readonly setOrderedMany?: CacheStore["Service"]["setOrderedMany"]
  readonly time?: CacheStore["Service"]["time"]
  readonly getShared?: CacheStore["Service"]["getShared"]
  readonly deletePattern?: CacheStore["Service"]["deletePattern"]
  readonly has?: CacheStore["Service"]["has"]
  readonly health?: CacheStore["Service"]["health"]
  readonly subscribe?: CacheStore["Service"]["subscribe"]
}

/**
 * Builds a store from its primitives: `getMany`, `setMany` and `deleteMany`
 * default to one call per key (a backend overrides them with MGET, pipelines
 * and the like), `ping` to success and `info` to nothing.
 *
 * **Details**
 *
 * Two optional primitives have no default, because they need to see the
 * backend's keys: `deletePattern` (without it `Cachet.invalidatePattern`
 * clears the whole keyspace with `deletePrefix`) and `has` (without it
 * misses of versioned keyspaces are not classified as `versionMisses`). The
 * conformance suite checks both where a store has them.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CacheStore } from "cachet"
 *
 * const map = new Map<string, CacheStore.StoredEntry>()
 * const store = CacheStore.make({
 *   name: "map",
 *   get: (key) => Effect.sync(() => map.get(key)),
 *   set: (key, entry) => Effect.sync(() => void map.set(key, entry)),
 *   delete: (key) => Effect.sync(() => map.delete(key)),
 *   deletePrefix: () => Effect.succeed(0),
 *   getTagTimes: (tags) => Effect.succeed(tags.map(() => undefined)),
 *   setTagTime: () => Effect.void
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (primitives: StorePrimitives): CacheStore["Service"] =>
  CacheStore.of({
    name: primitives.name,
    get: primitives.get,
    set: primitives.set,
    delete: primitives.delete,
    deletePrefix: primitives.deletePrefix,
    getTagTimes: primitives.getTagTimes,
    setTagTime: primitives.setTagTime,
    getMany:
      primitives.getMany ??
      ((keys, codec) => Effect.forEach(keys, (key) => primitives.get(key, codec), { concurrency: "unbounded" })),
    setMany:
      primitives.setMany ??
      ((entries, codec) =>
        Effect.forEach(entries, ([key, entry]) => primitives.set(key, entry, codec), {
          concurrency: "unbounded",
          discard: true
        })),
    deleteMany:
      primitives.deleteMany ??
      ((keys) =>
        Effect.map(
          Effect.forEach(keys, primitives.delete, { concurrency: "unbounded" }),
          (deleted) => deleted.filter(Boolean).length
        )),
    ping: primitives.ping ?? Effect.void,
    info: primitives.info ?? Effect.succeed(undefined),
    getUnsafe: primitives.getUnsafe,
    getTagTimeUnsafe: primitives.getTagTimeUnsafe,
    getFrontUnsafe: primitives.getFrontUnsafe,
    setOrdered: primitives.setOrdered,
    setOrderedMany: primitives.setOrderedMany,
    time: primitives.time,
    getShared: primitives.getShared,
    deletePattern: primitives.deletePattern,
    has: primitives.has,
    health: primitives.health,
    subscribe: primitives.subscribe
  })

/**
 * Options of the in-memory store.
 *
 * - `capacity`: most entries kept. Default 10,000.
 * - `maxBytes`: optional byte budget, measured with `sizeOf`. Off by default,
 *   and then costs nothing. An entry bigger than the budget fails with
 *   `CacheValueTooLarge` and is not stored.
 * - `sizeOf`: the size of a value in bytes. Default: a structural estimate
 *   of V8's heap (strings, numbers, objects, arrays, and inside `Map`, `Set`,
 *   typed arrays, `Buffer` and `ArrayBuffer`; within a factor of 2 of the
 *   measured heap; collections over 64 items are sampled). Called once
 *   per write when `maxBytes` is set.
 * - `eviction`: which entry goes when the store is full. Default
 *   `"w-tinylfu"`: adaptive W-TinyLFU, which keeps the entries most likely to
 *   be read again (new entries wait in a small LRU window; one that falls out
 *   of it replaces the main space's least recently used only if it was read
 *   more often, as counted by a sketch that forgets slowly; the window grows or
 *   shrinks with the hit rate). `"lru"`: the least recently used goes, as in
 *   cachet 0.1.
 * - `seed`: seeds W-TinyLFU's hashing and admission jitter. Default: random
 *   per store. Ignored with `"lru"`.
 * - `maxTags`: most tag invalidation records kept. Default
 *   `max(capacity, 10_000)`. Past it the oldest goes and every tagged entry
 *   created before its time reads as gone (never forgotten, at worst a few
 *   more reloads). A record also expires with its retention: the first write
 *   or tag read after that drops it and every expired record before it, so
 *   records do not outlive `tagRetention` on a store in use.
 *
 * **Details**
 *
 * On the cache2k traces W-TinyLFU's hit ratio is up to 6.1 points above
 * `"lru"` (1.9 on average over 12 trace sizes; 0.3 below on the most
 * recency-heavy one; see the README's "Eviction" figures). Its cost: a hit
 * increments at most four 4-bit counters in a typed array and sets a bit in
 * its slot (only a hit in probation moves it), and a sampled share of hits
 * (1 in 64 at the default capacity, every hit below 256 entries) does the
 * same in two small shadow caches that steer the window; nothing is
 * allocated on a hit. A write hashes the key once; the
 * sketch holds 8 bytes per entry of `capacity`, allocated up front. With
 * `maxBytes`, admission is weighted: an entry must be read more often than
 * every entry it would push out.
 *
 * **Gotchas**
 *
 * With W-TinyLFU the entry evicted is not always the least recently used, and
 * a new entry may be dropped in favour of an older, more frequently read one
 * (when the store is full). Tests that assert which key goes should ask for
 * `eviction: "lru"`, or fix the `seed`.
 *
 * @example
 * ```ts
 * import type { CacheStore } from "cachet"
 * const options: CacheStore.MemoryOptions = { capacity: 50_000, maxBytes: 64 * 1024 * 1024 }
 * // The old behaviour: plain LRU.
 * const lru: CacheStore.MemoryOptions = { capacity: 50_000, eviction: "lru" }
 * // Repeatable eviction in tests.
 * const seeded: CacheStore.MemoryOptions = { capacity: 100, seed: 42 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions extends Store.MemoryOptions {}

/**
 * Builds an in-memory store (adaptive W-TinyLFU eviction unless
 * `eviction: "lru"`). Time comes from the `Clock` of the context it is built in.
 *
 * **Gotchas**
 *
 * Invalid options (a capacity below 1, a non-positive `maxBytes`, an unknown
 * `eviction`, a non-integer `seed`) fail at construction with a message naming
 * the option.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CacheStore } from "cachet"
 * const store = CacheStore.makeMemory({ capacity: 1000 })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: (options?: MemoryOptions) => Effect.Effect<CacheStore["Service"]> = MemoryStore.make

/**
 * The embedded default store: in the process, bounded by entries and
 * optionally bytes, keeping decoded values, evicting with adaptive W-TinyLFU
 * (`eviction: "lru"` for plain LRU; see {@link MemoryOptions}).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet, CacheStore } from "cachet"
 * const CacheLive = Cachet.layer().pipe(Layer.provide(CacheStore.layerMemory({ capacity: 10_000 })))
 * // Plain LRU, as before W-TinyLFU became the default.
 * const LruLive = Cachet.layer().pipe(Layer.provide(CacheStore.layerMemory({ capacity: 10_000, eviction: "lru" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<CacheStore> =>
  Layer.effect(CacheStore, MemoryStore.make(options))
