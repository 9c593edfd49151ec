/**
 * The in-memory store: entries under an eviction policy (`eviction.ts`:
 * W-TinyLFU by default, or the shared LRU of `lru.ts`), and tag times.
 *
 * An entry is a slot of the policy (an index, no object per entry): its key,
 * hash, links and size live in the policy's arrays, its value and times in
 * this store's arrays by the same slot. Times are the creation time (a
 * double) and the freshness and staleness deadlines as 32-bit offsets from
 * it; what few entries have (tags, the negative flag, times that offsets
 * cannot hold exactly) is in one side table. A read hands out a new
 * `StoredEntry` built from the slot, so an entry handed to a reader never
 * changes under it; the hit path (`getFreshUnsafe`) reads the value alone.
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import { CacheValueTooLarge } from "../CacheError.ts"
import * as Eviction from "./eviction.ts"
import * as Glob from "./glob.ts"
import { flatten } from "./keyEncoding.ts"
import { checkPositive, positiveInt } from "./numbers.ts"
import { estimateSize } from "./size.ts"
import { type MemoryOptions, NotFresh, type StoredEntry, type StoreInfo, type StoreService } from "./store.ts"

/** What few entries have: tags, a negative flag, and times that offsets cannot hold exactly. */
interface Extra {
  readonly tags: ReadonlyArray<string>
  readonly negative: boolean | undefined
  readonly createdAt: number
  readonly freshUntil: number
  readonly staleUntil: number
}

const noTags: ReadonlyArray<string> = []

/** An offset in `fresh` that says: this slot's entry is in the side table. */
const EXTRA = -1

/**
 * A deadline as an offset from the creation time in one 32-bit integer:
 * milliseconds when it is 0 to 2^31 - 1 (24.8 days); past that, whole
 * seconds, negated (up to 68 years); `EXTRA` when neither holds it exactly.
 */
const offsetOf = (time: number, from: number): number => {
  const offset = time - from
  if (from + offset !== time || Object.is(time, -0)) return EXTRA
  if ((offset | 0) === offset && offset >= 0) return offset
  const seconds = offset / 1000
  return Number.isInteger(seconds) && seconds > 2_147_483 && seconds <= 0x7fff_ffff && from + seconds * 1000 === time
    ? -seconds
    : EXTRA
}

/** The offset in milliseconds of a slot's `offsetOf` (not `EXTRA`). */
const millisOf = (offset: number): number => (offset >= 0 ? offset : -1000 * offset)

/** Entries by slot: the value, the creation time and two offsets, and the side table. */
class Entries {
  values: Array<unknown> = []
  created = new Float64Array(0)
  fresh = new Int32Array(0)
  stale = new Int32Array(0)
  readonly extras = new Map<number, Extra>()

  /** Makes room for the policy's slots. */
  reserve(policy: Eviction.Eviction): void {
    this.created = policy.fit(this.created, (n) => new Float64Array(n))
    this.fresh = policy.fit(this.fresh, (n) => new Int32Array(n))
    this.stale = policy.fit(this.stale, (n) => new Int32Array(n))
  }

  write(slot: number, entry: StoredEntry): void {
    const { createdAt, freshUntil, staleUntil, tags } = entry
    this.values[slot] = entry.value
    this.created[slot] = createdAt
    const fresh = offsetOf(freshUntil, createdAt)
    const stale = offsetOf(staleUntil, createdAt)
    if (fresh !== EXTRA && stale !== EXTRA && tags.length === 0 && entry.negative === undefined) {
      this.fresh[slot] = fresh
      this.stale[slot] = stale
    } else {
      this.fresh[slot] = EXTRA
      this.extras.set(slot, {
        tags: tags.length === 0 ? noTags : tags,
        negative: entry.negative,
        createdAt,
        freshUntil,
        staleUntil
      })
    }
  }

  release(slot: number): void {
    this.values[slot] = undefined
    if (this.fresh[slot] === EXTRA) this.extras.delete(slot)
  }

  staleUntil(slot: number): number {
    const fresh = this.fresh[slot]!
    return fresh === EXTRA ? this.extras.get(slot)!.staleUntil : this.created[slot]! + millisOf(this.stale[slot]!)
  }

  /** A new entry object of the slot's entry. */
  read(slot: number): StoredEntry {
    const value = this.values[slot]
    if (this.fresh[slot] === EXTRA) {
      const extra = this.extras.get(slot)!
      return {
        value,
        createdAt: extra.createdAt,
        freshUntil: extra.freshUntil,
        staleUntil: extra.staleUntil,
        tags: extra.tags,
        negative: extra.negative
      }
    }
    const createdAt = this.created[slot]!
    return {
      value,
      createdAt,
      freshUntil: createdAt + millisOf(this.fresh[slot]!),
      staleUntil: createdAt + millisOf(this.stale[slot]!),
      tags: noTags,
      negative: undefined
    }
  }
}

interface TagRecord {
  readonly time: number
  readonly expiresAt: number
}

/**
 * Builds the memory store; its clock is the `Clock` of the building context.
 * Static configuration is validated at the call, synchronously: a bad option
 * throws with a message naming the option.
 */
export const make = (options?: MemoryOptions): Effect.Effect<StoreService> => {
  positiveInt("CacheStore.layerMemory", "capacity", options?.capacity, 1)
  checkPositive("CacheStore.layerMemory", "maxBytes", options?.maxBytes)
  positiveInt("CacheStore.layerMemory", "maxTags", options?.maxTags, 1)
  Eviction.validate("CacheStore.layerMemory", "", options)
  return Effect.map(Effect.service(Clock.Clock), (clock) => {
    const capacity = options?.capacity ?? 10_000
    const maxBytes = options?.maxBytes
    const sizeOf = maxBytes === undefined ? undefined : (options?.sizeOf ?? estimateSize)

    const entries = new Entries()
    const lru = Eviction.make({
      capacity,
      maxBytes,
      eviction: options?.eviction,
      seed: options?.seed,
      release: (slot) => entries.release(slot)
    })
    // Insertion order is invalidation order (a record is moved to the end
    // when its time advances), so the oldest and first to expire are first.
    const tagTimes = new Map<string, TagRecord>()
    const maxTags = options?.maxTags ?? Math.max(capacity, 10_000)
    // Records dropped for room: a tagged entry created before `tagFloor`
    // reads as invalidated, until every such entry must have expired.
    let tagFloor: TagRecord | undefined
    // When the first record (in insertion order) expires: writes and tag
    // reads compare the clock with it, and sweep the front once it passed,
    // so records expire on the clock even when nothing invalidates again.
    let tagsDueAt = Number.POSITIVE_INFINITY

    const sweepTags = (now: number): void => {
      for (const [tag, record] of tagTimes) {
        if (record.expiresAt > now) {
          tagsDueAt = record.expiresAt
          return
        }
        tagTimes.delete(tag)
      }
      tagsDueAt = Number.POSITIVE_INFINITY
    }

    const getUnsafe = (key: string, now?: number): StoredEntry | undefined => {
      const slot = lru.find(key)
      if (slot === Eviction.NIL) return undefined
      if (entries.staleUntil(slot) <= (now ?? clock.currentTimeMillisUnsafe())) {
        lru.remove(slot)
        return undefined
      }
      lru.touch(slot)
      return entries.read(slot)
    }

    // The hit path: the value of a fresh entry with nothing in the side
    // table; anything else is left untouched for `getUnsafe`.
    const getFreshUnsafe = (key: string, now: number): unknown => {
      const slot = lru.find(key)
      if (slot === Eviction.NIL) return NotFresh
      const fresh = entries.fresh[slot]!
      if (fresh === EXTRA || now >= entries.created[slot]! + millisOf(fresh)) return NotFresh
      lru.touch(slot)
      return entries.values[slot]
    }

    const setUnsafe = (key: string, entry: StoredEntry, keyspace: string): CacheValueTooLarge | undefined => {
      const size = sizeOf === undefined ? 0 : sizeOf(entry.value) + 2 * key.length + 96
      if (maxBytes !== undefined && size > maxBytes) {
        return new CacheValueTooLarge({ keyspace, key, bytes: size, maxBytes })
      }
      const existing = lru.find(key)
      if (existing !== Eviction.NIL) lru.remove(existing)
      const now = clock.currentTimeMillisUnsafe()
      if (now >= tagsDueAt) sweepTags(now)
      if (entry.staleUntil <= now) return undefined
      const slot = lru.add(flatten(key), size)
      if (slot === Eviction.NIL) return undefined
      entries.reserve(lru)
      entries.write(slot, entry)
      return undefined
    }

    const deleteUnsafe = (key: string): boolean => {
      const slot = lru.find(key)
      if (slot === Eviction.NIL) return false
      const live = entries.staleUntil(slot) > clock.currentTimeMillisUnsafe()
      lru.remove(slot)
      return live
    }

    const floorTime = (now: number): number | undefined => {
      if (tagFloor === undefined) return undefined
      if (tagFloor.expiresAt <= now) {
        tagFloor = undefined
        return undefined
      }
      return tagFloor.time
    }

    // `now`: the hit's own clock reading, when the runtime has one.
    const getTagTimeUnsafe = (tag: string, now: number = clock.currentTimeMillisUnsafe()): number | undefined => {
      if (now >= tagsDueAt) sweepTags(now)
      const record = tagTimes.get(tag)
      if (record === undefined) return floorTime(now)
      if (record.expiresAt <= now) {
        tagTimes.delete(tag)
        return floorTime(now)
      }
      const floor = floorTime(now)
      return floor !== undefined && floor > record.time ? floor : record.time
    }

    const setTagTimeUnsafe = (tag: string, time: number, retainMillis: number): void => {
      const now = clock.currentTimeMillisUnsafe()
      const current = tagTimes.get(tag)
      // Keep the latest invalidation; a late writer never moves time back.
      if (current !== undefined && current.expiresAt > now && current.time >= time) return
      tagTimes.delete(tag)
      tagTimes.set(tag, { time, expiresAt: Math.max(time + retainMillis, current?.expiresAt ?? 0) })
      // Amortised sweep: expired records at the front go; past the cap the
      // oldest go too, raising the floor so that what they covered stays gone.
      for (const [oldest, record] of tagTimes) {
        if (record.expiresAt <= now) tagTimes.delete(oldest)
        else if (tagTimes.size > maxTags) {
          tagTimes.delete(oldest)
          tagFloor = {
            time: Math.max(record.time, tagFloor?.time ?? -Infinity),
            expiresAt: Math.max(record.expiresAt, tagFloor?.expiresAt ?? 0)
          }
        } else break
      }
      const first = tagTimes.values().next()
      tagsDueAt = first.done === true ? Number.POSITIVE_INFINITY : first.value.expiresAt
    }

    const info: StoreInfo = {
      get entries() {
        return lru.size
      },
      get bytes() {
        return maxBytes === undefined ? undefined : lru.bytes
      },
      get evictions() {
        return lru.evictions
      },
      get tags() {
        return tagTimes.size
      }
    }

    return {
      name: "memory",
      get: (key) => Effect.sync(() => getUnsafe(key)),
      getMany: (keys) => Effect.sync(() => keys.map((key) => getUnsafe(key))),
      set: (key, entry, codec) =>
        Effect.suspend(() => {
          const error = setUnsafe(key, entry, codec.keyspace)
          return error === undefined ? Effect.void : Effect.fail(error)
        }),
      setMany: (entries, codec) =>
        Effect.suspend(() => {
          for (const [key, entry] of entries) {
            const error = setUnsafe(key, entry, codec.keyspace)
            if (error !== undefined) return Effect.fail(error)
          }
          return Effect.void
        }),
      delete: (key) => Effect.sync(() => deleteUnsafe(key)),
      deleteMany: (keys) => Effect.sync(() => keys.filter(deleteUnsafe).length),
      deletePrefix: (prefix) => Effect.sync(() => lru.removePrefix(prefix)),
      has: (keys) =>
        Effect.sync(() => {
          const now = clock.currentTimeMillisUnsafe()
          return keys.map((key) => {
            const slot = lru.find(key)
            return slot !== Eviction.NIL && entries.staleUntil(slot) > now
          })
        }),
      deletePattern: (prefix, pattern) =>
        Effect.sync(() => {
          const matcher = Glob.compile(pattern)
          if (typeof matcher === "string") return 0
          const now = clock.currentTimeMillisUnsafe()
          let count = 0
          for (const slot of lru.slots()) {
            const key = lru.keys[slot]!
            if (!key.startsWith(prefix) || !Glob.covers(matcher, key.slice(prefix.length))) continue
            if (entries.staleUntil(slot) > now) count++
            lru.remove(slot)
          }
          return count
        }),
      getTagTimes: (tags) => Effect.sync(() => tags.map((tag) => getTagTimeUnsafe(tag))),
      setTagTime: (tag, time, retainMillis) => Effect.sync(() => setTagTimeUnsafe(tag, time, retainMillis)),
      ping: Effect.void,
      info: Effect.succeed(info),
      getUnsafe,
      getFreshUnsafe,
      getTagTimeUnsafe
    }
  })
}
