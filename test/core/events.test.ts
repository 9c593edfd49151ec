import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Queue, Schedule, Stream } from "effect"
import { HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import { HttpCache } from "../../src/http/index.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"
import { request, server } from "../http/helpers.ts"
import { Items, settle } from "./observe.ts"

/** Waits (fiber yields, no time) until `n` subscribers read events. */
const subscribed = (n: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < 100; i++) {
      if ((yield* Cachet.health).events.subscribers === n) return
      yield* Effect.yieldNow
    }
    assert.fail(`expected ${n} event subscriber(s)`)
  })

describe("Cachet.events", () => {
  it.effect("a subscriber sees reads, loads, writes and invalidations in order, with the clock's time", () =>
    Effect.gen(function* () {
      const reader = yield* Effect.forkChild(Cachet.events.pipe(Stream.take(9), Stream.runCollect))
      yield* subscribed(1)
      yield* TestClock.adjust("1 second")
      const read = Effect.succeed(7).pipe(Strategy.cacheAside(Items, { id: 1 }))
      yield* read // miss, load, set
      yield* read // hit
      yield* TestClock.adjust("15 seconds")
      yield* read // stale, load, set
      yield* Cachet.invalidate(Items, { id: 1 }) // delete
      yield* Cachet.invalidateTag("t") // invalidate
      const events = yield* Fiber.join(reader)
      assert.deepStrictEqual(
        events.map((e) => e._tag),
        ["Miss", "Load", "Set", "Hit", "Stale", "Load", "Set", "Delete", "Invalidate"]
      )
      assert.deepStrictEqual(events[0], { _tag: "Miss", keyspace: "item", key: "item:1", at: 1000 })
      const load = events[1]!
      assert.isTrue(load._tag === "Load" && load.success && !load.background && load.at === 1000)
      assert.deepStrictEqual(events[8], { _tag: "Invalidate", keyspace: undefined, tag: "t", at: 16_000 })
      yield* subscribed(0)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a background revalidation and a keyspace invalidation are events too", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Items, { id: 2 }, 2)
      yield* TestClock.adjust("15 seconds")
      const reader = yield* Effect.forkChild(Cachet.events.pipe(Stream.take(4), Stream.runCollect))
      yield* subscribed(1)
      assert.strictEqual(yield* Effect.succeed(3).pipe(Strategy.staleWhileRevalidate(Items, { id: 2 })), 2)
      yield* settle
      yield* Cachet.invalidateKeyspace(Items)
      const events = yield* Fiber.join(reader)
      assert.deepStrictEqual(
        events.map((e) => e._tag),
        ["Stale", "Load", "Set", "Invalidate"]
      )
      const load = events[1]!
      assert.isTrue(load._tag === "Load" && load.background)
      assert.deepStrictEqual(events[3], { _tag: "Invalidate", keyspace: "item", tag: undefined, at: 15_000 })
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a reader that stops reading gets a bounded queue: later events are dropped and counted", () =>
    Effect.gen(function* () {
      const reader = yield* Effect.forkChild(
        // Stalls on its first event for good: its queue fills up.
        Cachet.events.pipe(
          Stream.mapEffect(() => Effect.never),
          Stream.runDrain
        )
      )
      yield* subscribed(1)
      for (let id = 0; id < 20; id++) yield* Cachet.set(Items, { id }, id) // 20 Set events
      const health = yield* Cachet.health
      // The loop does not yield: 4 queued, the other 16 dropped.
      assert.strictEqual(health.events.dropped, 16)
      // The cache itself is unaffected.
      assert.strictEqual((yield* Cachet.stats).sets, 20)
      yield* Fiber.interrupt(reader)
      yield* subscribed(0)
      for (let id = 0; id < 20; id++) yield* Cachet.set(Items, { id }, id)
      assert.strictEqual((yield* Cachet.health).events.dropped, 16, "no subscriber: nothing built, nothing dropped")
    }).pipe(Effect.provide(Cachet.layerMemory({ eventsCapacity: 4 })))
  )

  it.effect("without a subscriber the hit path's check reads zero; each subscriber adds one while it runs", () =>
    Effect.gen(function* () {
      const rt = yield* Cachet.Cachet
      assert.strictEqual(rt.observe.active, 0)
      const a = yield* Effect.forkChild(Stream.runDrain(Cachet.events))
      const b = yield* Effect.forkChild(Stream.runDrain(Cachet.events))
      yield* subscribed(2)
      assert.strictEqual(rt.observe.active, 2)
      yield* Fiber.interrupt(a)
      yield* Fiber.interrupt(b)
      assert.strictEqual(rt.observe.active, 0)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("tracing all counts as one watcher on the hit path", () =>
    Effect.gen(function* () {
      const rt = yield* Cachet.Cachet
      assert.strictEqual(rt.observe.active, 1)
    }).pipe(Effect.provide(Cachet.layerMemory({ tracing: "all" })))
  )

  it.effect("a write-behind operation given up is a DeadLetter event", () =>
    Effect.gen(function* () {
      const reader = yield* Effect.forkChild(
        Cachet.events.pipe(
          Stream.filter((e) => e._tag === "DeadLetter"),
          Stream.take(1),
          Stream.runCollect
        )
      )
      yield* subscribed(1)
      yield* Strategy.writeBehind(Items, { id: 1 }, 1, Effect.fail("source down"))
      yield* TestClock.adjust("2 seconds")
      yield* settle
      const [letter] = yield* Fiber.join(reader)
      assert.deepStrictEqual(letter, {
        _tag: "DeadLetter",
        keyspace: "item",
        key: "item:1",
        op: "set",
        reason: "RetriesExhausted",
        at: 1000
      })
    }).pipe(
      Effect.provide(Cachet.layerMemory({ writeBehind: { flushInterval: "1 second", retry: Schedule.recurs(0) } }))
    )
  )
})

describe("Cachet.events of the HTTP cache", () => {
  // The HTTP cache counts a miss when its load answered: its Miss follows the Load.
  it.effect("a response cache's reads are events too: load, set, miss, hit, stale", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const events = yield* Cachet.subscribeEvents
        const { serve } = server(HttpCache.middleware({ ttl: "10 seconds", staleFor: "1 minute" }), () =>
          Effect.succeed(HttpServerResponse.text("x"))
        )
        yield* serve(request("/a"))
        yield* serve(request("/a"))
        yield* TestClock.adjust("15 seconds")
        yield* serve(request("/a"))
        yield* settle
        const seen = yield* Queue.takeAll(events)
        assert.deepStrictEqual(seen.map((e) => e._tag).slice(0, 5), ["Load", "Set", "Miss", "Hit", "Stale"])
        assert.isTrue(seen.every((e) => !("keyspace" in e) || e.keyspace === "http"))
      })
    ).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

describe("Cachet.health on one process", () => {
  it.effect("the memory store: ok, no breakers, no bus, empty journal", () =>
    Effect.gen(function* () {
      const health = yield* Cachet.health
      assert.strictEqual(health.status, "ok")
      assert.deepStrictEqual(health.store, { name: "memory", ok: true, latencyMillis: 0, error: undefined })
      assert.deepStrictEqual(health.breakers, [])
      assert.strictEqual(health.bus, undefined)
      assert.strictEqual(health.journalDepth, 0)
      assert.strictEqual(health.writeBehindQueued, 0)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a store that does not answer is down; journalled invalidations and queued writes show", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosStore.ChaosControl
      yield* Strategy.writeBehind(Items, { id: 1 }, 1, Effect.void)
      yield* chaos.set({ failRate: 1 })
      yield* Cachet.invalidate(Items, { id: 2 }) // refused: journalled
      const down = yield* Cachet.health
      assert.strictEqual(down.status, "down")
      assert.isFalse(down.store.ok)
      assert.match(down.store.error ?? "", /chaos/i)
      assert.strictEqual(down.journalDepth, 1)
      assert.strictEqual(down.writeBehindQueued, 1)
      assert.deepStrictEqual(down.keyspaces.item, { writeBehindQueued: 1, bypassed: false })
      // Pings answer again but the journal is not replayed yet: degraded.
      yield* chaos.set({ failRate: 1, ops: ["delete", "deleteMany"] })
      assert.strictEqual((yield* Cachet.health).status, "degraded")
      yield* chaos.set({ failRate: 0 })
      yield* TestClock.adjust("1 second") // the journal replays
      yield* settle
      const back = yield* Cachet.health
      assert.strictEqual(back.journalDepth, 0)
    }).pipe(
      Effect.provide(
        Cachet.layer({ writeBehind: { flushInterval: "1 minute" } }).pipe(
          Layer.provideMerge(ChaosStore.layer({})),
          Layer.provide(CacheStore.layerMemory())
        )
      )
    )
  )

  it.effect("the ping's time is measured on the runtime's clock", () =>
    Effect.gen(function* () {
      const context = yield* Layer.build(
        Cachet.layer().pipe(
          Layer.provideMerge(ChaosStore.layer({ latency: "40 millis", ops: ["ping"] })),
          Layer.provide(CacheStore.layerMemory())
        )
      )
      const fiber = yield* Effect.forkChild(Effect.provideContext(Cachet.health, context))
      yield* settle
      yield* TestClock.adjust("40 millis")
      const health = yield* Fiber.join(fiber)
      assert.strictEqual(health.store.latencyMillis, 40)
      assert.strictEqual(Context.get(context, Cachet.Cachet).store.name, "chaos(memory)")
    })
  )
})
