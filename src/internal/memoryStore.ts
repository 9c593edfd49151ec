/**
 * The in-memory store: entries under an eviction policy (`eviction.ts`:
 * W-TinyLFU by default, or the shared LRU of `lru.ts`), and tag times.
 *
 * An entry is a slot of the policy (an index, no object per entry): its key,
 * hash, links and size live in the policy's arrays, its value and times in
 * this store's arrays by the same slot. Times are the creation time (a
 * double) and the freshness and staleness deadlines as 32-bit offsets from
 * it; a flags byte says what else the entry has: tags (its own array, in a
 * side table), the negative flag, deadlines that offsets cannot hold exactly
 * (in another side table). A read hands out a new
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

/** Deadlines that offsets cannot hold exactly (kept aside, as given). */
interface Deadlines {
  readonly freshUntil: number
  readonly staleUntil: number
}

const noTags: ReadonlyArray<string> = []

// What a slot's flags byte says; 0 for a plain entry (the hit path's case).
/** Its deadlines are in `deadlines`. */
const ASIDE = 1
/** Its tags are in `tags`. */
const TAGGED = 2
/** `negative: true`. */
const NEGATIVE = 4
/** `negative: false`, given explicitly. */
const NOT_NEGATIVE = 8

/** What `offsetOf` answers for a deadline it cannot hold. */
const INEXACT = -1

/**
 * A deadline as an offset from the creation time in one 32-bit integer:
 * milliseconds when it is 0 to 2^31 - 1 (24.8 days); past that, whole
 * seconds, negated (up to 68 years); `INEXACT` when neither holds it exactly.
 */
const offsetOf = (time: number, from: number): number => {
  const offset = time - from
  if (from + offset !== time || Object.is(time, -0)) return INEXACT
  if ((offset | 0) === offset && offset >= 0) return offset
  const seconds = offset / 1000
  return Number.isInteger(seconds) && seconds > 2_147_483 && seconds <= 0x7fff_ffff && from + seconds * 1000 === time
    ? -seconds
    : INEXACT
}

/** The offset in milliseconds of an `offsetOf` (not `INEXACT`). */
const millisOf = (offset: number): number => (offset >= 0 ? offset : -1000 * offset)

const float64s = (length: number) => new Float64Array(length)
const int32s = (length: number) => new Int32Array(length)
const uint8s = (length: number) => new Uint8Array(length)

/**
 * Entries by slot: the value, the creation time, two deadline offsets and a
 * flags byte; tags (the entry's own array) and deadlines the offsets cannot
 * hold in two side tables, for the few entries that have them.
 */
class Entries {
  values: Array<unknown> = []
  created = new Float64Array(0)
  fresh = new Int32Array(0)
  stale = new Int32Array(0)
  flags = new Uint8Array(0)
  readonly tags = new Map<number, ReadonlyArray<string>>()
  readonly deadlines = new Map<number, Deadlines>()

  /** Makes room for the policy's slots. */
  reserve(policy: Eviction.Eviction): void {
    this.created = policy.fit(this.created, float64s)
    this.fresh = policy.fit(this.fresh, int32s)
    this.stale = policy.fit(this.stale, int32s)
    this.flags = policy.fit(this.flags, uint8s)
  }

  write(slot: number, entry: StoredEntry): void {
    const { createdAt, freshUntil, staleUntil, tags, negative } = entry
    this.values[slot] = entry.value
    this.created[slot] = createdAt
    const fresh = offsetOf(freshUntil, createdAt)
    const stale = offsetOf(staleUntil, createdAt)
    let flags = negative === true ? NEGATIVE : negative === false ? NOT_NEGATIVE : 0
    if (fresh === INEXACT || stale === INEXACT) {
      flags |= ASIDE
      this.deadlines.set(slot, { freshUntil, staleUntil })
    } else {
      this.fresh[slot] = fresh
      this.stale[slot] = stale
    }
    if (tags.length > 0) {
      flags |= TAGGED
      this.tags.set(slot, tags)
    }
    this.flags[slot] = flags
  }

  release(slot: number): void {
    this.values[slot] = undefined
    const flags = this.flags[slot]!
    if ((flags & ASIDE) !== 0) this.deadlines.delete(slot)
    if ((flags & TAGGED) !== 0) this.tags.delete(slot)
    this.flags[slot] = 0
  }

  staleUntil(slot: number): number {
    return (this.flags[slot]! & ASIDE) !== 0
      ? this.deadlines.get(slot)!.staleUntil
      : this.created[slot]! + millisOf(this.stale[slot]!)
  }

  /** A new entry object of the slot's entry. */
  read(slot: number): StoredEntry {
    const flags = this.flags[slot]!
    const createdAt = this.created[slot]!
    const aside = (flags & ASIDE) !== 0 ? this.deadlines.get(slot)! : undefined
    return {
      value: this.values[slot],
      createdAt,
      freshUntil: aside === undefined ? createdAt + millisOf(this.fresh[slot]!) : aside.freshUntil,
      staleUntil: aside === undefined ? createdAt + millisOf(this.stale[slot]!) : aside.staleUntil,
      tags: (flags & TAGGED) !== 0 ? this.tags.get(slot)! : noTags,
      negative: (flags & NEGATIVE) !== 0 ? true : (flags & NOT_NEGATIVE) !== 0 ? false : undefined
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
      if (entries.flags[slot] !== 0 || now >= entries.created[slot]! + millisOf(entries.fresh[slot]!)) return NotFresh
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
