import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Option, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import { captureLogs, makeWriteLog, recordingStore, settle, timedLoader } from "./helpers.ts"

class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}

const Stamps = Keyspace.make({
  name: "stamp",
  key: "{id}",
  value: Schema.Number,
  ttl: "10 seconds",
  staleFor: "20 seconds"
})

const Memory = Cachet.layerMemory()

describe("staleWhileRevalidate", () => {
  it.effect("timeline: hit while fresh; stale served at once with one reload; gone loads", () =>
    Effect.gen(function* () {
      const { starts, loader } = timedLoader(1_000)
      const read = loader.pipe(Strategy.staleWhileRevalidate(Stamps, { id: 1 }))

      const first = yield* Effect.forkChild(read)
      yield* TestClock.adjust(1_000)
      assert.strictEqual(yield* Fiber.join(first), 0, "miss: waits for the load")

      yield* TestClock.adjust(8_999) // t = 9,999: fresh
      assert.strictEqual(yield* read, 0)
      assert.deepStrictEqual(starts, [0])

      yield* TestClock.adjust(1) // t = 10,000: stale
      assert.strictEqual(yield* read, 0, "stale: served without waiting")
      yield* settle
      assert.deepStrictEqual(starts, [0, 10_000], "one reload started")
      assert.strictEqual(yield* read, 0, "still stale while the reload runs")
      yield* settle
      assert.deepStrictEqual(starts, [0, 10_000], "no second reload")

      yield* TestClock.adjust(1_000) // the reload finishes
      assert.strictEqual(yield* read, 10_000, "the reloaded value")
      const entry = Option.getOrThrow(yield* Cachet.getEntry(Stamps, { id: 1 }))
      assert.strictEqual(entry.state, "fresh")
      assert.strictEqual(entry.createdAt, 10_000, "created when the reload started")

      // Past ttl + staleFor: gone, so the reader waits for a load.
      yield* TestClock.adjust(30_000) // t = 41,000 > 10,000 + 30,000
      const gone = yield* Effect.forkChild(read)
      yield* settle
      assert.isUndefined(gone.pollUnsafe(), "gone: the reader waits")
      yield* TestClock.adjust(1_000)
      assert.strictEqual(yield* Fiber.join(gone), 41_000)

      const stats = (yield* Cachet.stats).keyspaces["stamp"]!
      assert.strictEqual(stats.revalidations, 1)
      assert.strictEqual(stats.staleHits, 2)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("1,000 concurrent readers of one stale key start one reload", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      let runs = 0
      const loader = Effect.suspend(() => {
        runs++
        return Effect.as(Deferred.await(gate), runs)
      })
      yield* Cachet.set(Stamps, { id: 1 }, 0)
      yield* TestClock.adjust("15 seconds")
      const read = loader.pipe(Strategy.staleWhileRevalidate(Stamps, { id: 1 }))
      const results = yield* Effect.forEach(Array.from({ length: 1_000 }), () => read, { concurrency: "unbounded" })
      assert.isTrue(
        results.every((v) => v === 0),
        "every reader got the stale value"
      )
      yield* settle
      assert.strictEqual(runs, 1)
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      assert.strictEqual(yield* read, 1)
      const stats = (yield* Cachet.stats).keyspaces["stamp"]!
      assert.strictEqual(stats.staleHits, 1_000)
      assert.strictEqual(stats.revalidations, 1)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a failed reload keeps the stale value, and is counted and logged", () => {
    const logs = captureLogs()
    return Effect.gen(function* () {
      yield* Effect.gen(function* () {
        let fail = true
        let runs = 0
        const loader = Effect.suspend(() => {
          runs++
          return fail ? Effect.fail(new DbDown()) : Effect.succeed(100)
        })
        const read = loader.pipe(Strategy.staleWhileRevalidate(Stamps, { id: 2 }))
        yield* Cachet.set(Stamps, { id: 2 }, 7)
        yield* TestClock.adjust("12 seconds")
        assert.strictEqual(yield* read, 7)
        yield* settle
        assert.strictEqual(runs, 1)
        assert.strictEqual(yield* read, 7, "the stale value is kept")
        yield* settle
        assert.strictEqual(runs, 2, "the next stale read tries again")
        const entry = Option.getOrThrow(yield* Cachet.getEntry(Stamps, { id: 2 }))
        assert.strictEqual(entry.value, 7)
        assert.strictEqual(entry.state, "stale")
        const stats = (yield* Cachet.stats).keyspaces["stamp"]!
        assert.strictEqual(stats.revalidations, 2)
        assert.strictEqual(stats.revalidationFailures, 2)
        fail = false
        assert.strictEqual(yield* read, 7)
        yield* settle
        assert.strictEqual(yield* read, 100, "a successful reload replaces it")
      }).pipe(Effect.provide(Memory))
      assert.isTrue(
        logs.messages.some((m) => m.includes("background reload failed")),
        logs.messages.join("\n")
      )
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("a negative-cacheable failure of a reload does not replace the stale value", () =>
    Effect.gen(function* () {
      class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {}) {}
      const Lookups = Keyspace.make({
        name: "lookup",
        key: "{id}",
        value: Schema.Number,
        ttl: "10 seconds",
        staleFor: "1 minute",
        negative: { ttl: "5 seconds", error: NotFound }
      })
      yield* Cachet.set(Lookups, { id: 1 }, 5)
      yield* TestClock.adjust("11 seconds")
      const read = Effect.fail(new NotFound()).pipe(Strategy.staleWhileRevalidate(Lookups, { id: 1 }))
      assert.strictEqual(yield* read, 5)
      yield* settle
      assert.strictEqual(yield* read, 5)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("past staleFor a reader joins the reload in flight (single-flight)", () =>
    Effect.gen(function* () {
      const { starts, loader } = timedLoader(5_000)
      const read = loader.pipe(Strategy.staleWhileRevalidate(Stamps, { id: 3 }))
      yield* Cachet.set(Stamps, { id: 3 }, -1)
      yield* TestClock.adjust(29_000) // stale, 1 s before gone
      assert.strictEqual(yield* read, -1)
      yield* settle
      yield* TestClock.adjust(1_000) // gone; the reload (started at 29 s) runs until 34 s
      const readers = yield* Effect.forkChild(Effect.forEach([1, 2, 3], () => read, { concurrency: "unbounded" }))
      yield* settle
      assert.isUndefined(readers.pollUnsafe())
      yield* TestClock.adjust(4_000)
      assert.deepStrictEqual(yield* Fiber.join(readers), [29_000, 29_000, 29_000])
      assert.deepStrictEqual(starts, [29_000], "one loader run for the reload and the three misses")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("one hot key, 1,000 readers, 8 ttl windows: one load per window, no reader waits", () =>
    Effect.gen(function* () {
      const Hot = Keyspace.make({
        name: "hot",
        key: "{id}",
        value: Schema.Number,
        ttl: "10 seconds",
        staleFor: "1 hour"
      })
      const loaderMillis = 1_000
      const { starts, loader } = timedLoader(loaderMillis)
      const read = loader.pipe(Strategy.staleWhileRevalidate(Hot, { id: 1 }))

      const warm = yield* Effect.forkChild(read)
      yield* TestClock.adjust(loaderMillis)
      yield* Fiber.join(warm)

      const windows = 8
      const step = 500
      let maxAge = 0
      let reads = 0
      while ((yield* Clock.currentTimeMillis) < windows * 10_000 + loaderMillis) {
        yield* TestClock.adjust(step)
        const now = yield* Clock.currentTimeMillis
        const fiber = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: 1_000 }), () => read, { concurrency: "unbounded" })
        )
        // Every read completes without the clock moving: none waits for the
        // loader, which sleeps on the clock.
        for (let i = 0; i < 50 && fiber.pollUnsafe() === undefined; i++) yield* Effect.yieldNow
        const exit = fiber.pollUnsafe()
        assert.isDefined(exit, `reads at t=${now} waited for the loader`)
        assert.isTrue(exit !== undefined && Exit.isSuccess(exit))
        if (exit !== undefined && Exit.isSuccess(exit)) {
          for (const loadedAt of exit.value) maxAge = Math.max(maxAge, now - loadedAt)
          reads += exit.value.length
        }
      }
      assert.strictEqual(reads, 2 * windows * 10 * 1_000)
      assert.deepStrictEqual(
        starts,
        Array.from({ length: windows + 1 }, (_, i) => i * 10_000),
        "one load per ttl window, started at the window's first read"
      )
      assert.isAtMost(maxAge, 10_000 + loaderMillis, "served age never exceeds ttl + the loader's time")
      assert.isAtLeast(maxAge, 10_000, "stale values were served")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("closing the layer interrupts reloads in flight; nothing is written to the store after", () =>
    Effect.gen(function* () {
      const log = makeWriteLog()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Cachet.layer().pipe(Layer.provide(recordingStore(log))), scope)
      let interrupted = 0
      let finished = 0
      const loader = (id: number) =>
        Effect.sleep("5 seconds").pipe(
          Effect.as(id * 10),
          Effect.tap(() => Effect.sync(() => finished++)),
          Effect.onInterrupt(() => Effect.sync(() => interrupted++))
        )
      const ids = Array.from({ length: 10 }, (_, i) => i)
      const read = (id: number) => loader(id).pipe(Strategy.staleWhileRevalidate(Stamps, { id }))
      yield* Effect.gen(function* () {
        yield* Effect.forEach(ids, (id) => Cachet.set(Stamps, { id }, id))
        yield* TestClock.adjust("15 seconds")
        assert.deepStrictEqual(yield* Effect.forEach(ids, read), ids, "stale values")
        yield* settle
        assert.strictEqual(yield* Effect.map(Cachet.stats, (s) => s.revalidations), 0, "reloads in flight")
      }).pipe(Effect.provideContext(context))

      log.closing = true
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(interrupted, 10, "every reload was interrupted")

      yield* TestClock.adjust("1 minute")
      assert.strictEqual(finished, 0)
      // After close, the loader answers directly and nothing is stored.
      assert.strictEqual(
        yield* Effect.succeed(42).pipe(
          Strategy.staleWhileRevalidate(Stamps, { id: 1 }),
          Effect.provideContext(context)
        ),
        42
      )
      assert.strictEqual(log.writesAfterClose, 0)
      assert.strictEqual(log.writes, 10)
    })
  )
})
