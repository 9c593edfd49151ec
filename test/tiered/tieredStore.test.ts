/**
 * TieredStore and RedisBus in one process: the store conformance suite (over
 * Redis with the bus, and over a memory L2), then several instances sharing a
 * harness Redis: propagation, own messages, malformed messages, sequence
 * gaps, reconnections, the retry queue, partial failures, the L1 bound and
 * the lease.
 *
 * The multi-instance tests run under `it.live`: pub/sub delivery,
 * reconnections, timeouts and leases happen in real time. Bounds are small
 * and generous at once (loopback, 2 shared cores).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Option, Result, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as CacheStoreModule from "../../src/CacheStore.ts"
import { CacheStore } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as RedisBus from "../../src/redis/RedisBus.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as TieredStore from "../../src/redis/TieredStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as CacheStoreSuite from "../../src/testing/CacheStoreSuite.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import {
  eventually,
  type Instance,
  instance,
  on,
  rawClient,
  runId,
  sharedServer,
  sleepReal,
  statsOf,
  subscribed
} from "./helpers.ts"

const server = sharedServer()

const Items = Keyspace.make({
  name: "item",
  key: "item:{id}",
  value: Schema.String,
  ttl: "1 minute",
  tags: (p) => ["items", `item-tag:${p.id}`]
})

const Plain = Keyspace.make({ name: "plain", key: "{id}", value: Schema.String, ttl: "1 minute" })

/** A pass-through codec and an entry written at `now` (store-level tests of the L1 bound). */
const codec: CacheStoreModule.EntryCodec = {
  keyspace: "plain",
  encode: (v) => Result.succeed(v),
  decode: (d) => Result.succeed(d),
  onCorrupt: () => {}
}
const at = (value: string, now: number): CacheStoreModule.StoredEntry => ({
  value,
  createdAt: now,
  freshUntil: now + 60_000,
  staleUntil: now + 60_000,
  tags: []
})

/** Two (or more) instances on the file's server, one prefix, bus subscribed. */
const instances = (count: number, options: Partial<TieredStore.Options> = {}, prefix = `t-${runId()}`) =>
  Effect.gen(function* () {
    const all: Array<Instance> = []
    for (let i = 0; i < count; i++) {
      all.push(yield* instance({ l2: { url: server.get().url, prefix, commandTimeout: 300 }, ...options }))
    }
    if (options.bus !== false) for (const ctx of all) yield* subscribed(ctx)
    return all
  })

/**
 * Waits until `ctx` has received `count` messages from other instances. A
 * reader that reads a key before the message about that key's write arrives
 * backfills its L1, and the late message then drops the copy (one more L2
 * read, never a stale value): tests that count L1 hits wait for it first.
 */
const heard = (ctx: Instance, count: number) =>
  eventually(
    Effect.map(statsOf(ctx), (s) => (s.bus?.received ?? 0) >= count),
    1_000,
    `${count} message(s) received`,
    2
  )

const getItem = (id: number) => Cachet.get(Items, { id })

describe.skipIf(!requireRedis())("TieredStore", () => {
  CacheStoreSuite.suite(
    "tiered (memory L1, Redis L2, bus)",
    Layer.unwrap(
      Effect.sync(() => TieredStore.layer({ l2: { url: server.get().url, prefix: `conf-${runId()}` } }))
    ) as Layer.Layer<CacheStore>
  )
  CacheStoreSuite.suite(
    "tiered (memory L1, memory L2, no bus)",
    TieredStore.layer({ l2: CacheStoreModule.layerMemory() }) as Layer.Layer<CacheStore>
  )

  it.effect("without the bus, an L1 copy lives l1MaxTtl from when its L2 read started, not from its reply", () =>
    Effect.gen(function* () {
      // The shared L2 (a memory store behind 100 ms of read latency, on the
      // TestClock) and another writer's view of it: no bus, so this
      // instance hears of nothing and only its L1 bound limits staleness.
      const shared = yield* Layer.build(
        ChaosStore.layer({ latency: "100 millis", ops: ["get", "getMany"] }).pipe(
          Layer.provideMerge(CacheStoreModule.layerMemory())
        )
      )
      const l2 = Layer.succeed(CacheStore, Context.get(shared, CacheStore))
      const tiered = yield* Layer.build(TieredStore.layer({ l2, bus: false, l1MaxTtl: "300 millis" }))
      const store = Context.get(tiered, CacheStore)
      const writer = Context.get(shared, CacheStore)
      yield* writer.set("plain:k", at("v1", 0), codec)
      // A read starts at 0; its L2 reply arrives at 100 and fills the L1.
      const first = yield* Effect.forkChild(store.get("plain:k", codec))
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* Fiber.join(first))?.value, "v1")
      // Another process writes v2 to the L2 (this instance cannot know).
      yield* TestClock.adjust("50 millis")
      yield* writer.set("plain:k", at("v2", 150), codec)
      yield* TestClock.adjust("149 millis")
      assert.strictEqual((yield* store.get("plain:k", codec))?.value, "v1", "at 299 ms: the L1 copy, within its bound")
      // At 300 ms the copy is l1MaxTtl old counted from the read's start:
      // gone, so the read asks the L2 again (and waits its 100 ms).
      yield* TestClock.adjust("1 millis")
      const second = yield* Effect.forkChild(store.get("plain:k", codec))
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* Fiber.join(second))?.value, "v2", "at 300 ms: read from the L2")
    }).pipe(Effect.provide(TestClock.layer()))
  )

  it.effect("without the bus, an L1 copy of a write lives l1MaxTtl from when the write was sent", () =>
    Effect.gen(function* () {
      // A memory L2 behind 100 ms of write latency (TestClock), written to by another process too.
      const shared = yield* Layer.build(
        ChaosStore.layer({ latency: "100 millis", ops: ["set"] }).pipe(
          Layer.provideMerge(CacheStoreModule.layerMemory())
        )
      )
      const l2 = Layer.succeed(CacheStore, Context.get(shared, CacheStore))
      const tiered = yield* Layer.build(TieredStore.layer({ l2, bus: false, l1MaxTtl: "300 millis" }))
      const store = Context.get(tiered, CacheStore)
      // This instance writes v1 at 0; the L2 acknowledges at 100 and the L1 keeps it.
      const write = yield* Effect.forkChild(store.set("plain:k", at("v1", 0), codec))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(write)
      // Another process's v2 (straight into the shared memory store: no latency on reads).
      yield* Context.get(shared, CacheStoreModule.CacheStore).delete("plain:k")
      yield* TestClock.adjust("199 millis")
      assert.strictEqual((yield* store.get("plain:k", codec))?.value, "v1", "at 299 ms: the L1 copy")
      yield* TestClock.adjust("1 millis")
      assert.isUndefined(yield* store.get("plain:k", codec), "at 300 ms the copy is gone: the L2 answers")
    }).pipe(Effect.provide(TestClock.layer()))
  )

  it.effect(
    "a tagged write the L2 could not take, with no clock of the L2's to order it at, is kept nowhere; an untagged one stays",
    () =>
      Effect.gen(function* () {
        // The L2 (a memory store: no `time`, no ordered writes) fails every
        // write; reads reach it.
        const shared = yield* Layer.build(
          ChaosStore.layer({ failRate: 1, ops: ["set"] }).pipe(Layer.provideMerge(CacheStoreModule.layerMemory()))
        )
        const l2 = Layer.succeed(CacheStore, Context.get(shared, CacheStore))
        const tiered = yield* Layer.build(TieredStore.layer({ l2, bus: false }))
        const store = Context.get(tiered, CacheStore)
        const memory = Context.get(shared, CacheStoreModule.CacheStore)
        // Tag "t" was invalidated at 1,000 on the store's clock.
        yield* TestClock.adjust("2 seconds")
        yield* memory.setTagTime("t", 1_000, 60_000)
        // A process whose clock runs 5 s ahead writes a tagged entry: its
        // createdAt (7,000) passes for newer than the invalidation, which it
        // is not on the store's clock. The L2 gave it no order.
        const tagged = { ...at("tagged", 7_000), tags: ["t"] }
        const failed = yield* Effect.exit(store.set("item:k", tagged, codec))
        assert.isTrue(failed._tag === "Failure", "the L2 failure is returned")
        assert.isUndefined(yield* store.get("item:k", codec), "no L1 copy to compare by a clock it cannot order")
        assert.isUndefined(store.getFrontUnsafe!("item:k", 2_000))
        // Untagged: nothing to order it against; this process keeps its write.
        yield* Effect.exit(store.set("plain:k", at("plain", 7_000), codec))
        assert.strictEqual((yield* store.get("plain:k", codec))?.value, "plain")
      }).pipe(Effect.provide(TestClock.layer()))
  )

  describe("several instances on one Redis", () => {
    it.live("a strategy's L1 hit is synchronous and counted once; an invalidated tag (bus) reads through", () =>
      Effect.gen(function* () {
        const [a, b] = yield* instances(2)
        let runs = 0
        const read = Effect.sync(() => `v${++runs}`).pipe(Strategy.cacheAside(Items, { id: 1 }))
        assert.strictEqual(yield* on(a!)(read), "v1")
        // The first hit fetches the tags' records from the L2 (the L1 then knows them for l1MaxTtl).
        assert.strictEqual(yield* on(a!)(read), "v1")
        const before = yield* statsOf(a!)
        const hitsBefore = (yield* on(a!)(Cachet.stats)).hits
        // No async step on an L1 hit: runSync would throw on one.
        for (let i = 0; i < 50; i++) assert.strictEqual(Effect.runSync(on(a!)(read)), "v1")
        assert.strictEqual((yield* statsOf(a!)).l1Hits, before.l1Hits + 50)
        assert.strictEqual((yield* on(a!)(Cachet.stats)).hits, hitsBefore + 50)
        assert.strictEqual((yield* statsOf(a!)).l2Hits, before.l2Hits, "the L2 was not read")
        yield* on(b!)(Cachet.invalidateTag("item-tag:1"))
        yield* heard(a!, 1)
        assert.strictEqual(yield* on(a!)(read), "v2", "the tag's invalidation reached A: reloaded")
        assert.strictEqual(runs, 2)
      }).pipe(Effect.scoped)
    )

    it.live("a set on one instance reaches the other L1s; own messages are ignored", () =>
      Effect.gen(function* () {
        const [a, b] = yield* instances(2)
        yield* on(a!)(Cachet.set(Items, { id: 1 }, "v1"))
        yield* heard(b!, 1)
        assert.deepStrictEqual(yield* on(b!)(getItem(1)), Option.some("v1"))
        const before = yield* statsOf(b!)
        assert.deepStrictEqual(yield* on(b!)(getItem(1)), Option.some("v1"))
        assert.strictEqual((yield* statsOf(b!)).l1Hits, before.l1Hits + 1, "served by B's L1")
        yield* on(a!)(Cachet.set(Items, { id: 1 }, "v2"))
        const ms = yield* eventually(
          Effect.map(on(b!)(getItem(1)), (v) => Option.getOrUndefined(v) === "v2"),
          100,
          "B sees v2",
          2
        )
        assert.isBelow(ms, 100)
        const aStats = yield* statsOf(a!)
        assert.isAtLeast(aStats.bus!.ownIgnored, 2, "A ignores its own messages")
        assert.isAtLeast((yield* statsOf(b!)).remoteInvalidations, 1)
      }).pipe(Effect.scoped)
    )

    it.live("delete, tag invalidation and keyspace clear reach the other L1s", () =>
      Effect.gen(function* () {
        const [a, b] = yield* instances(2)
        for (const id of [1, 2, 3]) yield* on(a!)(Cachet.set(Items, { id }, `v${id}`))
        yield* heard(b!, 3)
        for (const id of [1, 2, 3]) assert.deepStrictEqual(yield* on(b!)(getItem(id)), Option.some(`v${id}`))
        yield* on(a!)(Cachet.invalidate(Items, { id: 1 }))
        yield* eventually(Effect.map(on(b!)(getItem(1)), Option.isNone), 100, "delete reached B", 2)
        yield* on(a!)(Cachet.invalidateTag("item-tag:2"))
        yield* eventually(Effect.map(on(b!)(getItem(2)), Option.isNone), 100, "tag reached B", 2)
        assert.deepStrictEqual(yield* on(b!)(getItem(3)), Option.some("v3"), "other tags untouched")
        yield* on(a!)(Cachet.invalidateKeyspace(Items))
        yield* eventually(Effect.map(on(b!)(getItem(3)), Option.isNone), 100, "keyspace clear reached B", 2)
      }).pipe(Effect.scoped)
    )

    it.live("malformed messages are dropped and counted; the subscriber keeps running", () =>
      Effect.gen(function* () {
        const prefix = `mal-${runId()}`
        const [a, b] = yield* instances(2, {}, prefix)
        const raw = yield* rawClient(server.get().port)
        const channel = RedisBus.channelOf(prefix)
        for (const junk of [
          "not json",
          "{}",
          JSON.stringify({ v: 2, i: "x", s: 1, t: "set", k: ["a"] }),
          JSON.stringify({ v: 1, i: "x", s: 0, t: "set", k: ["a"] }),
          JSON.stringify({ v: 1, i: "x", s: 1, t: "del", k: [1] }),
          JSON.stringify({ v: 1, i: "x", s: 1, t: "boom" })
        ]) {
          yield* Effect.promise(() => raw.publish(channel, junk))
        }
        yield* eventually(
          Effect.map(statsOf(b!), (s) => s.bus!.malformed === 6),
          1_000,
          "six malformed messages counted"
        )
        yield* on(a!)(Cachet.set(Plain, { id: 1 }, "v1"))
        assert.deepStrictEqual(yield* on(b!)(Cachet.get(Plain, { id: 1 })), Option.some("v1"))
        yield* on(a!)(Cachet.set(Plain, { id: 1 }, "v2"))
        yield* eventually(
          Effect.map(on(b!)(Cachet.get(Plain, { id: 1 })), (v) => Option.getOrUndefined(v) === "v2"),
          100,
          "still listening",
          2
        )
      }).pipe(Effect.scoped)
    )

    it.live("a sequence gap is counted and clears the L1; a pub/sub reconnection too", () =>
      Effect.gen(function* () {
        const prefix = `gap-${runId()}`
        const [b] = yield* instances(1, {}, prefix)
        const raw = yield* rawClient(server.get().port)
        const channel = RedisBus.channelOf(prefix)
        yield* on(b!)(Cachet.set(Plain, { id: 1 }, "v1"))
        yield* on(b!)(Cachet.get(Plain, { id: 1 }))
        const before = yield* statsOf(b!)
        assert.strictEqual(before.l1Entries, 1)
        const send = (seq: number) =>
          Effect.promise(() => raw.publish(channel, JSON.stringify({ v: 1, i: "peer", s: seq, t: "del", k: ["x"] })))
        yield* send(1)
        yield* send(2)
        yield* send(6)
        yield* eventually(
          Effect.map(statsOf(b!), (s) => s.bus!.gaps === 1 && s.bus!.missed === 3),
          1_000,
          "gap of 3 counted"
        )
        const afterGap = yield* statsOf(b!)
        assert.strictEqual(afterGap.l1Entries, 0, "L1 cleared on the gap")
        assert.strictEqual(afterGap.l1Clears, before.l1Clears + 1)

        yield* on(b!)(Cachet.get(Plain, { id: 1 }))
        assert.strictEqual((yield* statsOf(b!)).l1Entries, 1)
        yield* server.get().command("CLIENT", "KILL", "TYPE", "pubsub")
        yield* eventually(
          Effect.map(statsOf(b!), (s) => s.bus!.subscriptions === 2 && s.bus!.subscribed),
          3_000,
          "resubscribed"
        )
        assert.strictEqual((yield* statsOf(b!)).l1Entries, 0, "L1 cleared after the reconnection")
      }).pipe(Effect.scoped)
    )

    it.live("without a bus, an L1 entry lives at most l1MaxTtl", () =>
      Effect.gen(function* () {
        const prefix = `ttl-${runId()}`
        const [a, b] = yield* instances(2, { bus: false, l1MaxTtl: "300 millis" }, prefix)
        yield* on(a!)(Cachet.set(Plain, { id: 1 }, "v1"))
        assert.deepStrictEqual(yield* on(b!)(Cachet.get(Plain, { id: 1 })), Option.some("v1"))
        const written = performance.now()
        yield* on(a!)(Cachet.set(Plain, { id: 1 }, "v2"))
        assert.deepStrictEqual(yield* on(b!)(Cachet.get(Plain, { id: 1 })), Option.some("v1"), "no bus: B is behind")
        const ms = yield* eventually(
          Effect.map(on(b!)(Cachet.get(Plain, { id: 1 })), (v) => Option.getOrUndefined(v) === "v2"),
          1_000,
          "B catches up",
          10
        )
        assert.isAtMost(performance.now() - written, 300 + 150, `caught up after ${ms} ms`)
      }).pipe(Effect.scoped)
    )
  })

  describe("partial failures (BentoCache semantics)", () => {
    it.live("a write that fails in L2 is not published; a delete that fails in L2 still clears every L1", () =>
      Effect.gen(function* () {
        const prefix = `pf-${runId()}`
        const shared = yield* Layer.build(ChaosStore.layer().pipe(Layer.provideMerge(CacheStoreModule.layerMemory())))
        const chaos = Context.get(shared, ChaosStore.ChaosControl)
        const l2 = Layer.succeed(CacheStore, Context.get(shared, CacheStore))
        const bus = { url: server.get().url, prefix }
        const a = yield* instance({ l2, bus })
        const b = yield* instance({ l2, bus })
        yield* subscribed(a)
        yield* subscribed(b)
        yield* on(a)(Cachet.set(Plain, { id: 1 }, "v1"))
        yield* heard(b, 1)
        assert.deepStrictEqual(yield* on(b)(Cachet.get(Plain, { id: 1 })), Option.some("v1"))

        const heardBefore = (yield* statsOf(b)).remoteInvalidations
        yield* chaos.set({ failRate: 1 })
        const failed = yield* Effect.exit(on(a)(Cachet.set(Plain, { id: 1 }, "v2", { onStoreError: "fail" })))
        assert.isTrue(failed._tag === "Failure", "the L2 failure is returned")
        assert.deepStrictEqual(yield* on(a)(Cachet.get(Plain, { id: 1 })), Option.some("v2"), "A keeps its write")
        yield* sleepReal(150)
        assert.deepStrictEqual(
          yield* on(b)(Cachet.get(Plain, { id: 1 })),
          Option.some("v1"),
          "not published: B keeps its copy"
        )
        assert.strictEqual((yield* statsOf(b)).remoteInvalidations, heardBefore)

        yield* on(a)(Cachet.invalidate(Plain, { id: 1 }))
        yield* eventually(
          Effect.map(on(b)(Cachet.get(Plain, { id: 1 })), Option.isNone),
          100,
          "the failed delete still cleared B's L1",
          2
        )
        assert.isTrue(Option.isNone(yield* on(a)(Cachet.get(Plain, { id: 1 }))), "and A's")
      }).pipe(Effect.scoped)
    )

    it.live(
      "a failed write: a load's value is kept nowhere; an explicit tagged write is ordered on the server's clock",
      () =>
        Effect.gen(function* () {
          const own = yield* RedisServer.start()
          const prefix = `uo-${runId()}`
          const tiered = yield* Layer.build(
            TieredStore.layer({ l2: { url: own.url, prefix, commandTimeout: 200, breaker: false }, bus: false })
          )
          const store = Context.get(tiered, CacheStore)
          // A load starts at `since` on the server's clock, in a process whose
          // clock runs 5 s ahead: its entries' createdAt say now + 5 s.
          const since = yield* store.time!("item:k")
          const local = Date.now() + 5_000
          const loaded = { ...at("loaded", local), tags: ["items"] }
          const written = { ...at("written", local), tags: ["items"] }
          // Redis hangs: both writes fail.
          yield* own.pause
          const load = yield* Effect.exit(store.setOrdered!("item:load", loaded, codec, since))
          const set = yield* Effect.exit(store.setOrdered!("item:set", written, codec, undefined))
          yield* own.resume
          assert.isTrue(load._tag === "Failure" && set._tag === "Failure", "both writes timed out")
          // The L1 kept the explicit write only: the load's value is as old as
          // its start. (The L2 may take both once it runs again: a timed-out
          // write can still land.)
          assert.strictEqual((yield* store.info)!.entries, 1)
          yield* eventually(
            Effect.map(Effect.exit(store.ping), (exit) => exit._tag === "Success"),
            2_000,
            "Redis answers again"
          )
          // The explicit write stays in this process, ordered at or before the
          // server's clock when it was made, not at its createdAt (5 s ahead).
          const copy = yield* store.get("item:set", codec)
          assert.strictEqual(copy?.value, "written", "the process keeps its own write")
          assert.isAtMost(copy!.order!, (yield* store.time!("item:set")) + 1)
          assert.isBelow(copy!.order!, copy!.createdAt - 4_000)
          // A tag invalidation after it (server clock) now reads it as invalidated.
          yield* store.setTagTime("items", copy!.order! + 1, 60_000)
          const [time] = yield* store.getTagTimes(["items"])
          assert.isAbove(time!, copy!.order!)
          assert.isBelow(time!, copy!.createdAt, "where its createdAt would have passed the tag check")
          assert.isUndefined(store.getFrontUnsafe!("item:set", Date.now()), "the L1 does not serve it")
        }).pipe(Effect.scoped)
    )

    it.live("publishing while Redis hangs: bounded retry queue, collapsed into one clear, sent on recovery", () =>
      Effect.gen(function* () {
        const own = yield* RedisServer.start()
        const prefix = `rq-${runId()}`
        const options: TieredStore.Options = {
          l2: { url: own.url, prefix, commandTimeout: 200, breaker: false },
          bus: { retryQueueSize: 3, retryInterval: "100 millis" }
        }
        const a = yield* instance(options)
        const b = yield* instance(options)
        yield* subscribed(a)
        yield* subscribed(b)
        for (const id of [1, 2, 3, 4, 5]) yield* on(a)(Cachet.set(Plain, { id }, `v${id}`))
        yield* heard(b, 5)
        for (const id of [1, 2, 3, 4, 5]) yield* on(b)(Cachet.get(Plain, { id }))
        assert.strictEqual((yield* statsOf(b)).l1Entries, 5)
        const before = yield* statsOf(b)

        yield* own.pause
        // Deletes fail in L2 and are still published: into the retry queue.
        for (const id of [1, 2, 3, 4, 5]) yield* on(a)(Cachet.invalidate(Plain, { id }))
        const during = (yield* statsOf(a)).bus!
        assert.strictEqual(during.collapsed, 1, "five messages into a queue of three: collapsed")
        assert.strictEqual(during.queued, 1, "one clear marker")
        yield* own.resume
        yield* eventually(
          Effect.map(statsOf(b), (s) => s.l1Entries === 0),
          2_000,
          "the clear marker reached B"
        )
        const after = yield* statsOf(b)
        assert.strictEqual(after.bus!.subscriptions, before.bus!.subscriptions, "no reconnection: the marker did it")
        assert.strictEqual((yield* statsOf(a)).bus!.queued, 0)
      }).pipe(Effect.scoped)
    )
  })

  describe("cluster-wide single flight (in one process, two runtimes)", () => {
    const Reports = Keyspace.make({
      name: "report",
      key: "{id}",
      value: Schema.String,
      ttl: "1 minute",
      singleFlight: { scope: "cluster", lease: "300 millis", wait: "3 seconds", pollInterval: "20 millis" }
    })

    /**
     * A read of report `id` on `ctx` whose loader holds until `finish` is
     * completed and then answers `value`; returns once the loader started.
     */
    const heldLoad = (ctx: Instance, id: number, value: string) =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const finish = yield* Deferred.make<void>()
        const loader = Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Deferred.await(finish)),
          Effect.as(value)
        )
        const fiber = yield* on(ctx)(loader.pipe(Strategy.cacheAside(Reports, { id }))).pipe(Effect.forkChild)
        yield* Deferred.await(started)
        return { fiber, finish: Deferred.succeed(finish, undefined) }
      })

    it.live("two runtimes, one load", () =>
      Effect.gen(function* () {
        const [a, b] = yield* instances(2)
        let runs = 0
        const loader = Effect.sync(() => ++runs).pipe(Effect.andThen(sleepReal(200)), Effect.as("report"))
        const read = (ctx: Instance) => on(ctx)(loader.pipe(Strategy.cacheAside(Reports, { id: 1 })))
        const results = yield* Effect.all([read(a!), read(b!), read(a!), read(b!)], { concurrency: "unbounded" })
        assert.deepStrictEqual(results, ["report", "report", "report", "report"])
        assert.strictEqual(runs, 1)
        const lease = (yield* statsOf(a!)).lease!
        const leaseB = (yield* statsOf(b!)).lease!
        assert.isAtLeast(lease.acquired + leaseB.acquired, 1)
        assert.strictEqual(lease.found + leaseB.found, 1)
      }).pipe(Effect.scoped)
    )

    it.live("layerLease gives a plain RedisStore cluster-wide single flight", () =>
      Effect.gen(function* () {
        const prefix = `ll-${runId()}`
        const runtime = () =>
          Layer.build(
            Cachet.layer().pipe(
              Layer.provide(Layer.merge(RedisStore.layerClient({ prefix }), TieredStore.layerLease({ prefix }))),
              Layer.provide(IoRedis.layer({ url: server.get().url }))
            )
          )
        const a = yield* runtime()
        const b = yield* runtime()
        let runs = 0
        const loader = Effect.sync(() => ++runs).pipe(Effect.andThen(sleepReal(150)), Effect.as("report"))
        const read = (ctx: Context.Context<Cachet.Cachet>) =>
          Effect.provide(loader.pipe(Strategy.cacheAside(Reports, { id: 1 })), ctx)
        const results = yield* Effect.all([read(a), read(b)], { concurrency: "unbounded" })
        assert.deepStrictEqual(results, ["report", "report"])
        assert.strictEqual(runs, 1)
      }).pipe(Effect.scoped)
    )

    it.live("a lost lease: the load still answers and stores, and the other holder's lease is not released", () =>
      Effect.gen(function* () {
        const prefix = `lost-${runId()}`
        const [a] = yield* instances(1, {}, prefix)
        const raw = yield* rawClient(server.get().port)
        const { fiber, finish } = yield* heldLoad(a!, 9, "loaded")
        const leaseKey = `${prefix}:~lease:report:9`
        assert.isNotNull(yield* Effect.promise(() => raw.get(leaseKey)), "the lease is held")
        // Someone else's lease now (as if ours had expired and been taken).
        yield* Effect.promise(() => raw.set(leaseKey, "someone-else", "PX", 5_000))
        yield* eventually(
          Effect.map(statsOf(a!), (s) => s.lease!.lost === 1),
          2_000,
          "the renewal saw the loss"
        )
        yield* finish
        assert.strictEqual(yield* Fiber.join(fiber), "loaded")
        assert.strictEqual(yield* Effect.promise(() => raw.get(leaseKey)), "someone-else", "not released by us")
        assert.deepStrictEqual(yield* on(a!)(Cachet.get(Reports, { id: 9 })), Option.some("loaded"), "stored")
      }).pipe(Effect.scoped)
    )

    it.live("a leased load that another instance invalidated meanwhile is fenced by the store, not stored", () =>
      Effect.gen(function* () {
        // No bus: A never hears B's invalidation, so only the store's fence
        // (the load's start, read before its lease, against B's tombstone)
        // can refuse A's write.
        const [a, b] = yield* instances(2, { bus: false })
        const { fiber, finish } = yield* heldLoad(a!, 5, "before the invalidation")
        yield* on(b!)(Cachet.invalidate(Reports, { id: 5 }))
        yield* finish
        assert.strictEqual(yield* Fiber.join(fiber), "before the invalidation", "the caller gets its load")
        const fenced = (yield* on(a!)(Cachet.stats)).keyspaces.report!.fencedWrites
        assert.strictEqual(fenced, 1, "the write was refused")
        assert.deepStrictEqual(yield* on(b!)(Cachet.get(Reports, { id: 5 })), Option.none(), "not in the L2")
        assert.deepStrictEqual(yield* on(a!)(Cachet.get(Reports, { id: 5 })), Option.none(), "nor in A's L1")
      }).pipe(Effect.scoped)
    )

    it.live("the lease is released when the load ends, even when its waiters leave", () =>
      Effect.gen(function* () {
        const prefix = `rel-${runId()}`
        const [a] = yield* instances(1, {}, prefix)
        const raw = yield* rawClient(server.get().port)
        const started = yield* Deferred.make<void>()
        const fiber = yield* on(a!)(
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Strategy.cacheAside(Reports, { id: 3 })
          )
        ).pipe(Effect.forkChild)
        yield* Deferred.await(started)
        const leaseKey = `${prefix}:~lease:report:3`
        assert.isNotNull(yield* Effect.promise(() => raw.get(leaseKey)))
        yield* Fiber.interrupt(fiber)
        yield* eventually(
          Effect.map(
            Effect.promise(() => raw.exists(leaseKey)),
            (n) => n === 0
          ),
          1_000,
          "released"
        )
      }).pipe(Effect.scoped)
    )
  })
})

describe("configuration", () => {
  it("bad options throw at the call, naming the option", () => {
    assert.throws(() => TieredStore.layer({ l2: CacheStoreModule.layerMemory(), l1: { capacity: 0 } }), /l1\.capacity/)
    assert.throws(() => TieredStore.layer({ l2: CacheStoreModule.layerMemory(), l1MaxTtl: 0 }), /l1MaxTtl/)
    assert.throws(() => TieredStore.layer({ l2: CacheStoreModule.layerMemory(), bus: true }), /"bus"/)
    assert.throws(
      () => TieredStore.layer({ l2: CacheStoreModule.layerMemory(), bus: { url: "redis://127.0.0.1:1" } }),
      /bus\.prefix/
    )
    assert.throws(() => TieredStore.layer({ l2: { prefix: "p" } as never }), /"url", "cluster" and "client"/)
    assert.throws(() => TieredStore.layer({ l2: { url: "redis://127.0.0.1:1", prefix: "" } }), /prefix/)
    assert.throws(
      () => TieredStore.layer({ l2: { url: "redis://127.0.0.1:1", prefix: "p" }, bus: { retryQueueSize: 0 } }),
      /retryQueueSize/
    )
    assert.throws(() => RedisBus.layer({ url: "redis://127.0.0.1:1", prefix: "" }), /prefix/)
    assert.throws(() => TieredStore.layerLease({ prefix: "" }), /prefix/)
    assert.throws(
      () =>
        Keyspace.make({
          name: "bad",
          key: "{id}",
          value: Schema.String,
          ttl: "1 minute",
          singleFlight: { scope: "cluster", lease: 0 }
        }),
      /singleFlight\.lease/
    )
    assert.throws(
      () =>
        Keyspace.make({
          name: "bad",
          key: "{id}",
          value: Schema.String,
          ttl: "1 minute",
          singleFlight: { scope: "everywhere" } as never
        }),
      /singleFlight\.scope/
    )
    assert.strictEqual(RedisBus.channelOf("my:app"), "my%3Aapp:~bus")
  })

  it.effect("a cluster-scoped keyspace without a lease service loads once per process", () =>
    Effect.gen(function* () {
      const Reports = Keyspace.make({
        name: "report",
        key: "{id}",
        value: Schema.String,
        ttl: "1 minute",
        singleFlight: { scope: "cluster" }
      })
      let runs = 0
      const read = Effect.sync(() => ++runs).pipe(
        Effect.andThen(Effect.yieldNow),
        Effect.as("report"),
        Strategy.cacheAside(Reports, { id: 1 })
      )
      const results = yield* Effect.all([read, read, read], { concurrency: "unbounded" })
      assert.deepStrictEqual(results, ["report", "report", "report"])
      assert.strictEqual(runs, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})
