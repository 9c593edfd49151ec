/**
 * The in-memory store: entries under an eviction policy (`eviction.ts`:
 * W-TinyLFU by default, or the shared LRU of `lru.ts`), and tag times.
 *
 * A node *is* the stored entry (no wrapper object), and a write replaces the
 * node rather than mutating it, so an entry handed to a reader never changes
 * under it. A node holds ten fields (Node.js builds have no pointer
 * compression: 8 bytes each, plus a 24-byte header): its times as small
 * integer offsets, and what few entries have (tags, the negative flag, a
 * size) behind one field. Its fields are behind getters: copy an entry
 * field by field, not with a spread.
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
import type { MemoryOptions, StoredEntry, StoreInfo, StoreService } from "./store.ts"

/**
 * What few entries have: tags, a negative flag, a size (with a byte budget),
 * and times that offsets cannot hold exactly. One field for all of them.
 */
interface Extra {
  readonly tags: ReadonlyArray<string>
  readonly negative: boolean | undefined
  readonly size: number
  readonly createdAt: number
  readonly freshUntil: number
  readonly staleUntil: number
}

const noTags: ReadonlyArray<string> = []

// Times are kept as offsets from one process-wide instant (the first time a
// node was made at): an epoch-millisecond double in a field is a separate
// 16-byte box, while an offset within ±24 days is a small integer stored in
// the field itself. Times whose offsets would not add back exactly (a
// fraction at an odd magnitude) are kept as they are, in `extra`, and the
// offsets are NaN.
const base = { epoch: Number.NaN }

const offsetOf = (time: number): number => {
  const offset = time - base.epoch
  return offset + base.epoch === time ? offset : Number.NaN
}

class Node implements StoredEntry, Eviction.PolicyNode<Node> {
  readonly key: string
  readonly value: unknown
  private readonly created: number
  private readonly fresh: number
  private readonly stale: number
  private readonly extra: Extra | undefined
  prev: Node | undefined = undefined
  next: Node | undefined = undefined
  hash = 0
  region = 0
  constructor(key: string, entry: StoredEntry, size: number) {
    this.key = key
    this.value = entry.value
    const { createdAt, freshUntil, staleUntil, tags } = entry
    if (Number.isNaN(base.epoch)) base.epoch = Number.isFinite(createdAt) ? Math.floor(createdAt) : 0
    let created = offsetOf(createdAt)
    let fresh = offsetOf(freshUntil)
    let stale = offsetOf(staleUntil)
    const exact = !Number.isNaN(created) && !Number.isNaN(fresh) && !Number.isNaN(stale)
    if (!exact) created = fresh = stale = Number.NaN
    this.created = created
    this.fresh = fresh
    this.stale = stale
    this.extra =
      exact && tags.length === 0 && entry.negative === undefined && size === 0
        ? undefined
        : {
            tags: tags.length === 0 ? noTags : tags,
            negative: entry.negative,
            size,
            createdAt,
            freshUntil,
            staleUntil
          }
  }
  get createdAt(): number {
    const t = this.created
    return Number.isNaN(t) ? this.extra!.createdAt : base.epoch + t
  }
  get freshUntil(): number {
    const t = this.fresh
    return Number.isNaN(t) ? this.extra!.freshUntil : base.epoch + t
  }
  get staleUntil(): number {
    const t = this.stale
    return Number.isNaN(t) ? this.extra!.staleUntil : base.epoch + t
  }
  get tags(): ReadonlyArray<string> {
    const extra = this.extra
    return extra === undefined ? noTags : extra.tags
  }
  get negative(): boolean | undefined {
    return this.extra?.negative
  }
  get size(): number {
    const extra = this.extra
    return extra === undefined ? 0 : extra.size
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

    const lru = Eviction.make<Node>({ capacity, maxBytes, eviction: options?.eviction, seed: options?.seed })
    const map = lru.map
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
      const node = map.get(key)
      if (node === undefined) return undefined
      if (node.staleUntil <= (now ?? clock.currentTimeMillisUnsafe())) {
        lru.remove(node)
        return undefined
      }
      lru.touch(node)
      return node
    }

    const setUnsafe = (key: string, entry: StoredEntry, keyspace: string): CacheValueTooLarge | undefined => {
      const size = sizeOf === undefined ? 0 : sizeOf(entry.value) + 2 * key.length + 96
      if (maxBytes !== undefined && size > maxBytes) {
        return new CacheValueTooLarge({ keyspace, key, bytes: size, maxBytes })
      }
      const existing = map.get(key)
      if (existing !== undefined) lru.remove(existing)
      const now = clock.currentTimeMillisUnsafe()
      if (now >= tagsDueAt) sweepTags(now)
      if (entry.staleUntil <= now) return undefined
      lru.add(new Node(flatten(key), entry, size))
      return undefined
    }

    const deleteUnsafe = (key: string): boolean => {
      const node = map.get(key)
      if (node === undefined) return false
      lru.remove(node)
      return node.staleUntil > clock.currentTimeMillisUnsafe()
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
        return map.size
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
            const node = map.get(key)
            return node !== undefined && node.staleUntil > now
          })
        }),
      deletePattern: (prefix, pattern) =>
        Effect.sync(() => {
          const matcher = Glob.compile(pattern)
          if (typeof matcher === "string") return 0
          const now = clock.currentTimeMillisUnsafe()
          let count = 0
          for (const [key, node] of map) {
            if (!key.startsWith(prefix) || !Glob.covers(matcher, key.slice(prefix.length))) continue
            lru.remove(node)
            if (node.staleUntil > now) count++
          }
          return count
        }),
      getTagTimes: (tags) => Effect.sync(() => tags.map((tag) => getTagTimeUnsafe(tag))),
      setTagTime: (tag, time, retainMillis) => Effect.sync(() => setTagTimeUnsafe(tag, time, retainMillis)),
      ping: Effect.void,
      info: Effect.succeed(info),
      getUnsafe,
      getTagTimeUnsafe
    }
  })
}
