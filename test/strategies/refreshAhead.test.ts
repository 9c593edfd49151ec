import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Option, Random, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"

class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}

const Items = Keyspace.make({ name: "item", key: "{id}", value: Schema.Number, ttl: "10 seconds" })

const Memory = Cachet.layerMemory()

const settle = Effect.gen(function* () {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow
})

/** A loader per key that takes `millis` and records when each run started. */
const perKeyLoader = (millis: number) => {
  const starts = new Map<number, Array<number>>()
  const loader = (id: number) =>
    Effect.gen(function* () {
      const at = yield* Clock.currentTimeMillis
      const list = starts.get(id) ?? []
      list.push(at)
      starts.set(id, list)
      if (millis > 0) yield* Effect.sleep(millis)
      return at
    })
  return { starts, loader }
}

/** Loads `ids` at the current time and waits for them. */
const warm = (ids: ReadonlyArray<number>, read: (id: number) => Effect.Effect<number, unknown, Cachet.Cachet>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(Effect.forEach(ids, read, { concurrency: "unbounded" }))
    yield* TestClock.adjust(1_000)
    yield* Fiber.join(fiber)
  })

describe("refreshAhead", () => {
  it.effect("timeline: a hit past 80% of the ttl is served and starts one refresh", () =>
    Effect.gen(function* () {
      const { starts, loader } = perKeyLoader(500)
      const read = loader(1).pipe(Strategy.refreshAhead(Items, { id: 1 }))
      const first = yield* Effect.forkChild(read)
      yield* TestClock.adjust(500)
      assert.strictEqual(yield* Fiber.join(first), 0)

      yield* TestClock.adjust(7_499) // t = 7,999: before the point
      assert.strictEqual(yield* read, 0)
      yield* settle
      assert.deepStrictEqual(starts.get(1), [0])

      yield* TestClock.adjust(1) // t = 8,000: the refresh point
      assert.strictEqual(yield* read, 0, "served at once")
      assert.strictEqual(yield* read, 0)
      yield* settle
      assert.deepStrictEqual(starts.get(1), [0, 8_000], "one refresh")
      yield* TestClock.adjust(500)
      assert.strictEqual(yield* read, 8_000)
      const entry = Option.getOrThrow(yield* Cachet.getEntry(Items, { id: 1 }))
      assert.strictEqual(entry.freshUntil, 18_000, "the refreshed entry's ttl starts at the refresh")
      const stats = (yield* Cachet.stats).keyspaces["item"]!
      assert.strictEqual(stats.revalidations, 1)
      assert.strictEqual(stats.misses, 1, "no read missed after the first")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("options: `at` moves the refresh point; invalid options throw naming the option", () =>
    Effect.gen(function* () {
      const { starts, loader } = perKeyLoader(0)
      const read = loader(2).pipe(Strategy.refreshAhead(Items, { id: 2 }, { at: 0.5 }))
      yield* read
      yield* TestClock.adjust(4_999)
      yield* read
      yield* settle
      assert.deepStrictEqual(starts.get(2), [0])
      yield* TestClock.adjust(1)
      yield* read
      yield* settle
      assert.deepStrictEqual(starts.get(2), [0, 5_000])
      assert.throws(() => Strategy.refreshAhead(Items, { id: 1 }, { at: 1.5 }), /"at"/)
      assert.throws(() => Strategy.refreshAhead(Items, { id: 1 }, { at: 0.5, jitter: 0.6 }), /"jitter"/)
      assert.throws(() => Strategy.refreshAhead(Items, { id: 1 }, { beta: -1 }), /"beta"/)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a failed refresh keeps the entry and is counted; stale entries behave as cache-aside", () =>
    Effect.gen(function* () {
      let fail = false
      let runs = 0
      const loader = Effect.suspend(() => {
        runs++
        return fail ? Effect.fail(new DbDown()) : Effect.succeed(runs)
      })
      const read = loader.pipe(Strategy.refreshAhead(Items, { id: 3 }))
      assert.strictEqual(yield* read, 1)
      fail = true
      yield* TestClock.adjust(9_000)
      assert.strictEqual(yield* read, 1)
      yield* settle
      assert.strictEqual(yield* read, 1, "kept")
      yield* settle
      const stats = (yield* Cachet.stats).keyspaces["item"]!
      assert.strictEqual(stats.revalidationFailures, 2)
      yield* TestClock.adjust(1_000) // gone (staleFor 0): a miss, the failure surfaces
      assert.strictEqual((yield* Effect.flip(read))._tag, "DbDown")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("500 keys read continuously: one refresh per key per window; keys not read are not refreshed", () =>
    Effect.gen(function* () {
      const { starts, loader } = perKeyLoader(200)
      const read = (id: number) => loader(id).pipe(Strategy.refreshAhead(Items, { id }))
      const all = Array.from({ length: 1_000 }, (_, i) => i)
      const hot = all.slice(0, 500)
      yield* warm(all, read) // t = 1,000; entries created at 0
      const until = 50_000
      while ((yield* Clock.currentTimeMillis) < until) {
        yield* TestClock.adjust(500)
        yield* Effect.forEach(hot, read, { concurrency: "unbounded", discard: true })
        yield* settle
      }
      // Refresh points at 8 s, 16 s, ... (each refresh resets the ttl).
      const windows = Math.floor(until / 8_000)
      for (const id of hot) {
        const refreshes = starts.get(id)!.length - 1
        assert.isTrue(Math.abs(refreshes - windows) <= 1, `key ${id}: ${refreshes} refreshes, expected ${windows}`)
      }
      assert.deepStrictEqual(
        starts.get(0)!.slice(1),
        Array.from({ length: windows }, (_, i) => (i + 1) * 8_000)
      )
      for (const id of all.slice(500)) assert.deepStrictEqual(starts.get(id), [0], `key ${id} was never read`)
      const stats = (yield* Cachet.stats).keyspaces["item"]!
      assert.strictEqual(stats.revalidations, 500 * windows)
      assert.strictEqual(stats.misses, 1_000, "only the warm-up missed")
    }).pipe(Effect.provide(Memory))
  )

  const spread = (options: Strategy.RefreshAheadOptions, seed: number) =>
    Effect.gen(function* () {
      const { starts, loader } = perKeyLoader(100)
      const read = (id: number) => loader(id).pipe(Strategy.refreshAhead(Items, { id }, options))
      const ids = Array.from({ length: 500 }, (_, i) => i)
      const start = yield* Clock.currentTimeMillis
      yield* warm(ids, read) // every key created at `start`: they would all refresh 8 s later
      while ((yield* Clock.currentTimeMillis) < start + 9_000) {
        yield* TestClock.adjust(100)
        yield* Effect.forEach(ids, read, { concurrency: "unbounded", discard: true })
        yield* settle
      }
      return ids.map((id) =>
        starts
          .get(id)!
          .slice(1)
          .map((t) => t - start)
      )
    }).pipe(Effect.provide(Memory), Effect.provide(TestClock.layer()), Random.withSeed(seed))

  it.effect("jitter spreads the refreshes of keys written together, deterministically per seed", () =>
    Effect.gen(function* () {
      const first = yield* spread({ jitter: 0.2 }, 7)
      for (const refreshes of first) {
        assert.strictEqual(refreshes.length, 1, "one refresh per key")
        assert.isTrue(refreshes[0]! >= 6_000 && refreshes[0]! <= 8_000, `refresh at ${refreshes[0]}`)
      }
      const times = first.map((r) => r[0]!)
      const buckets = new Map<number, number>()
      for (const t of times) buckets.set(t, (buckets.get(t) ?? 0) + 1)
      assert.isAtLeast(buckets.size, 18, "spread over the 2 s window (100 ms steps)")
      assert.isAtMost(Math.max(...buckets.values()), 60, "no burst")
      assert.deepStrictEqual(yield* spread({ jitter: 0.2 }, 7), first, "same seed, same schedule")
      assert.notDeepEqual(yield* spread({ jitter: 0.2 }, 8), first, "another seed, another schedule")
    })
  )

  it.effect("beta (XFetch) refreshes early with growing probability, deterministically per seed", () =>
    Effect.gen(function* () {
      const first = yield* spread({ beta: 1 }, 1)
      for (const refreshes of first) {
        assert.strictEqual(refreshes.length, 1, "one refresh per key")
        assert.isTrue(refreshes[0]! <= 8_000, `refresh at ${refreshes[0]} is not past the point`)
      }
      const times = new Set(first.map((r) => r[0]!))
      assert.isAtLeast(times.size, 3, "spread over several instants")
      assert.isTrue(
        first.some((r) => r[0]! < 8_000),
        "some refreshed early"
      )
      assert.deepStrictEqual(yield* spread({ beta: 1 }, 1), first, "same seed, same schedule")
    })
  )
})
