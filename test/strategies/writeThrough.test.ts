import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Random, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"
import { chaosLayer } from "./helpers.ts"

class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}

const Rows = Keyspace.make({ name: "row", key: "{id}", value: Schema.Number, ttl: "1 minute", staleFor: "1 hour" })

const Memory = Cachet.layerMemory()

/** A source table: versions per id; reads and writes yield a random number of times. */
const makeSource = () => {
  const rows = new Map<number, number>()
  const jitter = Effect.flatMap(Random.nextIntBetween(0, 4), (n) =>
    Effect.forEach(Array.from({ length: n }), () => Effect.yieldNow, { discard: true })
  )
  const read = (id: number) =>
    Effect.andThen(
      jitter,
      Effect.suspend(() => Effect.succeed(rows.get(id) ?? 0))
    ).pipe(Effect.tap(() => jitter))
  const write = (id: number, version: number) =>
    Effect.andThen(
      jitter,
      Effect.sync(() => {
        rows.set(id, version)
        return version
      })
    ).pipe(Effect.tap(() => jitter))
  return { rows, read, write }
}

/**
 * Writers bump versions of a few keys with writeThrough while readers read
 * them with cache-aside; a reader that starts after a write returned must see
 * that version or a later one.
 */
const noReaderSeesAnOlderValue =
  (read: (id: number) => Effect.Effect<number, never, Cachet.Cachet>) => (source: ReturnType<typeof makeSource>) =>
    Effect.gen(function* () {
      const ids = [1, 2, 3]
      const acknowledged = new Map<number, number>(ids.map((id) => [id, 0]))
      let violations = 0
      let checks = 0
      let done = false
      const writer = (id: number) =>
        Effect.gen(function* () {
          for (let version = 1; version <= 60; version++) {
            yield* source.write(id, version).pipe(Strategy.writeThrough(Rows, { id }))
            acknowledged.set(id, version)
          }
        })
      const reader = (id: number) =>
        Effect.gen(function* () {
          while (!done) {
            const floor = acknowledged.get(id)!
            const seen = yield* read(id)
            checks++
            if (seen < floor) violations++
          }
        })
      const readers = yield* Effect.forkChild(
        Effect.forEach([...ids, ...ids, ...ids], reader, { concurrency: "unbounded", discard: true })
      )
      yield* Effect.forEach(ids, writer, { concurrency: "unbounded", discard: true })
      done = true
      yield* Fiber.join(readers)
      return { violations, checks }
    })

describe("writeThrough", () => {
  it.effect("stores the value the write returned; the next read is a hit", () =>
    Effect.gen(function* () {
      let reads = 0
      const load = Effect.sync(() => ++reads * 100)
      yield* load.pipe(Strategy.cacheAside(Rows, { id: 1 }))
      const saved = yield* Effect.succeed(7).pipe(Strategy.writeThrough(Rows, { id: 1 }))
      assert.strictEqual(saved, 7)
      assert.strictEqual(yield* load.pipe(Strategy.cacheAside(Rows, { id: 1 })), 7)
      assert.strictEqual(reads, 1)
      // data-first
      assert.strictEqual(yield* Strategy.writeThrough(Effect.succeed(8), Rows, { id: 1 }), 8)
      assert.deepStrictEqual(yield* Cachet.get(Rows, { id: 1 }), Option.some(8))
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a failed write leaves the cache untouched", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Rows, { id: 1 }, 1)
      const error = yield* Effect.flip(Effect.fail(new DbDown()).pipe(Strategy.writeThrough(Rows, { id: 1 })))
      assert.strictEqual(error._tag, "DbDown")
      assert.deepStrictEqual(yield* Cachet.get(Rows, { id: 1 }), Option.some(1))
      assert.strictEqual((yield* Cachet.stats).sets, 1)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a value that fails its Schema is returned, and the old entry is invalidated", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Rows, { id: 1 }, 1)
      const saved = yield* Effect.succeed("two" as unknown as number).pipe(Strategy.writeThrough(Rows, { id: 1 }))
      assert.strictEqual(saved, "two" as unknown as number)
      assert.isTrue(Option.isNone(yield* Cachet.getEntry(Rows, { id: 1 })))
      assert.strictEqual((yield* Cachet.stats).encodeErrors, 1)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a load that started before the write does not store the old value", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const slowRead = Deferred.succeed(started, undefined).pipe(Effect.andThen(Deferred.await(gate)), Effect.as(1))
      const reader = yield* Effect.forkChild(slowRead.pipe(Strategy.cacheAside(Rows, { id: 1 })))
      yield* Deferred.await(started)
      yield* Effect.succeed(2).pipe(Strategy.writeThrough(Rows, { id: 1 }))
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(reader), 1, "the reader that started before gets what it read")
      assert.deepStrictEqual(yield* Cachet.get(Rows, { id: 1 }), Option.some(2), "the cache keeps the write")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a load that started while the source was being written does not store the old value", () =>
    Effect.gen(function* () {
      let row = 0
      const writing = yield* Deferred.make<void>()
      const commit = yield* Deferred.make<void>()
      const loaded = yield* Deferred.make<void>()
      const finishLoad = yield* Deferred.make<void>()
      const write = Deferred.succeed(writing, undefined).pipe(
        Effect.andThen(Deferred.await(commit)),
        Effect.andThen(Effect.sync(() => (row = 2)))
      )
      const slowLoad = Effect.sync(() => row).pipe(
        Effect.tap(() => Deferred.succeed(loaded, undefined)),
        Effect.tap(() => Deferred.await(finishLoad))
      )
      const writer = yield* Effect.forkChild(write.pipe(Strategy.writeThrough(Rows, { id: 1 })))
      yield* Deferred.await(writing)
      const reader = yield* Effect.forkChild(slowLoad.pipe(Strategy.cacheAside(Rows, { id: 1 })))
      yield* Deferred.await(loaded) // the load read the old row (0)
      yield* Deferred.succeed(commit, undefined)
      assert.strictEqual(yield* Fiber.join(writer), 2)
      yield* Deferred.succeed(finishLoad, undefined)
      assert.strictEqual(yield* Fiber.join(reader), 0)
      assert.deepStrictEqual(yield* Cachet.get(Rows, { id: 1 }), Option.some(2), "the old row was not stored")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("the cache write fails: the key is invalidated (degrade) and the failure counted", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosStore.ChaosControl
      yield* Cachet.set(Rows, { id: 1 }, 1)
      yield* chaos.set({ failRate: 1, ops: ["set"] })
      assert.strictEqual(yield* Effect.succeed(2).pipe(Strategy.writeThrough(Rows, { id: 1 })), 2)
      assert.isTrue(Option.isNone(yield* Cachet.getEntry(Rows, { id: 1 })), "deleted, not left at 1")
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.storeErrors, 1)
      assert.strictEqual(stats.deletes, 1)
    }).pipe(Effect.provide(chaosLayer({})))
  )

  it.effect("strict mode: the cache write failure is a CacheStoreError, after the key was invalidated", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosStore.ChaosControl
      yield* Cachet.set(Rows, { id: 1 }, 1)
      yield* chaos.set({ failRate: 1, ops: ["set"] })
      const error = yield* Effect.flip(
        Effect.succeed(2).pipe(Strategy.writeThrough(Rows, { id: 1 }, { onStoreError: "fail" }))
      )
      assert.strictEqual(error._tag, "CacheStoreError")
      assert.isTrue(Option.isNone(yield* Cachet.getEntry(Rows, { id: 1 })))
    }).pipe(Effect.provide(chaosLayer({})))
  )

  it.effect("set and delete both fail: this process ignores the old entry until it can write the key", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosStore.ChaosControl
      yield* Cachet.set(Rows, { id: 1 }, 1)
      yield* TestClock.adjust(5)
      yield* chaos.set({ failRate: 1, ops: ["set", "delete"] })
      yield* Effect.succeed(2).pipe(Strategy.writeThrough(Rows, { id: 1 }))
      yield* chaos.set({ failRate: 0 })
      assert.isTrue(Option.isNone(yield* Cachet.getEntry(Rows, { id: 1 })), "the store still has 1; it is hidden")
      // The next load stores the source's value, and the key reads normally again.
      assert.strictEqual(yield* Effect.succeed(2).pipe(Strategy.cacheAside(Rows, { id: 1 })), 2)
      assert.deepStrictEqual(yield* Cachet.get(Rows, { id: 1 }), Option.some(2))
    }).pipe(Effect.provide(chaosLayer({})))
  )

  it.effect("under a store whose sets fail: no reader ever sees the pre-write value after the write returned", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosStore.ChaosControl
      const source = makeSource()
      const read = (id: number) => source.read(id).pipe(Strategy.cacheAside(Rows, { id }))
      yield* Effect.forEach([1, 2, 3], read) // cached at version 0
      yield* chaos.set({ failRate: 0.5, ops: ["set"] })
      const { violations, checks } = yield* noReaderSeesAnOlderValue(read)(source)
      assert.strictEqual(violations, 0)
      assert.isAbove(checks, 100)
      assert.isAbove(yield* chaos.injected, 20, "sets did fail")
    }).pipe(Effect.provide(chaosLayer({})), Random.withSeed(42))
  )

  it.effect("with the store down for sets and deletes: still no reader in this process sees it", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosStore.ChaosControl
      const source = makeSource()
      const read = (id: number) => source.read(id).pipe(Strategy.cacheAside(Rows, { id }))
      yield* Effect.forEach([1, 2, 3], read)
      yield* chaos.set({ failRate: 0.7, ops: ["set", "delete"] })
      const { violations, checks } = yield* noReaderSeesAnOlderValue(read)(source)
      assert.strictEqual(violations, 0)
      assert.isAbove(checks, 100)
    }).pipe(Effect.provide(chaosLayer({})), Random.withSeed(7))
  )

  it.effect("the same on the in-process fast path (memory store, no chaos)", () =>
    Effect.gen(function* () {
      const source = makeSource()
      const read = (id: number) => source.read(id).pipe(Strategy.cacheAside(Rows, { id }))
      const { violations, checks } = yield* noReaderSeesAnOlderValue(read)(source)
      assert.strictEqual(violations, 0)
      assert.isAbove(checks, 100)
    }).pipe(Effect.provide(Memory), Random.withSeed(3))
  )
})
