/**
 * The L1 of a `TieredStore`: what one process keeps of the shared L2.
 *
 * - Entries: decoded `StoredEntry` objects (no serialisation on a hit), under
 *   the eviction policy the memory store uses (`internal/eviction.ts`:
 *   W-TinyLFU, or the LRU of `internal/lru.ts` with `eviction: "lru"`), with
 *   the memory store's options. Each expires at the earlier of its `staleUntil` and
 *   `maxTtl` after the L2 read that gave it started, on Effect's `Clock`. An entry is handed out as
 *   stored: its timeline is never changed.
 * - Tag times: a cache of the L2's tag records, each trusted until
 *   `validUntil` (`maxTtl` after the L2 read started), raised (never
 *   lowered) by invalidations this process makes or hears of on the bus.
 * - A guard against stale backfills: an L2 read that was in flight when its
 *   key was invalidated (here or on the bus) must not put what it read into
 *   the L1. Every invalidation bumps a counter and remembers the key's bump;
 *   a read records the counter when it starts and may backfill only if its
 *   key was not bumped since. The memory is bounded: past `GUARD_KEYS`
 *   remembered keys the oldest is forgotten and every read that started
 *   before its bump is refused (conservative: a refused backfill is one more
 *   L2 read later, never a stale value).
 *
 * This module does no I/O and never fails.
 *
 * @internal
 */
import type { MemoryOptions, StoredEntry } from "../../CacheStore.ts"
import * as Eviction from "../../internal/eviction.ts"
import { checkPositive, positiveInt } from "../../internal/numbers.ts"
import { estimateSize } from "../../internal/size.ts"

/** An L1 copy: the entry as it was given (its timeline never changes), and when the L1 drops it. */
interface Copy {
  readonly entry: StoredEntry
  readonly expiresAt: number
}

/** A cached tag record; `time` is the latest invalidation known (or none). */
interface TagRecord {
  time: number | undefined
  retainUntil: number
  validUntil: number
}

/** Keys whose last invalidation the backfill guard remembers. */
const GUARD_KEYS = 1024

/** The L1; every method is synchronous. */
export interface L1 {
  /** An entry that has not expired (and marks it recently used). */
  readonly get: (key: string, now: number) => StoredEntry | undefined
  /** Whether an unexpired entry is held, without marking it used. */
  readonly peek: (key: string, now: number) => boolean
  /** Keeps an entry until the earlier of its `staleUntil` and `since + maxTtl` (`since`: when the L2 read that gave it started; default `now`). */
  readonly set: (key: string, entry: StoredEntry, now: number, since?: number) => void
  readonly delete: (key: string) => void
  readonly deletePrefix: (prefix: string) => void
  /** Drops the entries under `prefix` whose key part after it `matches` (escaped, as stored). */
  readonly deleteMatching: (prefix: string, matches: (keyPart: string) => boolean) => void
  /** Drops every entry and every cached tag record. */
  readonly clear: () => void
  /**
   * The tag's invalidation time if the cache knows it (`undefined`: never
   * invalidated, or forgotten after its retention), or `null` when the L2
   * must be asked. With `stale`, a record past `validUntil` answers too (for
   * when the L2 cannot be asked).
   */
  readonly tagTime: (tag: string, now: number, stale: boolean) => number | undefined | null
  /** Records what the L2 answered for a tag, trusted for `maxTtl` from `since` (when the read started; default `now`). */
  readonly tagFetched: (tag: string, time: number | undefined, now: number, since?: number) => void
  /** Records an invalidation (local or from the bus); never lowers a time. */
  readonly tagInvalidated: (tag: string, time: number, retainUntil: number) => void
  /** The guard's clock: record it when an L2 read starts. */
  readonly mark: () => number
  /** Whether a read started at `mark` may backfill `key`. */
  readonly mayBackfill: (key: string, mark: number) => boolean
  /** Whether a read started at `mark` may cache tag times (no reset since). */
  readonly mayCacheTags: (mark: number) => boolean
  /** An invalidation of `key`: reads in flight will not backfill it. */
  readonly touch: (key: string) => void
  /** An invalidation of everything (prefix, clear, reset): no read in flight backfills. */
  readonly touchAll: () => void
  readonly entries: () => number
  /** Tag records held: at most `max(capacity, 1_000)`. */
  readonly tags: () => number
  readonly evictions: () => number
  readonly bytes: () => number | undefined
}

/** Validates L1 options; a bad one throws, naming it. */
export const validateOptions = (options: MemoryOptions | undefined): void => {
  positiveInt("TieredStore", "l1.capacity", options?.capacity, 1)
  checkPositive("TieredStore", "l1.maxBytes", options?.maxBytes)
  Eviction.validate("TieredStore", "l1.", options)
}

/**
 * Builds an L1. Options are validated at the call (a bad one throws, naming
 * it). `maxTtl` is in milliseconds (`Infinity` for no bound).
 */
export const make = (options: MemoryOptions | undefined, maxTtl: number): L1 => {
  validateOptions(options)
  const capacity = options?.capacity ?? 10_000
  const maxBytes = options?.maxBytes
  const sizeOf = maxBytes === undefined ? undefined : (options?.sizeOf ?? estimateSize)
  // Tag records: as many as entries, at least 1,000 (many entries share tags).
  const tagCapacity = Math.max(capacity, 1_000)

  // Copies by the policy's slot.
  const copies: Array<Copy | undefined> = []
  const lru = Eviction.make({
    capacity,
    maxBytes,
    eviction: options?.eviction,
    seed: options?.seed,
    release: (slot) => {
      copies[slot] = undefined
    }
  })
  const tags = new Map<string, TagRecord>()

  let counter = 0
  let floor = 0
  const touched = new Map<string, number>()

  const get = (key: string, now: number): StoredEntry | undefined => {
    const slot = lru.find(key)
    if (slot === Eviction.NIL) return undefined
    const copy = copies[slot]!
    if (copy.expiresAt <= now) {
      lru.remove(slot)
      return undefined
    }
    lru.touch(slot)
    return copy.entry
  }

  const set = (key: string, entry: StoredEntry, now: number, since: number = now): void => {
    const existing = lru.find(key)
    if (existing !== Eviction.NIL) lru.remove(existing)
    // `since`: when the L2 read that gave this entry started. The copy's
    // lifetime is counted from then, not from when the reply arrived, so
    // an invalidation made while the read was in flight (that the L1 cannot
    // hear of without the bus) is honoured within maxTtl of it.
    const expiresAt = Math.min(entry.staleUntil, since + maxTtl)
    if (expiresAt <= now) return
    const size = sizeOf === undefined ? 0 : sizeOf(entry.value) + 2 * key.length + 96
    // Too big for the L1 budget: the L2 keeps it; the L1 does not.
    if (maxBytes !== undefined && size > maxBytes) return
    const slot = lru.add(key, size)
    if (slot !== Eviction.NIL) copies[slot] = { entry, expiresAt }
  }

  const deleteKey = (key: string): void => {
    const slot = lru.find(key)
    if (slot !== Eviction.NIL) lru.remove(slot)
  }

  const deletePrefix = (prefix: string): void => {
    lru.removePrefix(prefix)
  }

  const peek = (key: string, now: number): boolean => {
    const slot = lru.find(key)
    return slot !== Eviction.NIL && copies[slot]!.expiresAt > now
  }

  const deleteMatching = (prefix: string, matches: (keyPart: string) => boolean): void => {
    for (const slot of lru.slots()) {
      const key = lru.keys[slot]!
      if (key.startsWith(prefix) && matches(key.slice(prefix.length))) lru.remove(slot)
    }
  }

  const clear = (): void => {
    lru.clear()
    tags.clear()
  }

  const recordOf = (tag: string): TagRecord => {
    let record = tags.get(tag)
    if (record === undefined) {
      record = { time: undefined, retainUntil: 0, validUntil: 0 }
      tags.set(tag, record)
      if (tags.size > tagCapacity) tags.delete(tags.keys().next().value!)
    }
    return record
  }

  const tagTime = (tag: string, now: number, stale: boolean): number | undefined | null => {
    const record = tags.get(tag)
    if (record === undefined || (!stale && record.validUntil <= now)) return null
    return record.time !== undefined && record.retainUntil > now ? record.time : undefined
  }

  const tagFetched = (tag: string, time: number | undefined, now: number, since: number = now): void => {
    const record = recordOf(tag)
    // The L2 answered for `now`; an invalidation heard meanwhile may be later.
    if (time !== undefined && (record.time === undefined || record.retainUntil <= now || time > record.time)) {
      record.time = time
      // The L2 drops a record after its retention; so do we (retention is
      // not sent back by the L2: keep it as long as we trust the record).
      record.retainUntil = Math.max(record.retainUntil, now + maxTtl)
    }
    // Trusted for maxTtl from when the read started (as entries are).
    record.validUntil = Math.max(record.validUntil, since + maxTtl)
  }

  const tagInvalidated = (tag: string, time: number, retainUntil: number): void => {
    const record = recordOf(tag)
    if (record.time === undefined || time > record.time) {
      record.time = time
      record.retainUntil = retainUntil
    } else if (time === record.time) {
      record.retainUntil = Math.max(record.retainUntil, retainUntil)
    }
  }

  const touch = (key: string): void => {
    counter++
    touched.delete(key)
    touched.set(key, counter)
    if (touched.size > GUARD_KEYS) {
      const [oldest, bump] = touched.entries().next().value!
      touched.delete(oldest)
      floor = bump
    }
  }

  const touchAll = (): void => {
    counter++
    floor = counter
    touched.clear()
  }

  return {
    get,
    set,
    delete: deleteKey,
    deletePrefix,
    deleteMatching,
    peek,
    clear,
    tagTime,
    tagFetched,
    tagInvalidated,
    mark: () => counter,
    mayBackfill: (key, mark) => mark >= floor && (touched.get(key) ?? 0) <= mark,
    mayCacheTags: (mark) => mark >= floor,
    touch,
    touchAll,
    entries: () => lru.size,
    tags: () => tags.size,
    evictions: () => lru.evictions,
    bytes: () => (maxBytes === undefined ? undefined : lru.bytes)
  }
}
