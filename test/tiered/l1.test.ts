/**
 * The L1 of a TieredStore on its own (no I/O, explicit times): expiry at the
 * earlier of staleUntil and the L1 bound, eviction (W-TinyLFU, LRU), the byte budget, the
 * tag-time cache, and the guard that keeps a backfill from resurrecting a
 * value invalidated while its L2 read was in flight.
 */
import { assert, describe, it } from "@effect/vitest"
import type { StoredEntry } from "../../src/CacheStore.ts"
import * as L1 from "../../src/redis/internal/l1.ts"

const entry = (value: unknown, createdAt: number, ttl: number): StoredEntry => ({
  value,
  createdAt,
  freshUntil: createdAt + ttl,
  staleUntil: createdAt + ttl,
  tags: []
})

describe("TieredStore L1", () => {
  it("an entry lives until the earlier of its staleUntil and now + maxTtl, and keeps its timeline", () => {
    const l1 = L1.make(undefined, 1_000)
    const long = entry("a", 0, 60_000)
    l1.set("k", long, 0)
    assert.strictEqual(l1.get("k", 999), long, "the stored object, timeline unchanged")
    assert.isUndefined(l1.get("k", 1_000), "gone at the L1 bound")
    l1.set("s", entry("b", 0, 300), 0)
    assert.isDefined(l1.get("s", 299))
    assert.isUndefined(l1.get("s", 300), "gone at staleUntil")
    l1.set("past", entry("c", 0, 10), 10)
    assert.strictEqual(l1.entries(), 0, "an expired entry is not kept")
  })

  it("with eviction: lru, evicts the least recently used; an entry over the byte budget stays out", () => {
    const l1 = L1.make({ capacity: 2, eviction: "lru" }, Number.POSITIVE_INFINITY)
    l1.set("a", entry(1, 0, 1_000), 0)
    l1.set("b", entry(2, 0, 1_000), 0)
    l1.get("a", 1)
    l1.set("c", entry(3, 0, 1_000), 1)
    assert.isDefined(l1.get("a", 2))
    assert.isUndefined(l1.get("b", 2), "b was the least recently used")
    assert.strictEqual(l1.evictions(), 1)

    const small = L1.make({ maxBytes: 1_000, sizeOf: (v) => (typeof v === "string" ? v.length : 8) }, 10_000)
    small.set("big", entry("x".repeat(2_000), 0, 1_000), 0)
    assert.strictEqual(small.entries(), 0)
    assert.throws(() => L1.make({ capacity: 0 }, 1), /l1\.capacity/)
    assert.throws(() => L1.make({ eviction: "mru" as never }, 1), /l1\.eviction/)
    assert.throws(() => L1.make({ seed: Number.NaN }, 1), /l1\.seed/)
  })

  it("evicts with W-TinyLFU by default: a scan does not flush a hot set", () => {
    const l1 = L1.make({ capacity: 80, seed: 1 }, Number.POSITIVE_INFINITY)
    const lru = L1.make({ capacity: 80, eviction: "lru" }, Number.POSITIVE_INFINITY)
    const hits = { l1: 0, lru: 0 }
    for (let i = 0; i < 20_000; i++) {
      // 50 hot keys read in turn, each followed by a key never seen again.
      const keys = [`hot${i % 50}`, `scan${i}`]
      for (const k of keys) {
        if (l1.get(k, 0) === undefined) l1.set(k, entry(k, 0, 1e12), 0)
        else hits.l1++
        if (lru.get(k, 0) === undefined) lru.set(k, entry(k, 0, 1e12), 0)
        else hits.lru++
      }
    }
    // LRU: a hot key comes back after 99 other keys, and 80 fit: all misses.
    assert.isAbove(hits.l1, 15_000)
    assert.isBelow(hits.lru, 1_000)
  })

  it("tag times: unknown until fetched, raised by invalidations, trusted for maxTtl, forgotten after retention", () => {
    const l1 = L1.make(undefined, 1_000)
    assert.isNull(l1.tagTime("t", 0, false), "unknown: ask the L2")
    l1.tagFetched("t", undefined, 0)
    assert.isUndefined(l1.tagTime("t", 500, false), "known: never invalidated")
    assert.isNull(l1.tagTime("t", 1_000, false), "past maxTtl: ask again")
    assert.isUndefined(l1.tagTime("t", 1_000, true), "but the last answer is there for when the L2 is down")
    l1.tagInvalidated("t", 1_200, 5_000)
    assert.strictEqual(l1.tagTime("t", 1_300, true), 1_200)
    l1.tagFetched("t", 900, 1_300)
    assert.strictEqual(l1.tagTime("t", 1_300, false), 1_200, "an older answer from the L2 never lowers it")
    l1.tagInvalidated("t", 1_100, 5_000)
    assert.strictEqual(l1.tagTime("t", 1_300, false), 1_200)
    assert.isUndefined(l1.tagTime("t", 5_000, true), "forgotten after its retention")
  })

  it("an entry or tag record read from the L2 is trusted for maxTtl from when the read started", () => {
    const l1 = L1.make(undefined, 300)
    // The read started at 0, its reply arrived at 100.
    l1.set("k", entry("v", 0, 60_000), 100, 0)
    assert.isDefined(l1.get("k", 299))
    assert.isUndefined(l1.get("k", 300), "300 ms after the read started, not after the reply")
    l1.tagFetched("t", undefined, 100, 0)
    assert.isUndefined(l1.tagTime("t", 299, false))
    assert.isNull(l1.tagTime("t", 300, false), "ask the L2 again")
    l1.set("late", entry("v", 0, 60_000), 400, 0)
    assert.strictEqual(l1.get("late", 400), undefined, "a reply older than the bound is not kept")
  })

  it("the backfill guard: a read that overlapped an invalidation of its key does not backfill", () => {
    const l1 = L1.make(undefined, 1_000)
    const mark = l1.mark()
    l1.touch("k")
    assert.isFalse(l1.mayBackfill("k", mark), "k was invalidated during the read")
    assert.isTrue(l1.mayBackfill("other", mark))
    assert.isTrue(l1.mayBackfill("k", l1.mark()), "a read that started after may")
    const before = l1.mark()
    l1.touchAll()
    assert.isFalse(l1.mayBackfill("other", before), "a reset refuses every read in flight")
    assert.isFalse(l1.mayCacheTags(before))
    const start = l1.mark()
    for (let i = 0; i < 2_000; i++) l1.touch(`key-${i}`)
    assert.isFalse(l1.mayBackfill("never-touched", start), "past the guard's memory: conservative")
    assert.isTrue(l1.mayBackfill("never-touched", l1.mark()))
  })
})
