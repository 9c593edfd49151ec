/**
 * Tag records stay bounded (issue 13, item 4): 200,000 invalidations of
 * distinct tags hold at most `maxTags` records in the memory store, and
 * none once their retention has passed; TieredStore's L1 caps its own.
 *
 * Memory is measured with the heap after a full GC (`--expose-gc` turned on
 * at run time), beside the record count, which is the bound that holds on
 * any machine.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as L1 from "../../src/redis/internal/l1.ts"

setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

/** Heap in use after two full collections. */
const heapAfterGc = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const MB = 1024 * 1024
const TAGS = 200_000

const Items = Keyspace.make({ name: "item", key: "{id}", value: Schema.String, ttl: "1 minute" })

describe("tag records are bounded", () => {
  it.effect(
    "memory store: 200,000 distinct tags hold at most maxTags records, none after the retention",
    () =>
      Effect.gen(function* () {
        const store = yield* CacheStore.CacheStore
        const tagsHeld = Effect.map(store.info, (info) => info!.tags!)
        const before = heapAfterGc()
        for (let i = 0; i < TAGS; i++) yield* Cachet.invalidateTag(`tenant:${i}:orders`)
        const held = yield* tagsHeld
        const during = heapAfterGc() - before
        console.log(
          `tag records after ${TAGS} invalidations: ${held} held, heap +${(during / MB).toFixed(2)} MB (${Math.round(during / held)} B a record)`
        )
        assert.strictEqual(held, 10_000, "capped at maxTags = max(capacity, 10,000)")
        assert.isBelow(during, 5 * MB)

        // An invalidation dropped for room is not forgotten: the floor covers it.
        yield* Cachet.set(Items, { id: 1 }, "x")
        yield* TestClock.adjust("1 hour")
        yield* TestClock.adjust("1 millis")
        // Past the retention (1 hour): the next write sweeps every record.
        yield* Cachet.set(Items, { id: 2 }, "y")
        const after = yield* tagsHeld
        const left = heapAfterGc() - before
        console.log(`after the retention: ${after} records held, heap +${(left / MB).toFixed(2)} MB`)
        assert.strictEqual(after, 0)
        assert.isBelow(left, 1 * MB)
      }).pipe(
        Effect.provide(
          Cachet.layer({ tagRetention: "1 hour" }).pipe(Layer.provideMerge(CacheStore.layerMemory({ capacity: 1_000 })))
        )
      ),
    // 200,000 invalidations take ~4 s alone, many times that beside other files on 2 cores.
    120_000
  )

  it.effect("memory store: a tag read after the retention sweeps too; an invalidation within it still holds", () =>
    Effect.gen(function* () {
      const store = yield* CacheStore.CacheStore
      yield* store.setTagTime("a", 0, 1_000)
      yield* store.setTagTime("b", 0, 5_000)
      yield* TestClock.adjust(2_000)
      const [a, b] = yield* store.getTagTimes(["a", "b"])
      assert.strictEqual(a, undefined)
      assert.strictEqual(b, 0, "b's retention has not passed")
      assert.strictEqual((yield* store.info)!.tags, 1)
      yield* TestClock.adjust(3_000)
      yield* store.getTagTimes(["c"])
      assert.strictEqual((yield* store.info)!.tags, 0)
    }).pipe(Effect.provide(CacheStore.layerMemory()))
  )

  it("TieredStore L1: 200,000 distinct tags hold at most max(capacity, 1,000) records", () => {
    const l1 = L1.make({ capacity: 2_000 }, 60_000)
    const before = heapAfterGc()
    for (let i = 0; i < TAGS; i++) {
      if (i % 2 === 0) l1.tagInvalidated(`tenant:${i}:orders`, i, i + 86_400_000)
      else l1.tagFetched(`tenant:${i}:orders`, i, i)
    }
    const held = l1.tags()
    const during = heapAfterGc() - before
    console.log(`L1 tag records after ${TAGS} tags: ${held} held, heap +${(during / MB).toFixed(2)} MB`)
    assert.strictEqual(held, 2_000)
    assert.isBelow(during, 5 * MB)
    assert.strictEqual(l1.tagTime(`tenant:${TAGS - 1}:orders`, TAGS, false), TAGS - 1, "the newest records are kept")
    assert.isNull(l1.tagTime("tenant:0:orders", TAGS, false), "the oldest went: the L2 is asked again")
  })
})
