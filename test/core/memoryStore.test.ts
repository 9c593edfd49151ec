import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Result } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import type { EntryCodec, StoredEntry } from "../../src/CacheStore.ts"
import * as CacheStoreModule from "../../src/CacheStore.ts"
import { CacheStore } from "../../src/CacheStore.ts"
import { estimateSize } from "../../src/internal/size.ts"
import { NotFresh } from "../../src/internal/store.ts"
import * as CacheStoreSuite from "../../src/testing/CacheStoreSuite.ts"

CacheStoreSuite.suite("memory", CacheStoreModule.layerMemory({ capacity: 1_000 }))
CacheStoreSuite.suite("memory with eviction: lru", CacheStoreModule.layerMemory({ capacity: 1_000, eviction: "lru" }))
CacheStoreSuite.suite(
  "memory with a byte budget",
  CacheStoreModule.layerMemory({ capacity: 1_000, maxBytes: 1_000_000 })
)

const codec: EntryCodec = {
  keyspace: "t",
  encode: (v) => Result.succeed(v),
  decode: (d) => Result.succeed(d),
  onCorrupt: () => {}
}
const entry = (value: unknown, now = 0, ttl = 60_000): StoredEntry => ({
  value,
  createdAt: now,
  freshUntil: now + ttl,
  staleUntil: now + ttl,
  tags: []
})

describe("memory store", () => {
  it("an entry reads back with its exact times, tags and flags (times kept as offsets, any magnitude)", () => {
    const time = fc.oneof(
      fc.integer({ min: -(2 ** 52), max: 2 ** 52 }),
      fc.double({ min: -1e15, max: 1e15, noNaN: true }),
      fc.constantFrom(0, 1.5, 1_764_640_000_000, 1_764_640_000_000.25, 2 ** 31, -(2 ** 31) - 1)
    )
    // Deadlines as offsets: milliseconds up to 2^31 - 1, whole seconds past
    // that, and what neither holds (kept aside, exact all the same).
    const lifetime = fc.oneof(
      fc.nat({ max: 10 ** 9 }),
      fc.integer({ min: 2 ** 31 - 3, max: 2 ** 31 + 3 }),
      fc.nat({ max: 2 ** 32 }).map((seconds) => seconds * 1000),
      fc.double({ min: 0, max: 1e13, noNaN: true })
    )
    fc.assert(
      fc.property(
        time,
        lifetime,
        lifetime,
        fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
        fc.constantFrom(undefined, true),
        fc.boolean(),
        (createdAt, fresh, stale, tags, negative, budget) => {
          // The store's clock stands at createdAt (the write is not already expired).
          const at: Clock.Clock = {
            currentTimeMillisUnsafe: () => createdAt,
            currentTimeMillis: Effect.sync(() => createdAt),
            currentTimeNanosUnsafe: () => 0n,
            currentTimeNanos: Effect.succeed(0n),
            monotonicTimeNanosUnsafe: () => 0n,
            monotonicTimeNanos: Effect.succeed(0n),
            sleep: () => Effect.void
          }
          const store = Effect.runSync(
            CacheStoreModule.makeMemory(budget ? { capacity: 10, maxBytes: 10_000 } : { capacity: 10 }).pipe(
              Effect.provideService(Clock.Clock, at)
            )
          )
          const stored: StoredEntry = {
            value: { v: 1 },
            createdAt,
            freshUntil: createdAt + fresh,
            staleUntil: createdAt + fresh + stale + 1,
            tags,
            ...(negative === undefined ? {} : { negative })
          }
          Effect.runSync(store.set("t:k", stored, codec))
          const got = store.getUnsafe!("t:k", createdAt)
          assert.isDefined(got)
          assert.strictEqual(got!.createdAt, createdAt)
          assert.strictEqual(got!.freshUntil, stored.freshUntil)
          assert.strictEqual(got!.staleUntil, stored.staleUntil)
          assert.deepStrictEqual(got!.tags, tags)
          assert.strictEqual(got!.negative, negative)
          assert.strictEqual(got!.value, stored.value)
          // The hit path gives the value of a plain fresh entry and nothing else.
          const plain = tags.length === 0 && negative === undefined && createdAt < stored.freshUntil
          const fast = store.getFreshUnsafe!("t:k", createdAt)
          if (!plain) assert.strictEqual(fast, NotFresh)
          else if (fast !== NotFresh) assert.strictEqual(fast, stored.value)
          // It may decline only entries whose times need the side table.
          const compact =
            Number.isSafeInteger(createdAt) &&
            Number.isInteger(fresh) &&
            Number.isInteger(stale) &&
            Number.isSafeInteger(stored.staleUntil) &&
            fresh + stale + 1 < 2 ** 31
          if (plain && compact) assert.strictEqual(fast, stored.value)
        }
      )
    )
  })

  it.effect("evicts the least recently used entry at capacity", () =>
    Effect.gen(function* () {
      const store = yield* CacheStore
      for (const k of ["a", "b", "c"]) yield* store.set(`t:${k}`, entry(k), codec)
      // Touch "a": "b" is now the least recently used.
      assert.strictEqual((yield* store.get("t:a", codec))?.value, "a")
      yield* store.set("t:d", entry("d"), codec)
      assert.isUndefined(yield* store.get("t:b", codec), "b was least recently used")
      for (const k of ["a", "c", "d"]) assert.strictEqual((yield* store.get(`t:${k}`, codec))?.value, k)
      const info = yield* store.info
      assert.strictEqual(info?.entries, 3)
      assert.strictEqual(info?.evictions, 1)
    }).pipe(Effect.provide(CacheStoreModule.layerMemory({ capacity: 3, eviction: "lru" })))
  )

  it.effect("an overwrite refreshes recency and does not count twice", () =>
    Effect.gen(function* () {
      const store = yield* CacheStore
      for (const k of ["a", "b", "c"]) yield* store.set(`t:${k}`, entry(k), codec)
      yield* store.set("t:a", entry("a2"), codec)
      yield* store.set("t:d", entry("d"), codec)
      assert.isUndefined(yield* store.get("t:b", codec))
      assert.strictEqual((yield* store.get("t:a", codec))?.value, "a2")
      assert.strictEqual((yield* store.info)?.entries, 3)
    }).pipe(Effect.provide(CacheStoreModule.layerMemory({ capacity: 3, eviction: "lru" })))
  )

  it.effect("maxBytes holds: total size never exceeds the budget", () =>
    Effect.gen(function* () {
      const store = yield* CacheStore
      const budget = 10_000
      for (let i = 0; i < 200; i++) {
        yield* store.set(`t:${i}`, entry("x".repeat(100 + (i % 7) * 50)), codec)
        const info = yield* store.info
        assert.isAtMost(info!.bytes!, budget)
      }
      const info = yield* store.info
      assert.isAbove(info!.evictions, 0)
      // The newest entry is always kept.
      assert.isDefined(yield* store.get("t:199", codec))
    }).pipe(Effect.provide(CacheStoreModule.layerMemory({ capacity: 10_000, maxBytes: 10_000 })))
  )

  it.effect("an entry larger than maxBytes fails with CacheValueTooLarge and is not stored", () =>
    Effect.gen(function* () {
      const store = yield* CacheStore
      const error = yield* Effect.flip(store.set("t:big", entry("x".repeat(10_000)), codec))
      assert.strictEqual(error._tag, "CacheValueTooLarge")
      assert.isUndefined(yield* store.get("t:big", codec))
    }).pipe(Effect.provide(CacheStoreModule.layerMemory({ maxBytes: 1_000 })))
  )

  it.effect("a custom sizeOf is used for the byte budget", () =>
    Effect.gen(function* () {
      const store = yield* CacheStore
      yield* store.set("t:1", entry({ weight: 600 }), codec)
      yield* store.set("t:2", entry({ weight: 600 }), codec)
      assert.isUndefined(yield* store.get("t:1", codec), "1200 bytes of weight do not fit in 1000 + overhead")
      assert.isDefined(yield* store.get("t:2", codec))
    }).pipe(
      Effect.provide(CacheStoreModule.layerMemory({ maxBytes: 1_000, sizeOf: (v) => (v as { weight: number }).weight }))
    )
  )

  it.effect("expired entries are dropped on read and not counted as evictions", () =>
    Effect.gen(function* () {
      const store = yield* CacheStore
      yield* store.set("t:a", entry("a", 0, 100), codec)
      yield* TestClock.adjust(100)
      assert.isUndefined(yield* store.get("t:a", codec))
      const info = yield* store.info
      assert.strictEqual(info?.entries, 0)
      assert.strictEqual(info?.evictions, 0)
    }).pipe(Effect.provide(CacheStoreModule.layerMemory()))
  )

  it("invalid options fail at construction and name the option", () => {
    assert.throws(() => CacheStoreModule.layerMemory({ capacity: 0 }), /"capacity" must be a positive integer/)
    assert.throws(() => CacheStoreModule.layerMemory({ capacity: 1.5 }), /"capacity"/)
    assert.throws(() => CacheStoreModule.layerMemory({ maxBytes: -1 }), /"maxBytes" must be a positive number/)
    assert.throws(() => CacheStoreModule.layerMemory({ maxBytes: Number.NaN }), /"maxBytes"/)
  })

  it("estimateSize grows with content and survives cycles", () => {
    const small = estimateSize({ a: "x" })
    const large = estimateSize({ a: "x".repeat(1_000) })
    assert.isAbove(large - small, 990, "one byte a Latin-1 character")
    assert.isAbove(estimateSize({ a: "ж".repeat(1_000) }) - small, 1_990, "two bytes a character beyond")
    const cyclic: Record<string, unknown> = { name: "loop" }
    cyclic["self"] = cyclic
    assert.isAbove(estimateSize(cyclic), 0)
    assert.isAbove(estimateSize(new Uint8Array(4_096)), 4_096)
  })
})
