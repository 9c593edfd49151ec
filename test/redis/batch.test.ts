/**
 * RedisStore's read batching (`batchReads`, on by default): the single-key
 * reads issued in the same tick go out as one MGET per node, and each read
 * keeps its own reply, decode error, miss and interruption. Over harness
 * servers (standalone, and a 3-master Cluster for the per-node split).
 *
 * Real time (`it.live`): the cases count the commands the server ran and
 * pause a server process, which no TestClock moves; waits are bounded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Option, Schema } from "effect"
import * as fc from "fast-check"
import { CacheStore, type StoredEntry } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { RedisCluster, RedisServer, requireRedis } from "../harness/redis.ts"
import { codecOf, rawClient, runId, sharedServer } from "./helpers.ts"

const server = sharedServer()

const Items = Keyspace.make({ name: "item", key: "{id}", value: Schema.Number, ttl: "1 minute" })

const runtime = (options: Partial<RedisStore.LayerOptions> & { readonly prefix: string }) =>
  Layer.build(
    Cachet.layer().pipe(
      Layer.provide(RedisStore.layer({ url: server.get().url, ...options } as RedisStore.LayerOptions))
    )
  )

/** Numbers tagged `all` and `t:<id mod 5>`. */
const taggedKeyspace = (name: string) =>
  Keyspace.make({
    name,
    key: "{id}",
    value: Schema.Number,
    ttl: "1 minute",
    tags: (p) => ["all", `t:${Number(p.id) % 5}`]
  })

/** Calls of `name` on the shared server so far (INFO commandstats). */
const calls = (name: string) =>
  Effect.map(
    Effect.suspend(() => server.get().command("INFO", "commandstats")),
    (info) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
  )

const getAll = (ids: ReadonlyArray<number>) =>
  Effect.forEach(ids, (id) => Effect.map(Cachet.get(Items, { id }), Option.getOrUndefined), {
    concurrency: "unbounded"
  })

describe.skipIf(!requireRedis())("RedisStore read batching", () => {
  it.live("100 reads in one tick are one MGET; each gets its own value, a miss reads as a miss", () =>
    Effect.gen(function* () {
      const ctx = yield* runtime({ prefix: `b-${runId()}` })
      yield* Effect.provide(
        Effect.forEach(
          Array.from({ length: 80 }, (_, id) => id),
          (id) => Cachet.set(Items, { id }, id * 10)
        ),
        ctx
      )
      const [gets, mgets] = [yield* calls("get"), yield* calls("mget")]
      const ids = Array.from({ length: 100 }, (_, i) => i)
      const values = yield* Effect.provide(getAll(ids), ctx)
      assert.deepStrictEqual(
        values,
        ids.map((id) => (id < 80 ? id * 10 : undefined))
      )
      assert.strictEqual((yield* calls("mget")) - mgets, 1, "one MGET for the tick")
      assert.strictEqual((yield* calls("get")) - gets, 0)
    }).pipe(Effect.scoped)
  )

  it.live(
    "100 concurrent hits of tagged entries: one MGET for the entries, one for their tag records (each tag once)",
    () =>
      Effect.gen(function* () {
        const Tagged = taggedKeyspace("tagged")
        const ctx = yield* runtime({ prefix: `bt-${runId()}` })
        const ids = Array.from({ length: 100 }, (_, i) => i)
        const read = Effect.forEach(ids, (id) => Effect.succeed(id).pipe(Strategy.cacheAside(Tagged, { id })), {
          concurrency: "unbounded"
        })
        assert.deepStrictEqual(yield* Effect.provide(read, ctx), ids, "misses: loaded and stored")
        yield* Effect.provide(Cachet.invalidateTag("t:3"), ctx)
        const [gets, mgets, evalshas] = [yield* calls("get"), yield* calls("mget"), yield* calls("evalsha")]
        const again = Effect.forEach(ids, (id) => Effect.succeed(-id).pipe(Strategy.cacheAside(Tagged, { id })), {
          concurrency: "unbounded"
        })
        // The entries tagged t:3 were invalidated: their loaders ran (-id).
        assert.deepStrictEqual(
          yield* Effect.provide(again, ctx),
          ids.map((id) => (id % 5 === 3 ? -id : id))
        )
        assert.strictEqual((yield* calls("mget")) - mgets, 2, "the entries, then their 6 tag records")
        // GETs only inside the 20 reloads' fenced writes (commandstats counts a script's own calls).
        assert.strictEqual((yield* calls("evalsha")) - evalshas, 20)
        assert.strictEqual((yield* calls("get")) - gets, 20)
      }).pipe(Effect.scoped)
  )

  it.live(
    "once the entries' tags are known, 100 concurrent tagged hits are one MGET (entries and tag records), and a tag invalidated since is honoured",
    () =>
      Effect.gen(function* () {
        const Tagged = taggedKeyspace("tagged3")
        const ctx = yield* runtime({ prefix: `bt3-${runId()}` })
        const ids = Array.from({ length: 100 }, (_, i) => i)
        const round = (sign: number) =>
          Effect.provide(
            Effect.forEach(ids, (id) => Effect.succeed(sign * id).pipe(Strategy.cacheAside(Tagged, { id })), {
              concurrency: "unbounded"
            }),
            ctx
          )
        assert.deepStrictEqual(yield* round(1), ids, "misses: loaded and stored")
        // A first round of hits teaches the decode cache the entries' tags.
        assert.deepStrictEqual(yield* round(1), ids)
        const [gets, mgets] = [yield* calls("get"), yield* calls("mget")]
        assert.deepStrictEqual(yield* round(-1), ids, "hits")
        assert.strictEqual((yield* calls("mget")) - mgets, 1, "the 100 entries and their 6 tag records, in one MGET")
        assert.strictEqual((yield* calls("get")) - gets, 0)
        // An invalidation after those reads: the next reads' tag records
        // carry it (they are read with the entries, not reused).
        yield* Effect.provide(Cachet.invalidateTag("t:1"), ctx)
        assert.deepStrictEqual(
          yield* round(-1),
          ids.map((id) => (id % 5 === 1 ? -id : id))
        )
      }).pipe(Effect.scoped)
  )

  it.live("the tag times read with an entry answer that entry's tag check once; any other check asks Redis", () =>
    Effect.gen(function* () {
      const ctx = yield* Layer.build(RedisStore.layer({ url: server.get().url, prefix: `bt4-${runId()}` }))
      const store = Context.get(ctx, CacheStore)
      const codec = codecOf("k")
      const now = Date.now()
      const entry: StoredEntry = {
        value: 1,
        createdAt: now,
        freshUntil: now + 60_000,
        staleUntil: now + 60_000,
        tags: ["a", "b"]
      }
      yield* store.set("k:1", entry, codec)
      yield* store.get("k:1", codec) // the decode cache learns the tags
      const mgets = yield* calls("mget")
      const read = (yield* store.get("k:1", codec))!
      assert.deepStrictEqual(read.tags, ["a", "b"])
      assert.strictEqual((yield* calls("mget")) - mgets, 1, "the entry and its two tag records: one MGET")
      assert.deepStrictEqual(yield* store.getTagTimes(read.tags), [undefined, undefined], "answered from that MGET")
      assert.strictEqual((yield* calls("mget")) - mgets, 1)
      yield* store.setTagTime("b", Date.now(), 60_000)
      // Asked again (the same array): Redis answers, with the new record.
      const again = yield* store.getTagTimes(read.tags)
      assert.strictEqual((yield* calls("mget")) - mgets, 2)
      assert.strictEqual(again[0], undefined)
      assert.isNumber(again[1])
      // Another array of the same tags: Redis too.
      yield* store.getTagTimes(["a", "b"])
      assert.strictEqual((yield* calls("mget")) - mgets, 3)
      // Times read with an entry answer only within 50 ms (real time: the
      // bound is on the process's monotonic clock, which no TestClock moves;
      // the wait is on that clock, bounded).
      const late = (yield* store.get("k:1", codec))!
      const readAt = performance.now()
      assert.strictEqual((yield* calls("mget")) - mgets, 4)
      yield* Effect.sleep("10 millis").pipe(Effect.repeat({ until: () => performance.now() - readAt > 60, times: 100 }))
      yield* store.getTagTimes(late.tags)
      assert.strictEqual((yield* calls("mget")) - mgets, 5, "too old to answer: Redis asked")
    }).pipe(Effect.scoped)
  )

  it.live("batchReads: false sends one GET per read", () =>
    Effect.gen(function* () {
      const ctx = yield* runtime({ prefix: `nb-${runId()}`, batchReads: false })
      const [gets, mgets] = [yield* calls("get"), yield* calls("mget")]
      yield* Effect.provide(getAll([1, 2, 3, 4, 5]), ctx)
      assert.strictEqual((yield* calls("get")) - gets, 5)
      assert.strictEqual((yield* calls("mget")) - mgets, 0)
    }).pipe(Effect.scoped)
  )

  it.live("an unreadable entry in a batch is that key's counted miss (and deleted); the others are read", () =>
    Effect.gen(function* () {
      const prefix = `bc-${runId()}`
      const ctx = yield* runtime({ prefix })
      yield* Effect.provide(
        Effect.forEach([1, 2, 3], (id) => Cachet.set(Items, { id }, id)),
        ctx
      )
      const raw = yield* rawClient(server.get().port)
      const keys = yield* Effect.promise(() => raw.keys(`${prefix}:item:2`))
      assert.strictEqual(keys.length, 1)
      yield* Effect.promise(() => raw.set(keys[0]!, "{not json"))
      assert.deepStrictEqual(yield* Effect.provide(getAll([1, 2, 3]), ctx), [1, undefined, 3])
      const stats = yield* Effect.provide(Cachet.stats, ctx)
      assert.strictEqual(stats.decodeErrors, 1)
      assert.strictEqual(yield* Effect.promise(() => raw.exists(keys[0]!)), 0, "the unreadable entry is deleted")
    }).pipe(Effect.scoped)
  )

  it.live("an interrupted read stops waiting; the rest of its batch is answered", () =>
    Effect.gen(function* () {
      const ctx = yield* runtime({ prefix: `bi-${runId()}` })
      yield* Effect.provide(Cachet.set(Items, { id: 1 }, 1), ctx)
      yield* Effect.provide(Cachet.set(Items, { id: 2 }, 2), ctx)
      const a = yield* Effect.forkChild(Effect.provide(Cachet.get(Items, { id: 1 }), ctx), { startImmediately: true })
      const b = yield* Effect.forkChild(Effect.provide(Cachet.get(Items, { id: 2 }), ctx), { startImmediately: true })
      yield* Fiber.interrupt(a)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(a)))
      assert.deepStrictEqual(yield* Fiber.join(b), Option.some(2))
    }).pipe(Effect.scoped)
  )

  it.live("a batch on a paused server fails within commandTimeout: each read degrades to its loader", () =>
    Effect.gen(function* () {
      const paused = yield* RedisServer.start()
      const ctx = yield* Layer.build(
        Cachet.layer().pipe(
          Layer.provide(RedisStore.layer({ url: paused.url, prefix: `bp-${runId()}`, commandTimeout: 200 }))
        )
      )
      yield* Effect.provide(Cachet.set(Items, { id: 1 }, 1), ctx)
      yield* paused.pause
      const started = performance.now()
      const values = yield* Effect.provide(
        Effect.forEach([1, 2, 3], (id) => Effect.succeed(id + 100).pipe(Strategy.cacheAside(Items, { id })), {
          concurrency: "unbounded"
        }),
        ctx
      )
      const took = performance.now() - started
      yield* paused.resume
      assert.deepStrictEqual(values, [101, 102, 103], "the loaders answered")
      assert.isBelow(took, 200 + 300, `took ${Math.round(took)} ms`)
    }).pipe(Effect.scoped)
  )

  it.live("property: concurrent reads of random keys (present, absent, repeated) answer what one GET each would", () =>
    Effect.gen(function* () {
      const prefix = `bp-${runId()}`
      const batched = yield* runtime({ prefix })
      const single = yield* runtime({ prefix, batchReads: false })
      yield* Effect.provide(
        Effect.forEach(
          Array.from({ length: 30 }, (_, id) => id),
          (id) => (id % 3 === 0 ? Effect.void : Cachet.set(Items, { id }, id))
        ),
        batched
      )
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 60 }), async (ids) => {
            const [a, b] = await Promise.all([
              Effect.runPromise(Effect.provide(getAll(ids), batched)),
              Effect.runPromise(Effect.provide(getAll(ids), single))
            ])
            assert.deepStrictEqual(a, b)
            assert.deepStrictEqual(
              a,
              ids.map((id) => (id % 3 === 0 || id >= 30 ? undefined : id))
            )
          }),
          { numRuns: 100 }
        )
      )
    }).pipe(Effect.scoped)
  )
})

describe.skipIf(!requireRedis())("RedisStore read batching on a Cluster", () => {
  it.live("a batch is split per node: with one master paused, the keys of the others are read", () =>
    Effect.gen(function* () {
      const cluster = yield* RedisCluster.start({ nodeTimeoutMs: 5_000 })
      const ctx = yield* Layer.build(
        Cachet.layer().pipe(
          Layer.provide(
            RedisStore.layer({
              cluster: cluster.startupNodes,
              prefix: `bk-${runId()}`,
              commandTimeout: 500,
              breaker: false
            })
          )
        )
      )
      const ids = Array.from({ length: 60 }, (_, id) => id)
      yield* Effect.provide(
        Effect.forEach(ids, (id) => Cachet.set(Items, { id }, id)),
        ctx
      )
      const victim = cluster.nodes[1]!
      const onVictim = new Set<number>()
      // Which ids live on the victim: ask it directly (its keys).
      const victimKeys = (yield* victim.command("KEYS", "*")).split("\n").filter((k) => k !== "")
      for (const key of victimKeys) onVictim.add(Number(key.slice(key.lastIndexOf(":") + 1)))
      assert.isAbove(onVictim.size, 0)
      assert.isBelow(onVictim.size, ids.length)
      yield* victim.pause
      const values = yield* Effect.provide(getAll(ids), ctx)
      yield* victim.resume
      for (const id of ids) {
        if (onVictim.has(id)) assert.strictEqual(values[id], undefined, `key ${id} is on the paused master`)
        else assert.strictEqual(values[id], id, `key ${id} is on a healthy master`)
      }
    }).pipe(Effect.scoped)
  )
})
