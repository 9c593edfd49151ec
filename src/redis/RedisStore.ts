/**
 * A `CacheStore` on Redis (standalone or Redis Cluster), through ioredis.
 *
 * **Storage layout**
 *
 * With `P = escape(prefix)` (percent-escaped: no `:`, glob characters,
 * braces, `%` or control characters, so the first `:` always ends it and
 * MATCH patterns built on it are exact):
 *
 * - entry: key `P:<keyspace>:<key>` (the store key as given, already
 *   escaped), a string holding a JSON envelope
 *   `{"o":order,"v":1,"c":createdAt,"f":freshUntil,"s":staleUntil,"t":[tags],"n":1,"d":data}`
 *   (`o` the server time that orders it against invalidations, written by
 *   the Lua script; `n` only on negative entries; `d` is the value encoded
 *   by the keyspace codec), with a Redis TTL of `staleUntil - now` (PX);
 * - compressed entry (with `compress`, values whose JSON is at least
 *   `minBytes`): the same header without `d`, plus `"z":"br"|"gz"|"zs"`,
 *   then a newline byte and the compressed JSON of `d`. Readers read both
 *   forms whatever their own `compress` option, so turning it on or off
 *   needs no flush;
 * - tombstone (an invalidated key): `{"o":time,"v":1,"x":1}` under the
 *   entry's key for `tombstoneRetention`; it reads as absent;
 * - tag invalidation time: key `P:~tag:<tag>` (the tag as given, already
 *   escaped), a string `<time>:<expiresAt>` in the server's epoch
 *   milliseconds, with a TTL of the retention. A later time always wins;
 * - keyspace clear time: key `P:~clear:<keyspace>:`, the server time of
 *   the last `deletePrefix` or `deletePattern` of the keyspace, with a TTL
 *   of `tombstoneRetention`. Keyspace
 *   names never start with `~`, so these keys never meet entry keys.
 *
 * Every write, invalidation and record is one Lua script (EVALSHA) that
 * reads the server's `TIME`: ordering never depends on instance clocks. A
 * load's write (`setOrdered` with the load's start) is refused when the key
 * holds anything ordered at or after that start, or its keyspace was
 * cleared since (see the README's Coherence section).
 *
 * No key holds more than one entry or tag, so no command spans two hash
 * slots: multi-key reads (`MGET`) and deletes (`UNLINK`) are grouped by slot
 * on a cluster.
 *
 * **Details**
 *
 * - Time comes from the Effect `Clock` of the context the store is built in:
 *   TTLs are computed with it, and reads also check `staleUntil` against it.
 * - Every Redis call is bounded by `commandTimeout` (default 500 ms) on a
 *   real timer, whatever the client's own settings.
 * - While the client makes a connection (at boot, or a reconnection
 *   attempt), calls wait for it within that bound, so a fresh layer is usable
 *   at once; while it is known to be down, calls fail at once.
 * - A connection that let a command time out and has answered nothing since
 *   is *stalled*: calls to that node fail at once (reason `Unavailable`)
 *   instead of queueing behind it. One call per `commandTimeout` passes as a
 *   probe; any answer, or a new connection, ends the stall. So a hung server
 *   costs a caller one timeout at most, and the client's queue stays bounded.
 * - A circuit breaker per node (effect's `CircuitBreaker`, in-memory state,
 *   keyed by the node that owns the key's slot: one per Cluster master, one
 *   for a standalone server) guards every call: after `failures` (default 5)
 *   consecutive `Timeout` or `Unavailable` failures of a node its circuit
 *   opens and calls to that node fail at once with reason `CircuitOpen`;
 *   other nodes are not affected. While it is open, a background PING on the
 *   layer's own fiber probes the node every `openFor` (default 100 ms), and
 *   at once when a connection becomes ready: no caller ever probes. Multi-key
 *   reads run one command per node (`getMany`: keys of a failing node read as
 *   misses while another node answered). Transitions are logged; per-node
 *   state and counters are read with {@link nodeStates}. `Protocol` errors
 *   and unreadable entries never trip it. While a node's circuit is closed
 *   and no failure is counted, calls skip the breaker's bookkeeping (a
 *   success there changes nothing): the first failure is recorded after the fact.
 * - On a Cluster, within the same `commandTimeout`: a `MOVED`/`ASK` reply
 *   (a redirect, as during a failover) is not a failure: the slot is pointed
 *   at the node it names, the slot map is refreshed, and the call is sent
 *   again (up to 3 redirects; one that still names an unreachable owner
 *   fails as `Unavailable`). A call that fails without an answer (a dead
 *   master's closed connection) is sent once more after a slot refresh.
 *   Commands for a dead master fail at once rather than being retried by
 *   ioredis until the timeout (see `IoRedis`).
 * - Every ioredis error is translated once into a `CacheStoreError`:
 *   timeouts to `Timeout`; no connection, offline queue disabled, connection
 *   closed, and busy/loading/cluster-down replies to `Unavailable`; other
 *   error replies to `Protocol`.
 * - Unreadable entries (not UTF-8, not JSON, wrong envelope, `__proto__`
 *   keys, a value the codec rejects) read as misses: the store deletes them
 *   (only if they still hold the same bytes) and reports them with the
 *   codec's `onCorrupt`, in `get` and `getMany` alike.
 * - Values over `maxEntryBytes` (default 1 MiB, encoded) fail with
 *   `CacheValueTooLarge` before any command is sent.
 *
 * This module does not keep entries in the process (no `getUnsafe`), does
 * not report sizes (`info` is `undefined`: `DBSIZE` would count other
 * prefixes too), does not use pub/sub, and does not retry failed calls: the
 * runtime above it degrades to the loader.
 *
 * @since 0.1.0
 */
import { Clock, Config, type Duration, Effect, Layer, Option, Result, type Scope } from "effect"
import type { CacheEncodeError, CacheStoreError, CacheValueTooLarge } from "../CacheError.ts"
import * as CacheStoreModule from "../CacheStore.ts"
import { CacheStore, type EntryCodec, type MemoryOptions, type StoredEntry } from "../CacheStore.ts"
import * as Glob from "../internal/glob.ts"
import { escapeValue } from "../internal/keyEncoding.ts"
import { positiveInt as positiveIntOption } from "../internal/numbers.ts"
import * as IoRedis from "./IoRedis.ts"
import * as Batch from "./internal/batch.ts"
import type * as Breaker from "./internal/breaker.ts"
import * as clientInternal from "./internal/client.ts"
import * as Compression from "./internal/compression.ts"
import * as Connection from "./internal/connection.ts"
import * as DecodeCache from "./internal/decodeCache.ts"
import * as envelope from "./internal/envelope.ts"
import * as Fallback from "./internal/fallback.ts"
import * as ioInternal from "./internal/io.ts"
import { makeRouter } from "./internal/routing.ts"
import * as Scan from "./internal/scan.ts"
import * as Scripts from "./internal/scripts.ts"

/**
 * Circuit breaker settings.
 *
 * - `failures`: consecutive `Timeout`/`Unavailable` failures that open the
 *   circuit. Default 5.
 * - `openFor`: how long a node's circuit stays open before the background
 *   probe (a PING, never a caller's call) may close it, and the pause
 *   between probes while the node is down. Default 100 ms: a probe costs
 *   one PING, and calls to the node resume within about `openFor` plus the
 *   reconnection delay (at most 250 ms by default) of the node answering again.
 *
 * @example
 * ```ts
 * import type { RedisStore } from "cachet/redis"
 * const breaker: RedisStore.BreakerOptions = { failures: 3, openFor: "2 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface BreakerOptions {
  readonly failures?: number | undefined
  readonly openFor?: Duration.Input | undefined
}

/**
 * The last-known-good fallback of a single RedisStore (option `fallback`): a
 * small bounded copy, in the process, of the entries read recently, answered
 * only while Redis is failing.
 *
 * - `capacity`: most entries kept. Default 1,000.
 * - `maxBytes`, `sizeOf`, `eviction`, `seed`: as for the memory store (off,
 *   the size estimate, `"w-tinylfu"`, random).
 *
 * **Details**
 *
 * A read that fails with `Timeout`, `Unavailable` or `CircuitOpen` (a hung
 * or dead server, the breaker open) is answered from the copy when it holds
 * the key and the entry's stale window has not passed (`staleUntil`); the
 * runtime then serves it by its timeline as usual (fresh, or stale under
 * stale-while-revalidate and stale-if-error). Such reads count in
 * `StoreInfo.fallbackHits` (and `Cachet.stats`'s `store.fallbackHits`).
 * While Redis answers, the copy is only refreshed: every successful read
 * replaces (or, for an absent key, drops) its copy, and every write, delete
 * or keyspace clear of this process drops the keys it touches before it is
 * sent. Tag times read from Redis are kept, so tagged entries can be
 * checked while Redis is down; a tag the copy does not know fails the check.
 *
 * **Gotchas**
 *
 * - The copy can be behind other instances: a write or invalidation made by
 *   another process since this one last read the key is not seen while Redis
 *   is down. That is the price of availability; the stale window bounds it.
 * - Served reads are not store errors, in strict mode too.
 * - With a fallback the store reports `info`: `entries`, `bytes`,
 *   `evictions` and `tags` are the copy's (so `Cachet.stats.store` and the
 *   `store_entries` gauge describe the copy, not Redis).
 * - Unlike `TieredStore`, the copy is never read while Redis answers (every
 *   read still goes to Redis), needs no pub/sub bus, and holds only what was
 *   read.
 *
 * @example
 * ```ts
 * import type { RedisStore } from "cachet/redis"
 * const options: RedisStore.Options = { prefix: "myapp", fallback: { capacity: 5_000 } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface FallbackOptions extends Omit<MemoryOptions, "maxTags"> {}

/**
 * Compression of large values (`RedisStore.layer({ compress })`), with
 * node's zlib.
 *
 * - `codec`: `"brotli"` (default, quality 4), `"gzip"` (level 6) or
 *   `"zstd"` (level 3; Node 22.15 / 23.8 and later: elsewhere the option
 *   throws at construction).
 * - `minBytes`: values whose JSON is at least this many bytes are
 *   compressed. Default 1024.
 * - `level`: the codec's level (brotli 0-11, gzip 1-9, zstd 1-19).
 *
 * **Details**
 *
 * Compression runs in the call that writes, decompression in the read that
 * decodes (synchronously, like JSON parsing). `maxEntryBytes` bounds the
 * JSON before compression, and bounds decompression too: bytes that would
 * inflate past it read as a corrupt entry. Corrupt compressed bytes are a
 * counted miss (`decodeErrors`), deleted like any unreadable entry.
 *
 * **Gotchas**
 *
 * The trade is CPU for bytes: on a 1 KB value compression costs more than
 * it saves on loopback; it pays on large values and slow links (see the
 * bench's Redis compression rows). Entries stay readable both ways, so
 * enabling, disabling or changing the codec needs no flush, but a reader on
 * a Node without zstd reads zstd entries as misses.
 *
 * @example
 * ```ts
 * import { RedisStore } from "cachet/redis"
 * const layer = RedisStore.layer({
 *   url: "redis://localhost:6379",
 *   prefix: "myapp",
 *   compress: { minBytes: 1024, codec: "brotli" }
 * })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface CompressOptions extends Compression.Options {}

/**
 * Options of the store.
 *
 * - `prefix`: namespace of every key of this store (required, not empty;
 *   escaped, so any string is safe).
 * - `commandTimeout`: bound of every Redis call. Default: the client's
 *   command timeout, else 500 ms.
 * - `maxEntryBytes`: largest encoded entry, in UTF-8 bytes. Default 1 MiB.
 * - `scanCount`: `COUNT` hint of the `SCAN` behind `deletePrefix` and
 *   `deletePattern`. Default 1000.
 * - `deleteBatchSize`: keys per `UNLINK` in `deletePrefix` and `deletePattern`. Default 500.
 * - `breaker`: circuit breaker settings, or `false` for none.
 * - `tombstoneRetention`: how long an invalidated key keeps its tombstone
 *   (and a cleared keyspace its record), which refuses the write of a load
 *   that started before the invalidation. Default 2 minutes: raise it when
 *   loaders can run longer.
 * - `batchReads`: the single-key reads of a node issued in the same tick go
 *   out as one `MGET` (per slot on a Cluster) with one deadline for the
 *   batch; each read still gets its own reply, error and decode. Default
 *   `true`; `false` sends one `GET` per read.
 * - `fallback`: a last-known-good copy of recently read entries, served only
 *   while Redis is failing ({@link FallbackOptions}; `true` for the
 *   defaults). Default off.
 * - `compress`: compress large values (see {@link CompressOptions}). Off by
 *   default.
 * - `decodeCache`: a read whose reply is the same as the last one decoded
 *   for that key reuses that entry (a memory compare instead of
 *   `JSON.parse`, validation and inflating). Every read still fetches from
 *   Redis, so coherence is unchanged; the value is the same object on each
 *   such read (as a memory-store hit is). Bounded by `entries` (default
 *   10,000) and `maxBytes` of kept replies (default 4 MiB); `false` turns it
 *   off. See {@link DecodeCacheOptions}.
 * - `batchReads` also carries the tag-record reads of a tick; a batch of one
 *   key goes out as `GET`. With the decode cache on, a read of a key whose
 *   last entry had tags asks for their records in the same batch: a tagged
 *   hit is then one round trip (the records' times serve that read's check
 *   only, within 50 ms of it).
 * - Entries are read as UTF-8 strings; those that need their bytes
 *   (compressed, or holding U+FFFD) are read again as bytes in one more
 *   `MGET`. With `compress` set, entries are read as bytes from the start.
 *
 * @example
 * ```ts
 * import type { RedisStore } from "cachet/redis"
 * const options: RedisStore.Options = { prefix: "myapp", commandTimeout: "250 millis", maxEntryBytes: 256 * 1024 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly prefix: string
  readonly commandTimeout?: Duration.Input | undefined
  readonly maxEntryBytes?: number | undefined
  readonly scanCount?: number | undefined
  readonly deleteBatchSize?: number | undefined
  readonly breaker?: BreakerOptions | false | undefined
  readonly tombstoneRetention?: Duration.Input | undefined
  readonly batchReads?: boolean | undefined
  readonly fallback?: FallbackOptions | true | undefined
  readonly compress?: CompressOptions | undefined
  readonly decodeCache?: DecodeCacheOptions | false | undefined
}

/**
 * Bounds of the decode cache (RedisStore option `decodeCache`): at most
 * `entries` keys, and `maxBytes` of the replies it compares against (the
 * strings as read, counted in UTF-16 units, which is bytes for ASCII; or
 * copies of the bytes): a reply larger than an eighth of that is never kept.
 *
 * **Details**
 *
 * Reading a hot key that has not changed in Redis then costs one compare of
 * its reply instead of parsing its JSON and validating it: on the bench's
 * 1 KB values this is most of a hit's CPU. Eviction is CLOCK (a hit sets a
 * bit; nothing is relinked). Memory: the kept replies plus the decoded values
 * they keep alive.
 *
 * **Gotchas**
 *
 * The value handed out is shared between the reads of unchanged bytes, as
 * a memory-store or `TieredStore` L1 hit's is: treat cached values as
 * immutable (Schema types are `readonly`).
 *
 * @example
 * ```ts
 * import { RedisStore } from "cachet/redis"
 * const layer = RedisStore.layer({
 *   url: "redis://localhost:6379",
 *   prefix: "myapp",
 *   decodeCache: { entries: 50_000, maxBytes: 64 * 1024 * 1024 }
 * })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface DecodeCacheOptions {
  readonly entries?: number | undefined
  readonly maxBytes?: number | undefined
}

/**
 * Options of {@link layer}: the store's {@link Options} and where Redis is,
 * as exactly one of
 *
 * - `url`: a standalone server (`redis://host:port`),
 * - `cluster`: seed nodes of a Redis Cluster,
 * - `client`: an ioredis client you own (it is not closed with the layer).
 *
 * With `url` or `cluster`, the client options of `IoRedis.Options` apply
 * (`commandTimeout` serves both).
 *
 * @example
 * ```ts
 * import type { RedisStore } from "cachet/redis"
 * const options: RedisStore.LayerOptions = { url: "redis://localhost:6379", prefix: "myapp" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends Options, Omit<IoRedis.Options, "commandTimeout" | "reservePool"> {
  readonly client?: IoRedis.Client | undefined
}

const DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024

interface Resolved {
  readonly namespace: string
  readonly commandTimeout: number | undefined
  readonly maxEntryBytes: number
  readonly scanCount: number
  readonly deleteBatchSize: number
  readonly breaker: { readonly failures: number; readonly openFor: number } | undefined
  readonly tombstoneRetention: number
  readonly batchReads: boolean
  readonly fallback: MemoryOptions | undefined
  readonly compress: Compression.Resolved | undefined
  readonly decodeCache: DecodeCache.Bounds | undefined
}

/** How long tag times read with an entry may answer its check (ms, real time). */
const PREFETCH_MAX_AGE = 50

/** A tag record's time (`<time>:...`, the server's clock), or undefined when absent or unreadable. */
const tagTimeOf = (raw: string | Buffer | null): number | undefined => {
  if (raw === null) return undefined
  const time = Number((typeof raw === "string" ? raw : raw.toString("latin1")).split(":")[0])
  return Number.isFinite(time) ? time : undefined
}

const sameTags = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const positiveInt = (option: string, value: number | undefined, fallback: number): number =>
  positiveIntOption("RedisStore", option, value, fallback)

const resolve = (options: Options): Resolved => {
  if (typeof options.prefix !== "string" || options.prefix === "") {
    throw new Error(`cachet: RedisStore option "prefix" must be a non-empty string`)
  }
  const breaker =
    options.breaker === false
      ? undefined
      : {
          failures: positiveInt("breaker.failures", options.breaker?.failures, 5),
          openFor: clientInternal.millisOption("RedisStore", "breaker.openFor", options.breaker?.openFor, 100)
        }
  return {
    namespace: escapeValue(options.prefix),
    commandTimeout:
      options.commandTimeout === undefined
        ? undefined
        : clientInternal.millisOption("RedisStore", "commandTimeout", options.commandTimeout, 0, 1),
    maxEntryBytes: positiveInt("maxEntryBytes", options.maxEntryBytes, DEFAULT_MAX_ENTRY_BYTES),
    scanCount: positiveInt("scanCount", options.scanCount, 1000),
    deleteBatchSize: positiveInt("deleteBatchSize", options.deleteBatchSize, 500),
    breaker,
    tombstoneRetention: clientInternal.millisOption(
      "RedisStore",
      "tombstoneRetention",
      options.tombstoneRetention,
      2 * 60 * 1000
    ),
    batchReads: options.batchReads !== false,
    fallback: Fallback.resolve(options.fallback),
    compress: Compression.resolve(options.compress),
    decodeCache:
      options.decodeCache === false
        ? undefined
        : {
            entries: positiveInt("decodeCache.entries", options.decodeCache?.entries, DecodeCache.DEFAULTS.entries),
            maxBytes: positiveInt("decodeCache.maxBytes", options.decodeCache?.maxBytes, DecodeCache.DEFAULTS.maxBytes)
          }
  }
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

/** How long a node's clock anchor is trusted before a TIME call refreshes it (ms). */
const ANCHOR_MAX_AGE = 10_000

/** A tombstone's envelope (see `scripts.ts`): an invalidated key, no entry. */
const TOMBSTONE = /^\{"o":\d+,"v":1,"x":1\}$/
/** An envelope's `staleUntil` (`"s"`, before the data). */
const STALE_UNTIL = /^\{"o":\d+,"v":1,"c":-?[\d.e+]+,"f":-?[\d.e+]+,"s":(-?[\d.e+]+)[,}]/

const DELETE_IF_SAME_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) end
return 0`

const makeResolved = (resolved: Resolved): Effect.Effect<CacheStore["Service"], never, IoRedis.IoRedis | Scope.Scope> =>
  Effect.gen(function* () {
    const io = yield* IoRedis.IoRedis
    const clock = yield* Clock.Clock
    const timeout = resolved.commandTimeout ?? io.commandTimeout ?? clientInternal.DEFAULT_COMMAND_TIMEOUT
    const { namespace, maxEntryBytes, compress } = resolved
    // The circuit breakers are per node, inside `exec` (see `connection.ts`).
    const connection = yield* Connection.make(io, timeout, resolved.breaker)
    const { client, cluster, standalone, exec, ready } = connection
    const router = makeRouter(connection, resolved.deleteBatchSize)
    const { nodeOfKey, groups, fetchRaw, fetchText } = router
    const clearPattern = Scan.make(connection, router, resolved)
    const fullKey = (key: string) => `${namespace}:${key}`
    const tagKey = (tag: string) => `${namespace}:~tag:${tag}`
    // The record of a keyspace's last clear (`invalidateKeyspace`): loads
    // that started before it do not store. Keys are `<keyspace>:<key>`.
    const clearKey = (prefix: string) => `${namespace}:~clear:${prefix}`
    const keyspaceOf = (key: string) => key.slice(0, key.indexOf(":") + 1)
    const scripts = Scripts.define(client)
    const tombstoneMillis = String(resolved.tombstoneRetention)

    // The server's clock as last seen per node: a reply that carried the
    // server's time t, received at monotonic instant r, proves that the
    // server's clock read at least t + (m - r) at any later instant m. Loads
    // take their start time from it (no round trip on a miss); a TIME call
    // refreshes it when it is older than ANCHOR_MAX_AGE.
    const anchors = new Map<string, { readonly server: number; readonly at: number }>()
    // Real monotonic time, not the Effect Clock: this extrapolates the
    // server's clock, which runs in real time whatever clock this process's
    // timelines use (a TestClock would freeze the estimate).
    const mono = () => performance.now()
    const anchor = (node: string, server: number) => {
      if (Number.isFinite(server)) anchors.set(node, { server, at: mono() })
    }

    // -- reading -------------------------------------------------------------

    /** Deletes an unreadable entry if it still holds the same bytes; never fails. */
    const dropCorrupt = (key: string, raw: Buffer | string): Effect.Effect<void> =>
      Effect.ignore(exec("get", nodeOfKey(key), () => client.eval(DELETE_IF_SAME_LUA, 1, key, raw)))

    /** Decodes raw replies; unreadable entries are deleted, then reported. */
    const memo = resolved.decodeCache === undefined ? undefined : new DecodeCache.DecodeCache(resolved.decodeCache)
    // Entries are read as UTF-8 strings (no Buffer per value); the few that
    // need their bytes (compressed, or holding U+FFFD) are read again as
    // bytes, in one more MGET (partial, as `getMany` is). A store that
    // compresses reads bytes from the start: most of its entries would
    // need the second read.
    const asText = compress === undefined
    const decodeAll = (
      keys: ReadonlyArray<string>,
      full: ReadonlyArray<string>,
      raws: ReadonlyArray<Buffer | string | null>,
      codec: EntryCodec,
      op: string
    ): Effect.Effect<Array<StoredEntry | undefined>, CacheStoreError> =>
      envelope.decodeAll(
        keys,
        full,
        raws,
        codec,
        clock.currentTimeMillisUnsafe(),
        dropCorrupt,
        maxEntryBytes,
        memo,
        (again) => fetchRaw(op, again, true)
      )

    // With `batchReads`, this tick's single-key reads of a node go out as
    // one multi-key read (`batch.ts`); without, one GET per read.
    const readOne = (k: string): Promise<string | Buffer | null> => (asText ? client.get(k) : client.getBuffer(k))
    const readMany = (
      op: string,
      keys: ReadonlyArray<string>,
      partial?: boolean
    ): Effect.Effect<Array<string | Buffer | null>, CacheStoreError> =>
      asText ? fetchText(op, keys, partial) : fetchRaw(op, keys, partial)
    const batcher = resolved.batchReads
      ? Batch.make<string | Buffer>(
          (node, keys) =>
            keys.length === 1
              ? Effect.map(
                  exec("get", node, () => readOne(keys[0]!)),
                  (raw) => [raw]
                )
              : readMany("get", keys),
          yield* Effect.context<never>(),
          nodeOfKey
        )
      : undefined

    /** One key's reply decoded: an unchanged reply from the decode cache without a step, else `decodeAll`. */
    const decodeOne = (
      key: string,
      k: string,
      raw: string | Buffer | null,
      codec: EntryCodec
    ): Effect.Effect<StoredEntry | undefined, CacheStoreError> => {
      if (raw === null) return Effect.undefined
      if (memo !== undefined) {
        const known = memo.get(k, raw, codec)
        if (known !== undefined) {
          return known.staleUntil <= clock.currentTimeMillisUnsafe() ? Effect.undefined : Effect.succeed(known)
        }
      }
      return Effect.map(decodeAll([key], [k], [raw], codec, "get"), (entries) => entries[0])
    }

    // Tag times read with the entries they guard. When the decode cache
    // knows the tags of a key's last entry, a batched read of the key asks
    // for their records in the same tick: on a standalone server they are in
    // the entry's own MGET (one round trip for a tagged hit instead of two),
    // on a Cluster read from their nodes at the same time. The times go with
    // this read's entry only: it is handed out as a copy whose tags array is
    // its own, and `getTagTimes` answers that very array once from them. They
    // were read no earlier than the entry, so checking the entry against
    // them is as sound as reading them after it; any other read asks Redis.
    // They answer only within PREFETCH_MAX_AGE of their read (real time): an
    // entry whose check is skipped (hidden here) and served much later (the
    // outage fallback's copy) is checked against what the store knows then.
    const prefetched = new WeakMap<
      ReadonlyArray<string>,
      { readonly times: ReadonlyArray<number | undefined>; readonly at: number }
    >()
    const withTagTimes = (
      entry: StoredEntry | undefined,
      tags: ReadonlyArray<string>,
      records: ReadonlyArray<string | Buffer | null> | undefined
    ): StoredEntry | undefined => {
      if (entry === undefined || records === undefined || !sameTags(entry.tags, tags)) return entry
      const own = entry.tags.slice()
      prefetched.set(own, { times: records.map(tagTimeOf), at: mono() })
      return { ...entry, tags: own }
    }

    // Batched, a read resumes once, with its decoded entry (the decoding runs
    // as the batch's reply is handed out); unbatched, one GET then the decode.
    const get: CacheStore["Service"]["get"] = (key, codec) => {
      const k = fullKey(key)
      if (batcher === undefined) {
        return Effect.flatMap(
          Effect.suspend(() => exec("get", nodeOfKey(k), () => readOne(k))),
          (raw) => decodeOne(key, k, raw, codec)
        )
      }
      const tags = memo?.tagsOf(k)
      if (tags === undefined || tags.length === 0) return batcher.one(k, (raw) => decodeOne(key, k, raw, codec))
      const tagKeys = tags.map(tagKey)
      return Effect.suspend(() =>
        batcher.oneWith(k, tagKeys.map(nodeOfKey), tagKeys, (raw, records) =>
          Effect.map(decodeOne(key, k, raw, codec), (entry) => withTagTimes(entry, tags, records))
        )
      )
    }

    const getMany: CacheStore["Service"]["getMany"] = (keys, codec) =>
      Effect.suspend(() => {
        if (keys.length === 0) return Effect.succeed([])
        const full = keys.map(fullKey)
        return readMany("getMany", full, true).pipe(
          Effect.flatMap((raws) => decodeAll(keys, full, raws, codec, "getMany"))
        )
      })

    // Presence only (keyspace versions): one MGET, nothing decoded; a
    // tombstone is no entry.
    const has: NonNullable<CacheStore["Service"]["has"]> = (keys) =>
      Effect.suspend(() => {
        if (keys.length === 0) return Effect.succeed([])
        return fetchRaw("getMany", keys.map(fullKey)).pipe(
          Effect.map((raws) => {
            const now = clock.currentTimeMillisUnsafe()
            return raws.map((raw) => {
              if (raw === null) return false
              const head = raw.toString("latin1", 0, 128)
              if (TOMBSTONE.test(head)) return false
              // Reads check staleUntil against the Clock too (the Redis TTL is a backstop).
              const staleUntil = STALE_UNTIL.exec(head)?.[1]
              return staleUntil === undefined || Number(staleUntil) > now
            })
          })
        )
      })

    // -- writing -------------------------------------------------------------

    type Write = readonly [key: string, json: string | Buffer, ttl: number]

    const prepare = (
      key: string,
      entry: StoredEntry,
      codec: EntryCodec,
      now: number
    ): Result.Result<Write, CacheEncodeError | CacheValueTooLarge> => {
      const json = envelope.encode(key, entry, codec, maxEntryBytes, compress)
      if (Result.isFailure(json)) return Result.fail(json.failure)
      return Result.succeed([fullKey(key), json.success, Math.ceil(entry.staleUntil - now)])
    }

    /** Everything is encoded (and size-checked) before any command. */
    const prepareAll = (
      entries: ReadonlyArray<readonly [key: string, entry: StoredEntry, ...rest: Array<unknown>]>,
      codec: EntryCodec
    ): Result.Result<Array<Write>, CacheEncodeError | CacheValueTooLarge> => {
      const now = clock.currentTimeMillisUnsafe()
      const writes: Array<Write> = []
      for (const [key, entry] of entries) {
        const write = prepare(key, entry, codec, now)
        if (Result.isFailure(write)) return Result.fail(write.failure)
        writes.push(write.success)
      }
      return Result.succeed(writes)
    }

    /**
     * The ordered write of one prepared entry (see `scripts.ts`): its order
     * time, or -1 when fenced. An entry already expired is a tombstone.
     */
    const writeOne = (
      [k, json, ttl]: Write,
      since: number | undefined,
      cleared: number | undefined,
      expect?: number | undefined
    ) => {
      const node = nodeOfKey(k)
      if (ttl <= 0)
        return scripts.tombstone(k, tombstoneMillis).then(([, now]) => {
          anchor(node, now)
          return -1
        })
      // A standalone server checks the keyspace's clear record in the
      // script; a Cluster keeps it in another slot, so it is read first.
      const clear =
        cluster === undefined && (since !== undefined || expect !== undefined)
          ? clearKey(keyspaceOf(k.slice(namespace.length + 1)))
          : k
      return scripts
        .setOrdered(
          k,
          clear,
          json,
          Number.isFinite(ttl) ? String(ttl) : "",
          since === undefined ? "" : String(Math.floor(since)),
          cleared === undefined ? "" : String(cleared),
          expect === undefined ? undefined : String(expect)
        )
        .then(([order, now]) => {
          anchor(node, now)
          return order
        })
    }

    /** A Cluster's fenced write reads the keyspace's clear time first (a load's write: not a hit). */
    const clearedAt = (key: string): Effect.Effect<number | undefined, CacheStoreError> => {
      if (cluster === undefined) return Effect.succeed(undefined)
      const k = clearKey(keyspaceOf(key))
      return Effect.map(
        exec("setOrdered", nodeOfKey(k), () => client.get(k)),
        (raw) => (raw === null ? undefined : Number.parseInt(raw, 10))
      )
    }

    const setOrdered: NonNullable<CacheStore["Service"]["setOrdered"]> = (key, entry, codec, since, expect) =>
      Effect.suspend((): Effect.Effect<number | undefined, CacheStoreError | CacheEncodeError | CacheValueTooLarge> => {
        const write = prepare(key, entry, codec, clock.currentTimeMillisUnsafe())
        if (Result.isFailure(write)) return Effect.fail(write.failure)
        const run = (cleared: number | undefined) =>
          exec("set", nodeOfKey(write.success[0]), () => writeOne(write.success, since, cleared, expect))
        return (
          since === undefined && expect === undefined ? run(undefined) : Effect.flatMap(clearedAt(key), run)
        ).pipe(Effect.map((order) => (order < 0 ? undefined : order)))
      })

    // A batch load's writes: one script call per node (per slot on a
    // Cluster), each entry fenced by its own load start as in `setOrdered`.
    const setOrderedMany: NonNullable<CacheStore["Service"]["setOrderedMany"]> = (entries, codec) =>
      Effect.suspend(
        (): Effect.Effect<
          ReadonlyArray<number | undefined>,
          CacheStoreError | CacheEncodeError | CacheValueTooLarge
        > => {
          if (entries.length === 0) return Effect.succeed([])
          const prepared = prepareAll(entries, codec)
          if (Result.isFailure(prepared)) return Effect.fail(prepared.failure)
          const writes = prepared.success
          const out: Array<number | undefined> = new Array(entries.length).fill(undefined)
          // Already expired (or never fenced: an explicit write has no place
          // in a batch load) entries are left out: not stored.
          const live = writes.map((_, i) => i).filter((i) => writes[i]![2] > 0 && entries[i]![2] !== undefined)
          if (live.length === 0) return Effect.succeed(out)
          const clear = cluster === undefined ? clearKey(keyspaceOf(entries[live[0]!]![0])) : ""
          const run = (cleared: number | undefined) =>
            Effect.forEach(
              groups(
                live.map((i) => writes[i]![0]),
                ioInternal.MAX_KEYS_PER_CALL
              ),
              ({ node, batches }) =>
                exec("setMany", node, () =>
                  Promise.all(
                    batches.map((batch) =>
                      scripts
                        .setOrderedMany(
                          clear,
                          cleared === undefined ? "" : String(cleared),
                          batch.map((j) => {
                            const i = live[j]!
                            const [k, json, ttl] = writes[i]!
                            return [
                              k,
                              json,
                              Number.isFinite(ttl) ? String(ttl) : "",
                              String(Math.floor(entries[i]![2]!))
                            ] as const
                          })
                        )
                        .then((reply) => {
                          anchor(node, reply[reply.length - 1]!)
                          batch.forEach((j, n) => {
                            const order = reply[n]!
                            out[live[j]!] = order < 0 ? undefined : order
                          })
                        })
                    )
                  )
                ),
              { concurrency: "unbounded", discard: true }
            )
          return Effect.flatMap(clearedAt(entries[live[0]!]![0]), run).pipe(Effect.as(out))
        }
      )

    // The server's clock, on the node that owns `key`: loads read it before
    // they start, and their write is ordered at it. A lower bound (never
    // later than the server's clock): from the node's anchor, less a drift
    // margin of 1 ms plus 1 ms a second; a round trip only when the anchor
    // is missing or old. Earlier is safe: at worst a load is fenced.
    const time: NonNullable<CacheStore["Service"]["time"]> = (key) =>
      Effect.suspend(() => {
        const k = fullKey(key)
        const node = nodeOfKey(k)
        const known = anchors.get(node)
        if (known !== undefined) {
          const age = mono() - known.at
          if (age >= 0 && age < ANCHOR_MAX_AGE) return Effect.succeed(Math.floor(known.server + age - 1 - age / 1000))
        }
        const target =
          cluster === undefined
            ? client
            : (cluster.nodes("master").find((n) => Connection.nodeKeyOf(n) === node) ?? client)
        return exec("get", node, () =>
          (target as unknown as { time: () => Promise<[string, string]> }).time().then(([seconds, micros]) => {
            const server = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
            anchor(node, server)
            return server
          })
        )
      })

    const set: CacheStore["Service"]["set"] = (key, entry, codec) =>
      Effect.asVoid(setOrdered(key, entry, codec, undefined))

    const setMany: CacheStore["Service"]["setMany"] = (entries, codec) =>
      Effect.suspend((): Effect.Effect<void, CacheStoreError | CacheEncodeError | CacheValueTooLarge> => {
        if (entries.length === 0) return Effect.void
        const prepared = prepareAll(entries, codec)
        if (Result.isFailure(prepared)) return Effect.fail(prepared.failure)
        const writes = prepared.success
        // One script call per entry; auto-pipelining sends a node's together.
        return Effect.forEach(
          groups(
            writes.map((w) => w[0]),
            ioInternal.MAX_KEYS_PER_CALL
          ),
          ({ node, batches }) =>
            exec("setMany", node, () =>
              Promise.all(batches.flatMap((b) => b.map((i) => writeOne(writes[i]!, undefined, undefined))))
            ),
          { concurrency: "unbounded", discard: true }
        )
      })

    // -- deleting ------------------------------------------------------------

    // An invalidation leaves a tombstone ordered by the server's clock (for
    // `tombstoneRetention`), so that a load that started before it cannot
    // store what it read: the write script sees the newer order and refuses.
    const del: CacheStore["Service"]["delete"] = (key) =>
      Effect.suspend(() => {
        const k = fullKey(key)
        const node = nodeOfKey(k)
        return exec("delete", node, () =>
          scripts.tombstone(k, tombstoneMillis).then(([existed, now]) => {
            anchor(node, now)
            return existed
          })
        ).pipe(Effect.map((n) => n > 0))
      })

    const deleteMany: CacheStore["Service"]["deleteMany"] = (keys) =>
      Effect.suspend(() => {
        if (keys.length === 0) return Effect.succeed(0)
        const full = keys.map(fullKey)
        return Effect.map(
          Effect.forEach(
            groups(full, resolved.deleteBatchSize),
            ({ node, batches }) =>
              exec("deleteMany", node, () =>
                Promise.all(
                  batches.flatMap((b) =>
                    b.map((i) =>
                      scripts.tombstone(full[i]!, tombstoneMillis).then(([existed, now]) => {
                        anchor(node, now)
                        return existed
                      })
                    )
                  )
                )
              ),
            { concurrency: "unbounded" }
          ),
          (results) => results.flat().reduce((n, m) => n + m, 0)
        )
      })

    // The clear record first (loads that started before it will not
    // store), then every key of the prefix.
    const deletePrefix: CacheStore["Service"]["deletePrefix"] = (prefix) =>
      Effect.suspend(() => {
        const k = clearKey(prefix)
        return Effect.andThen(
          exec("deletePrefix", nodeOfKey(k), () => scripts.record(k, tombstoneMillis, "clear")),
          clearPattern(`${Glob.globEscape(fullKey(prefix))}*`)
        )
      })

    // A pattern invalidation: the keyspace's clear record first (every load
    // of the keyspace that started before it is fenced: a few fills lost,
    // never a stale value stored), then SCAN with a MATCH that narrows to
    // the pattern's literal start, each key tested exactly, UNLINK in batches.
    const deletePattern: NonNullable<CacheStore["Service"]["deletePattern"]> = (prefix, pattern) =>
      Effect.suspend(() => {
        const matcher = Glob.compile(pattern)
        if (typeof matcher === "string") {
          return Effect.fail(Connection.storeError("deletePattern", "Protocol", new Error(matcher)))
        }
        const k = clearKey(prefix)
        const head = fullKey(prefix)
        return Effect.andThen(
          exec("deletePattern", nodeOfKey(k), () => scripts.record(k, tombstoneMillis, "clear")),
          clearPattern(
            `${Glob.globEscape(head)}${Glob.scanHint(matcher, 128)}`,
            (key) => key.startsWith(head) && Glob.covers(matcher, key.slice(head.length)),
            "deletePattern"
          )
        )
      })

    // -- tags ----------------------------------------------------------------

    const getTagTimes: CacheStore["Service"]["getTagTimes"] = (tags) =>
      Effect.suspend(() => {
        // The times read with this entry (see `withTagTimes`), once.
        const known = prefetched.get(tags)
        if (known !== undefined) {
          prefetched.delete(tags)
          if (mono() - known.at <= PREFETCH_MAX_AGE) return Effect.succeed(known.times as Array<number | undefined>)
        }
        if (tags.length === 0) return Effect.succeed([])
        const keys = tags.map(tagKey)
        // Batched with the tick's other reads (a tag many entries carry is read once).
        const raws = batcher !== undefined ? batcher.many(keys.map(nodeOfKey), keys) : fetchText("getTagTimes", keys)
        return raws.pipe(
          // Redis expires the record (PX, the server's clock): no check
          // against this process's clock, which may be skewed.
          Effect.map((raws) => raws.map(tagTimeOf))
        )
      })

    // The tag's time is the server's, whatever `time` the caller's clock
    // says: entries are ordered on the same clock (their `o`).
    const setTagTime: CacheStore["Service"]["setTagTime"] = (tag, _time, retainMillis) =>
      Effect.suspend(() => {
        const ttl = Math.ceil(retainMillis)
        if (!(ttl > 0) || !Number.isFinite(ttl)) return Effect.void
        const k = tagKey(tag)
        return Effect.asVoid(exec("setTagTime", nodeOfKey(k), () => scripts.record(k, String(ttl), "tag")))
      })

    // -- health --------------------------------------------------------------

    const ping: CacheStore["Service"]["ping"] = Effect.suspend(() => {
      if (cluster === undefined) return Effect.asVoid(exec("ping", Connection.STANDALONE, () => standalone!.ping()))
      return Effect.andThen(
        ready("ping"),
        Effect.suspend(() => {
          const masters = cluster.nodes("master")
          if (masters.length === 0)
            return Effect.fail(Connection.storeError("ping", "Unavailable", new Error("no master known")))
          return Effect.forEach(
            masters,
            (redis) => exec("ping", Connection.nodeKeyOf(redis), () => redis.ping(), false),
            {
              concurrency: "unbounded",
              discard: true
            }
          )
        })
      )
    })

    const store = CacheStoreModule.make({
      name: Connection.STORE,
      get,
      getMany,
      set,
      setMany,
      delete: del,
      deleteMany,
      deletePrefix,
      deletePattern,
      has,
      getTagTimes,
      setTagTime,
      ping,
      info: Effect.succeed(undefined),
      setOrdered,
      setOrderedMany,
      time,
      // One breaker per node (see `connection.ts`), as far as nodes were seen.
      health: Effect.map(connection.nodeStates, (nodes) => ({
        breakers: nodes.map((n) => ({
          node: n.node,
          state:
            n.state === "Closed" ? ("closed" as const) : n.state === "Open" ? ("open" as const) : ("half-open" as const)
        }))
      }))
    })
    const served = resolved.fallback === undefined ? store : Fallback.wrap(store, resolved.fallback, clock)
    nodeStatesOf.set(store, connection.nodeStates)
    nodeStatesOf.set(served, connection.nodeStates)
    return served
  })

const nodeStatesOf = new WeakMap<object, Effect.Effect<ReadonlyArray<Breaker.NodeState>>>()

/**
 * The state of one node's circuit breaker, as {@link nodeStates} reports it.
 *
 * - `node`: `"standalone"`, or a Cluster master's `host:port` (`"unknown"`
 *   for calls made while the client had no slot map yet).
 * - `state`: `"Closed"` (calls pass), `"Open"` (calls to this node fail at
 *   once with `CircuitOpen` while a background PING probes it), `"HalfOpen"`
 *   (that probe is in flight).
 * - `failures`: calls to the node that failed with `Timeout` or `Unavailable`
 *   (a `getMany` whose other nodes answered counts here, its keys on this
 *   node read as misses).
 * - `rejected`: calls refused by the open circuit.
 * - `openings`: times the circuit opened from closed.
 * - `probes`: background probes sent.
 * - `redirects`: `MOVED`/`ASK` replies followed (retried once, within the
 *   same `commandTimeout`).
 *
 * @example
 * ```ts
 * import type { RedisStore } from "cachet/redis"
 * const healthy = (s: RedisStore.NodeState) => s.state === "Closed"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeState extends Breaker.NodeState {}

/**
 * Every node's circuit breaker state of a Redis store (built by this module),
 * with its counters: one entry per node seen so far (`"standalone"`, or each
 * Cluster master that took a call). `undefined` for any other store.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CacheStore } from "cachet"
 * import { RedisStore } from "cachet/redis"
 *
 * const openNodes = Effect.gen(function*() {
 *   const store = yield* CacheStore
 *   const states = yield* (RedisStore.nodeStates(store) ?? Effect.succeed([]))
 *   return states.filter((s) => s.state !== "Closed").map((s) => s.node)
 * })
 * ```
 *
 * @since 0.1.0
 * @category getters
 */
export const nodeStates = (store: CacheStore["Service"]): Effect.Effect<ReadonlyArray<NodeState>> | undefined =>
  nodeStatesOf.get(store)

/**
 * The connection of {@link layer} and {@link make}, validated at the call:
 * a client built from `url` or `cluster` (closed with the scope), or the
 * given `client` (left open). Only the `IoRedis` service: the store has no
 * use for effect's generic `Redis` service that `IoRedis.layer` adds.
 */
const connection = (
  options: LayerOptions
): { readonly store: Resolved; readonly io: Effect.Effect<IoRedis.Service, never, Scope.Scope> } => {
  const { rest, io } = ioInternal.connection("RedisStore", options)
  return { store: resolve(rest), io }
}

/**
 * Builds the store with its own connection (see {@link layer} for the
 * options). The store and the connection it built live in the current scope.
 *
 * **Gotchas**
 *
 * Invalid options (none or several of `url`, `cluster` and `client`, an
 * empty prefix, a bad duration or count) throw at the call, naming the
 * option.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisStore } from "cachet/redis"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* RedisStore.make({ url: "redis://localhost:6379", prefix: "myapp" })
 *   yield* store.ping
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: LayerOptions): Effect.Effect<CacheStore["Service"], never, Scope.Scope> => {
  const { store, io } = connection(options)
  return Effect.flatMap(io, (service) => Effect.provideService(makeResolved(store), IoRedis.IoRedis, service))
}

/**
 * Builds the store on the `IoRedis` client in context. The store lives in the
 * current scope (its circuit breaker and listeners); the client is not
 * closed with it.
 *
 * **Gotchas**
 *
 * Invalid options (an empty prefix, a bad duration or count) throw at the
 * call, naming the option.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { IoRedis, RedisStore } from "cachet/redis"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* RedisStore.makeClient({ prefix: "myapp" })
 *   yield* store.ping
 * }).pipe(Effect.scoped, Effect.provide(IoRedis.layer({ url: "redis://localhost:6379" })))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeClient = (
  options: Options
): Effect.Effect<CacheStore["Service"], never, IoRedis.IoRedis | Scope.Scope> => makeResolved(resolve(options))

/**
 * The store as a `CacheStore` layer, on the `IoRedis` client in context (for
 * apps that share one client between the cache and other code).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet } from "cachet"
 * import { IoRedis, RedisStore } from "cachet/redis"
 *
 * const CacheLive = Cachet.layer().pipe(
 *   Layer.provide(RedisStore.layerClient({ prefix: "myapp" })),
 *   Layer.provide(IoRedis.layer({ url: "redis://localhost:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (options: Options): Layer.Layer<CacheStore, never, IoRedis.IoRedis> => {
  const resolved = resolve(options)
  return Layer.effect(CacheStore, makeResolved(resolved))
}

/**
 * The store as a `CacheStore` layer, with its own connection: from `url` or
 * `cluster` (built with `IoRedis.layer` and closed with the layer), or on a
 * `client` you own (not closed with the layer).
 *
 * **Gotchas**
 *
 * Invalid options (none or several of `url`, `cluster` and `client`, an
 * empty prefix, a bad duration) throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet } from "cachet"
 * import { RedisStore } from "cachet/redis"
 *
 * const CacheLive = Cachet.layer().pipe(
 *   Layer.provide(RedisStore.layer({ url: "redis://localhost:6379", prefix: "myapp" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: LayerOptions): Layer.Layer<CacheStore> => {
  const { store, io } = connection(options)
  return Layer.effect(CacheStore, makeResolved(store)).pipe(Layer.provide(Layer.effect(IoRedis.IoRedis, io)))
}

/**
 * The store options read by {@link layerConfig}, from the `ConfigProvider`:
 *
 * - `CACHET_REDIS_PREFIX` (optional): the key prefix. Default `"cachet"`.
 * - `CACHET_REDIS_MAX_ENTRY_BYTES` (optional): see {@link Options}.
 *
 * The connection is read by `IoRedis.config` (`REDIS_URL` or
 * `REDIS_CLUSTER_NODES`, ...).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisStore } from "cachet/redis"
 * const prefix = Effect.map(RedisStore.config, (o) => o.prefix)
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  prefix: Config.NonEmptyString("CACHET_REDIS_PREFIX").pipe(Config.withDefault("cachet")),
  maxEntryBytes: Config.option(Config.Int("CACHET_REDIS_MAX_ENTRY_BYTES"))
}).pipe(
  Config.map(
    (raw): Options =>
      Option.isSome(raw.maxEntryBytes)
        ? { prefix: raw.prefix, maxEntryBytes: raw.maxEntryBytes.value }
        : { prefix: raw.prefix }
  )
)

/**
 * {@link layer} with the connection read by `IoRedis.config` and the store
 * options by {@link config}; `overrides` apply on top.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet } from "cachet"
 * import { RedisStore } from "cachet/redis"
 *
 * // REDIS_URL=redis://cache:6379 CACHET_REDIS_PREFIX=myapp
 * const CacheLive = Cachet.layer().pipe(Layer.provide(RedisStore.layerConfig()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  overrides?: Partial<Omit<LayerOptions, "url" | "cluster" | "client">>
): Layer.Layer<CacheStore, Config.ConfigError> =>
  Layer.unwrap(
    Effect.map(Config.all({ connection: IoRedis.config, store: config }), ({ connection, store }) =>
      layer({
        ...connection,
        ...store,
        ...overrides,
        redisOptions: { ...connection.redisOptions, ...overrides?.redisOptions }
      })
    )
  )
