import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import { HttpCache } from "../../src/http/index.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { runId, sleepReal } from "../redis/helpers.ts"

// Issue #10, case 3: an invalidation the store cannot take is not lost. It
// is applied in this process at once, journalled, and replayed in order
// when the store answers; overflow makes the keyspace bypass the cache
// until a resync, loudly.

const Items = Keyspace.make({
  name: "journal-item",
  key: "{id}",
  value: Schema.Number,
  ttl: "1 hour",
  tags: (p) => [`item:${p.id}`]
})
const Other = Keyspace.make({ name: "journal-other", key: "{id}", value: Schema.Number, ttl: "1 hour" })

const down = ChaosStore.ChaosControl.use((c) =>
  c.set({ failRate: 1, ops: ["delete", "deleteMany", "deletePrefix", "setTagTime"] })
)
const up = ChaosStore.ChaosControl.use((c) => c.set({ failRate: 0 }))

/** A runtime over a ChaosStore over memory, with the memory store itself in context (to look behind the chaos). */
const layer = (options?: Cachet.Options) =>
  Layer.unwrap(
    Effect.map(CacheStore.makeMemory(), (memory) =>
      Cachet.layer(options).pipe(
        Layer.provideMerge(ChaosStore.layer({ failRate: 0 })),
        Layer.provide(Layer.succeed(CacheStore.CacheStore, memory)),
        Layer.merge(Layer.succeed(Memory, memory))
      )
    )
  )
class Memory extends Context.Service<Memory, CacheStore.CacheStore["Service"]>()("test/journal/Memory") {}

const codec = {
  keyspace: Items.name,
  encode: Items.encode,
  decode: Items.decode,
  onCorrupt: () => {}
}
const storedKey = (id: number) => Items.keyUnsafe({ id })

describe("case 3: the invalidation journal", () => {
  it.effect(
    "invalidate, invalidateTag, invalidateKeyspace while the store refuses: gone here at once, in the store after replay",
    () =>
      Effect.gen(function* () {
        const memory = yield* Memory
        for (const id of [1, 2, 3]) yield* Cachet.set(Items, { id }, id)
        yield* Cachet.set(Other, { id: 1 }, 1)
        yield* down
        yield* Cachet.invalidate(Items, { id: 1 })
        yield* Cachet.invalidateTag("item:2")
        yield* Cachet.invalidateKeyspace(Other)
        // This process's view: every one of them is gone at once.
        assert.isTrue(Option.isNone(yield* Cachet.get(Items, { id: 1 })))
        assert.isTrue(Option.isNone(yield* Cachet.get(Items, { id: 2 })))
        assert.isTrue(Option.isNone(yield* Cachet.get(Other, { id: 1 })))
        assert.deepStrictEqual(yield* Cachet.get(Items, { id: 3 }), Option.some(3), "others untouched")
        // The store itself still holds them: it took nothing.
        assert.isDefined(yield* memory.get(storedKey(1), codec))
        const stats = yield* Cachet.stats
        assert.strictEqual(stats.journaled, 3)
        assert.strictEqual(stats.journalOverflows, 0)
        // The store answers again: the journal replays in order.
        yield* up
        yield* TestClock.adjust("300 millis")
        assert.isUndefined(yield* memory.get(storedKey(1), codec), "the key was deleted in the store")
        assert.isDefined(yield* memory.getTagTimes(["item:2"]).pipe(Effect.map((t) => t[0])))
        assert.isUndefined(yield* memory.get(Other.keyUnsafe({ id: 1 }), codec))
        const rt = yield* Cachet.Cachet
        assert.strictEqual(rt.journalDepth(), 0)
        // And loads store again.
        let loads = 0
        const load = Effect.sync(() => ++loads).pipe(Strategy.cacheAside(Items, { id: 1 }))
        yield* load
        yield* load
        assert.strictEqual(loads, 1)
      }).pipe(Effect.provide(layer()))
  )

  it.effect('{ onStoreError: "fail" }: the caller is told, and the invalidation is still journalled', () =>
    Effect.gen(function* () {
      yield* Cachet.set(Items, { id: 1 }, 1)
      yield* down
      const error = yield* Effect.flip(Cachet.invalidate(Items, { id: 1 }, { onStoreError: "fail" }))
      assert.strictEqual(error._tag, "CacheStoreError")
      const tagError = yield* Effect.flip(Cachet.invalidateTag("item:1", { onStoreError: "fail" }))
      assert.strictEqual(tagError._tag, "CacheStoreError")
      const pathError = yield* Effect.flip(HttpCache.invalidatePath("/items/1", { onStoreError: "fail" }))
      assert.strictEqual(pathError._tag, "CacheStoreError")
      assert.isTrue(Option.isNone(yield* Cachet.get(Items, { id: 1 })))
      assert.strictEqual((yield* Cachet.stats).journaled, 3)
      // In degrade mode (default) the same calls succeed.
      yield* HttpCache.invalidatePath("/items/2")
      assert.strictEqual((yield* Cachet.stats).journaled, 4)
    }).pipe(Effect.provide(layer()))
  )

  it.effect("overflow is never silent: past journalCapacity the keyspace bypasses the cache until a resync", () =>
    Effect.gen(function* () {
      const memory = yield* Memory
      for (const id of [1, 2, 3, 4]) yield* Cachet.set(Items, { id }, id)
      yield* down
      yield* Cachet.invalidate(Items, { id: 1 })
      yield* Cachet.invalidate(Items, { id: 2 })
      yield* Cachet.invalidate(Items, { id: 3 }) // the third: over capacity
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.journalOverflows, 1)
      // Bypassed: nothing of the keyspace is served or stored in this process.
      assert.isTrue(Option.isNone(yield* Cachet.get(Items, { id: 4 })))
      let loads = 0
      const load = Effect.sync(() => ++loads).pipe(Strategy.cacheAside(Items, { id: 5 }))
      yield* load
      yield* load
      assert.strictEqual(loads, 2, "no caching while bypassed")
      // The store answers: replay, then the resync clears the keyspace there.
      yield* up
      yield* TestClock.adjust("300 millis")
      assert.isUndefined(yield* memory.get(storedKey(3), codec), "the lost invalidation is covered by the resync")
      assert.isUndefined(yield* memory.get(storedKey(4), codec))
      yield* load
      yield* load
      assert.strictEqual(loads, 3, "caching again")
    }).pipe(Effect.provide(layer({ journalCapacity: 2 })))
  )
})

describe.skipIf(!requireRedis())("case 3 on a real Redis: SIGSTOP, invalidate, SIGCONT", () => {
  it.live("an invalidation made while Redis is paused reaches the other instance once Redis answers", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.start()
      const prefix = `j-${runId()}`
      const runtime = () =>
        Layer.build(
          Cachet.layer({ journalRetry: "50 millis" }).pipe(
            Layer.provide(RedisStore.layer({ url: server.url, prefix, commandTimeout: 200 }))
          )
        )
      const a = yield* runtime()
      const b = yield* runtime()
      const on =
        (ctx: Context.Context<Cachet.Cachet>) =>
        <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet>) =>
          Effect.provide(effect, ctx)
      const source = { version: 1 }
      const read = Effect.sync(() => source.version).pipe(Strategy.cacheAside(Items, { id: 9 }))
      assert.strictEqual(yield* on(b)(read), 1)
      yield* server.pause
      source.version = 2
      yield* on(a)(Cachet.invalidate(Items, { id: 9 }))
      yield* on(a)(HttpCache.invalidatePath("/items/9"))
      assert.strictEqual((yield* on(a)(Cachet.stats)).journaled, 2)
      yield* server.resume
      // Bounded polling (real time): B sees version 2 once A has replayed.
      let seen = 0
      for (let i = 0; i < 100 && seen !== 2; i++) {
        yield* sleepReal(20)
        seen = yield* on(b)(read)
      }
      assert.strictEqual(seen, 2, "the invalidation made during the outage was not lost")
      // And the journal drains (after the breaker lets calls through again).
      const rt = yield* on(a)(Effect.service(Cachet.Cachet))
      for (let i = 0; i < 200 && rt.journalDepth() > 0; i++) yield* sleepReal(20)
      assert.strictEqual(rt.journalDepth(), 0, "replayed")
    }).pipe(Effect.scoped)
  )
})
