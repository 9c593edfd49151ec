/**
 * The store interface's shapes: what an entry, a codec and a store are. The
 * public names and docs are in `CacheStore.ts`; this file lets stores import
 * the interface without importing the module that builds the memory store.
 *
 * @internal
 */
import type { Effect, Result } from "effect"
import type { CacheDecodeError, CacheEncodeError, CacheStoreError, CacheValueTooLarge } from "../CacheError.ts"

/** What `getFreshUnsafe` answers when it has no plain fresh value to give. */
export const NotFresh: unique symbol = Symbol.for("cachet/NotFresh")

/** One cache entry, as stored (see `CacheStore.StoredEntry`). */
export interface StoredEntry {
  readonly value: unknown
  readonly createdAt: number
  readonly freshUntil: number
  readonly staleUntil: number
  readonly tags: ReadonlyArray<string>
  readonly negative?: boolean | undefined
  /**
   * The time that orders this entry against invalidations, on the store's
   * clock (a shared store's server time: the start of the load that made
   * it, or the explicit write). Set by stores that order writes
   * (`setOrdered`); tag checks use it, else `createdAt`.
   */
  readonly order?: number | undefined
}

/** Value <-> JSON-compatible data for remote stores (see `CacheStore.EntryCodec`). */
export interface EntryCodec {
  /** The keyspace name, for error messages. */
  readonly keyspace: string
  /** Encodes a value (or, when `negative`, a cached error) to JSON-compatible data. */
  readonly encode: (value: unknown, negative?: boolean) => Result.Result<unknown, CacheEncodeError>
  /** Decodes JSON-compatible data back into a value (or cached error). */
  readonly decode: (data: unknown, key: string, negative?: boolean) => Result.Result<unknown, CacheDecodeError>
  /** Reports an entry that could not be read. The store has already deleted it. */
  readonly onCorrupt: (error: CacheDecodeError) => void
}

/** Size and eviction figures of a store (see `CacheStore.StoreInfo`). */
export interface StoreInfo {
  readonly entries: number
  readonly bytes?: number | undefined
  readonly evictions: number
  /** Tag invalidation records held, where the store keeps them in the process. */
  readonly tags?: number | undefined
  /**
   * Reads answered from a store's last-known-good copy while its backend
   * failed (`RedisStore`'s `fallback`); `undefined` where there is none.
   */
  readonly fallbackHits?: number | undefined
  /** Keys of a many-key read that the last-known-good copy could not answer while the backend failed. */
  readonly fallbackMisses?: number | undefined
}

/** Options of the in-memory store (see `CacheStore.MemoryOptions`). */
export interface MemoryOptions {
  readonly capacity?: number | undefined
  readonly maxBytes?: number | undefined
  readonly sizeOf?: ((value: unknown) => number) | undefined
  /**
   * The most tag invalidation records kept (default `max(capacity, 10_000)`).
   * Past it the oldest record is dropped and every tagged entry created
   * before its time reads as gone: an invalidation is never forgotten, at
   * worst a few more entries reload. Records also expire with their retention (swept by the next write or tag read).
   */
  readonly maxTags?: number | undefined
  /**
   * The eviction policy: `"w-tinylfu"` (default, adaptive W-TinyLFU) or
   * `"lru"` (plain least recently used).
   */
  readonly eviction?: "w-tinylfu" | "lru" | undefined
  /**
   * Seeds the W-TinyLFU sketch's hashing and its admission jitter (default:
   * random per store). Fix it for repeatable tests; leave it random in
   * production, so that nobody can aim hash collisions.
   */
  readonly seed?: number | undefined
}

/** The state of one circuit breaker (see `CacheStore.BreakerHealth`). */
export interface BreakerHealth {
  /** The node it guards (`"standalone"` for a standalone server; `host:port` per node of a Cluster). */
  readonly node: string
  readonly state: "closed" | "open" | "half-open"
}

/** The state of an invalidation bus (see `CacheStore.BusHealth`). */
export interface BusHealth {
  /** Whether the subscription is confirmed now. */
  readonly subscribed: boolean
  /** Times the subscription was (re)confirmed. */
  readonly subscriptions: number
  /** Gaps seen in a peer's sequence (messages lost). */
  readonly gaps: number
  /** The last time (the runtime's clock, ms) the L1 was dropped after a gap or a resubscription. */
  readonly lastReset: { readonly at: number; readonly reason: "subscribed" | "gap" } | undefined
}

/** What a store can tell about itself beyond `ping` (see `CacheStore.StoreHealth`). */
export interface StoreHealth {
  readonly breakers: ReadonlyArray<BreakerHealth>
  readonly bus?: BusHealth | undefined
}

/** Something a store saw that the runtime reports as a cache event (see `Cachet.CacheEvent`). */
export type StoreEvent = { readonly _tag: "BusReset"; readonly reason: "subscribed" | "gap" }

/** The store service (see `CacheStore.CacheStore`). */
export interface StoreService {
  /** A short name for logs and errors (`"memory"`, `"redis"`). */
  readonly name: string
  /** Reads an entry; `undefined` when absent, expired or unreadable. */
  readonly get: (key: string, codec: EntryCodec) => Effect.Effect<StoredEntry | undefined, CacheStoreError>
  /** Reads many entries; the result is aligned with `keys`. */
  readonly getMany: (
    keys: ReadonlyArray<string>,
    codec: EntryCodec
  ) => Effect.Effect<ReadonlyArray<StoredEntry | undefined>, CacheStoreError>
  /** Writes an entry; it expires at `entry.staleUntil`. */
  readonly set: (
    key: string,
    entry: StoredEntry,
    codec: EntryCodec
  ) => Effect.Effect<void, CacheStoreError | CacheEncodeError | CacheValueTooLarge>
  /** Writes many entries of one keyspace. */
  readonly setMany: (
    entries: ReadonlyArray<readonly [key: string, entry: StoredEntry]>,
    codec: EntryCodec
  ) => Effect.Effect<void, CacheStoreError | CacheEncodeError | CacheValueTooLarge>
  /**
   * Writes `entry` ordered by the store's own clock and answers the order
   * time it was given, or `undefined` when the write was refused. With
   * `since` (a write of a load that started after the store's clock read
   * `since`, see `time`) it is refused when the key or its keyspace was
   * written or invalidated at or after `since`: a load never undoes a later
   * write or invalidation, whichever process made it; its entry is ordered
   * at `since`. Without it (an explicit write) it always wins, ordered now.
   * Optional, with `time`: a store in one process leaves both out, and the
   * runtime's own guard orders writes.
   */
  readonly setOrdered?:
    | ((
        key: string,
        entry: StoredEntry,
        codec: EntryCodec,
        since: number | undefined,
        /**
         * Compare-and-set (sliding expiry): the write lands only if the key
         * holds an entry (not a tombstone) ordered exactly at `expect`, and
         * its keyspace was not cleared at or after it; the entry keeps that
         * order. Optional: stores that leave it out get no sliding expiry.
         */
        expect?: number | undefined
      ) => Effect.Effect<number | undefined, CacheStoreError | CacheEncodeError | CacheValueTooLarge>)
    | undefined
  /**
   * Many ordered writes of one keyspace (each with its own `since`, as
   * `setOrdered`), in as few round trips as the store can: answers each
   * write's order time, or `undefined` where it was refused, aligned with
   * `entries`. Optional: the runtime falls back to `setOrdered` per entry.
   */
  readonly setOrderedMany?:
    | ((
        entries: ReadonlyArray<readonly [key: string, entry: StoredEntry, since: number | undefined]>,
        codec: EntryCodec
      ) => Effect.Effect<ReadonlyArray<number | undefined>, CacheStoreError | CacheEncodeError | CacheValueTooLarge>)
    | undefined
  /**
   * The store's clock now (ms), read before a load starts: the `since` of
   * its ordered write. Optional, with `setOrdered`. `key` picks the node
   * whose clock orders that key (a Cluster's master of its slot).
   */
  readonly time?: ((key: string) => Effect.Effect<number, CacheStoreError>) | undefined
  /**
   * Reads an entry from the shared store itself, past any copy in the
   * process (TieredStore's L1): for polls that wait on another process's
   * write. Optional: defaults to `get`.
   */
  readonly getShared?:
    | ((key: string, codec: EntryCodec) => Effect.Effect<StoredEntry | undefined, CacheStoreError>)
    | undefined
  /** Deletes an entry; `true` when it existed. */
  readonly delete: (key: string) => Effect.Effect<boolean, CacheStoreError>
  /** Deletes entries; returns how many existed. */
  readonly deleteMany: (keys: ReadonlyArray<string>) => Effect.Effect<number, CacheStoreError>
  /** Deletes every entry whose key starts with `prefix` (a keyspace's keys). */
  readonly deletePrefix: (prefix: string) => Effect.Effect<number, CacheStoreError>
  /**
   * Deletes every entry whose key starts with `prefix` (a keyspace's
   * `<namespace>:`) and whose key part after it matches the glob `pattern`
   * (see `Cachet.invalidatePattern`; matched on the unescaped key with
   * `internal/glob.ts`); returns how many existed. Loads of the keyspace
   * that started before it must not store their result (a store that
   * orders writes fences them as `deletePrefix` does). Optional: without
   * it the runtime clears the whole keyspace with `deletePrefix`.
   */
  readonly deletePattern?: ((prefix: string, pattern: string) => Effect.Effect<number, CacheStoreError>) | undefined
  /**
   * Whether each key holds an entry (not a tombstone), without decoding it,
   * keeping a copy of it in the process, or marking it as used: a presence
   * probe (keyspace versions' `versionMisses`). Optional: without it the
   * runtime does not classify misses by version.
   */
  readonly has?: ((keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<boolean>, CacheStoreError>) | undefined
  /** When each tag was last invalidated (epoch ms), aligned with `tags`. */
  readonly getTagTimes: (
    tags: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<number | undefined>, CacheStoreError>
  /** Records that `tag` was invalidated at `time`; the record may be dropped after `retainMillis`. */
  readonly setTagTime: (tag: string, time: number, retainMillis: number) => Effect.Effect<void, CacheStoreError>
  /** Checks that the backend answers. */
  readonly ping: Effect.Effect<void, CacheStoreError>
  /** Size and eviction figures, where the store keeps them. */
  readonly info: Effect.Effect<StoreInfo | undefined>
  /**
   * Synchronous read for stores in the process, used by the runtime on the
   * hit path to skip an Effect step. Must behave exactly as `get`.
   */
  readonly getUnsafe?: ((key: string, now?: number) => StoredEntry | undefined) | undefined
  /**
   * The hit path of the memory store: the value of the entry of `key` when
   * it is fresh at `now` and plain (no tags, not negative), marked used as
   * `getUnsafe` marks it; else `NotFresh`, without touching anything (the
   * caller then reads through `getUnsafe`). No entry object is built.
   */
  readonly getFreshUnsafe?: ((key: string, now: number) => unknown) | undefined
  /**
   * Synchronous tag-time read for stores in the process (see `getUnsafe`).
   * `now`, when given, is the caller's clock reading of the same hit (the
   * runtime reads the clock once per hit); a store may use it instead of
   * reading the clock again, and must otherwise ignore it.
   */
  readonly getTagTimeUnsafe?: ((tag: string, now?: number) => number | undefined) | undefined
  /**
   * Synchronous read of a copy in the process in front of a remote store
   * (TieredStore's L1): an entry fresh at `now` whose tags this process
   * knows and none of which invalidates it, or `undefined` when the caller
   * must read through `get` (a miss here proves nothing). Counted as `get`
   * counts a hit.
   */
  readonly getFrontUnsafe?: ((key: string, now: number) => StoredEntry | undefined) | undefined
  /**
   * Breaker and bus state, for `Cachet.health`. Optional: a store without
   * breakers or a bus leaves it out. RedisStore reports one breaker per
   * node it has called (`standalone`, or each Cluster node's `host:port`).
   */
  readonly health?: Effect.Effect<StoreHealth> | undefined
  /**
   * Registers a listener for the store's own events (a bus reset); returns
   * its removal. Called synchronously; the listener must not throw.
   * Optional: stores without such events leave it out.
   */
  readonly subscribe?: ((listener: (event: StoreEvent) => void) => () => void) | undefined
}
