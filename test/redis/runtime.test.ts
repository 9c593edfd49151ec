/**
 * The Cachet runtime and its strategies over RedisStore: the same behaviour
 * as over memory, with entries, tags and invalidations living in Redis (so
 * shared by every runtime on the same prefix).
 *
 * Under `it.effect` (TestClock, set to the wall clock first so that Redis
 * TTLs and Effect time agree).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { CacheStore } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { counting, DbDown, Lookups, NotFound, Users, user } from "../core/cacheAside.suite.ts"
import { requireRedis } from "../harness/redis.ts"
import { rawClient, runId, sharedServer } from "./helpers.ts"

const server = sharedServer()

const Posts = Keyspace.make({ name: "post", key: "{id}", value: Schema.String, ttl: "1 minute" })

/** A runtime on its own store (and connection), on the file's server under `prefix`. */
const runtime = (prefix: string) =>
  Layer.unwrap(
    Effect.sync(() => Cachet.layer().pipe(Layer.provideMerge(RedisStore.layer({ url: server.get().url, prefix }))))
  )

const atWallClock = TestClock.setTime(Date.now())

describe.skipIf(!requireRedis())("Cachet over RedisStore", () => {
  it.effect("cacheAside: a miss loads and stores in Redis, a hit does not load", () => {
    const prefix = `rt-${runId()}`
    return Effect.gen(function* () {
      yield* atWallClock
      const { state, loader } = counting(() => Effect.succeed(user(1)))
      const read = loader.pipe(Strategy.cacheAside(Users, { id: 1 }))
      assert.deepStrictEqual(yield* read, user(1))
      assert.deepStrictEqual(yield* read, user(1))
      assert.strictEqual(state.runs, 1)
      const raw = JSON.parse(yield* server.get().command("GET", `${prefix}:user:user:1`))
      assert.deepStrictEqual(raw.d, { id: 1, name: "user 1", orgId: 7 })
      assert.deepStrictEqual(raw.t, ["users", "org:7"])
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.hits, 1)
      assert.strictEqual(stats.misses, 1)
      assert.strictEqual(stats.storeErrors, 0)
      assert.isUndefined(stats.store)
    }).pipe(Effect.provide(runtime(prefix)))
  })

  it.effect("cacheAside: stale-if-error serves the stale entry from Redis when the loader fails", () =>
    Effect.gen(function* () {
      yield* atWallClock
      let fail = false
      const { state, loader } = counting((run) =>
        fail ? Effect.fail(new DbDown()) : Effect.succeed(user(1, `v${run}`))
      )
      const read = loader.pipe(Strategy.cacheAside(Users, { id: 1 }))
      assert.strictEqual((yield* read).name, "v1")
      yield* TestClock.adjust("15 seconds")
      fail = true
      assert.strictEqual((yield* read).name, "v1", "stale, as the loader failed")
      assert.strictEqual(state.runs, 2)
      yield* TestClock.adjust("15 seconds")
      assert.deepStrictEqual(yield* Effect.flip(read), new DbDown(), "gone: the failure surfaces")
      fail = false
      assert.strictEqual((yield* read).name, "v4")
    }).pipe(Effect.provide(runtime(`rt-${runId()}`)))
  )

  it.effect("tag invalidation: every entry with the tag reloads, others stay", () =>
    Effect.gen(function* () {
      yield* atWallClock
      const { state, loader } = counting((run) => Effect.succeed(user(1, `v${run}`, 7)))
      const other = counting((run) => Effect.succeed(user(2, `w${run}`, 8)))
      const read1 = loader.pipe(Strategy.cacheAside(Users, { id: 1 }))
      const read2 = other.loader.pipe(Strategy.cacheAside(Users, { id: 2 }))
      yield* read1
      yield* read2
      yield* TestClock.adjust(1)
      yield* Cachet.invalidateTag("org:7")
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* read1).name, "v2")
      assert.strictEqual((yield* read2).name, "w1")
      yield* TestClock.adjust(1)
      yield* Cachet.invalidateTag("users")
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* read1).name, "v3")
      assert.strictEqual((yield* read2).name, "w2")
      assert.strictEqual(state.runs + other.state.runs, 5)
    }).pipe(Effect.provide(runtime(`rt-${runId()}`)))
  )

  it.effect("invalidateKeyspace deletes that keyspace's keys only", () => {
    const prefix = `rt-${runId()}`
    return Effect.gen(function* () {
      yield* atWallClock
      for (let i = 0; i < 30; i++) {
        yield* Cachet.set(Users, { id: i }, user(i))
        yield* Cachet.set(Posts, { id: i }, `post ${i}`)
      }
      yield* Cachet.invalidateTag("users")
      assert.strictEqual(yield* Cachet.invalidateKeyspace(Users), 30)
      assert.strictEqual(yield* server.get().command("KEYS", `${prefix}:user:*`), "")
      assert.strictEqual((yield* server.get().command("KEYS", `${prefix}:post:*`)).split("\n").length, 30)
      assert.strictEqual(yield* server.get().command("EXISTS", `${prefix}:~tag:users`), "1", "tag records stay")
      assert.deepStrictEqual(yield* Cachet.get(Posts, { id: 3 }), Option.some("post 3"))
      assert.deepStrictEqual(yield* Cachet.get(Users, { id: 3 }), Option.none())
    }).pipe(Effect.provide(runtime(prefix)))
  })

  it.effect("negative caching round-trips through Redis", () =>
    Effect.gen(function* () {
      yield* atWallClock
      const { state, loader } = counting(() => Effect.fail(new NotFound({ id: 5 })))
      const read = loader.pipe(Strategy.cacheAside(Lookups, { id: 5 }))
      assert.deepStrictEqual(yield* Effect.flip(read), new NotFound({ id: 5 }))
      assert.deepStrictEqual(yield* Effect.flip(read), new NotFound({ id: 5 }))
      assert.strictEqual(state.runs, 1, "the failure was served from Redis")
      yield* TestClock.adjust("5 seconds")
      yield* Effect.flip(read)
      assert.strictEqual(state.runs, 2)
    }).pipe(Effect.provide(runtime(`rt-${runId()}`)))
  )

  it.effect("getMany reads many keys in one round trip", () =>
    Effect.gen(function* () {
      yield* atWallClock
      yield* Cachet.set(Posts, { id: 1 }, "one")
      yield* Cachet.set(Posts, { id: 3 }, "three")
      assert.deepStrictEqual(yield* Cachet.getMany(Posts, [{ id: 1 }, { id: 2 }, { id: 3 }]), [
        Option.some("one"),
        Option.none(),
        Option.some("three")
      ])
    }).pipe(Effect.provide(runtime(`rt-${runId()}`)))
  )

  it.effect("two runtimes on one prefix share entries and invalidations", () => {
    const prefix = `rt-${runId()}`
    return Effect.gen(function* () {
      yield* atWallClock
      const a = yield* Layer.build(runtime(prefix))
      const b = yield* Layer.build(runtime(prefix))
      const { state, loader } = counting((run) => Effect.succeed(user(1, `v${run}`)))
      const read = loader.pipe(Strategy.cacheAside(Users, { id: 1 }))
      assert.strictEqual((yield* Effect.provide(read, a)).name, "v1")
      assert.strictEqual((yield* Effect.provide(read, b)).name, "v1", "b reads a's entry")
      yield* TestClock.adjust(1)
      yield* Effect.provide(Cachet.invalidateTag("org:7"), b)
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* Effect.provide(read, a)).name, "v2", "a sees b's invalidation")
      assert.strictEqual(state.runs, 2)
    })
  })

  it.effect("unreadable bytes are counted as decodeErrors, deleted, and reload", () => {
    const prefix = `rt-${runId()}`
    return Effect.gen(function* () {
      yield* atWallClock
      const redis = yield* rawClient(server.get().port)
      yield* Effect.promise(() => redis.set(`${prefix}:post:9`, Buffer.from([0xc3, 0x28, 0x00, 0xff])))
      const { state, loader } = counting(() => Effect.succeed("fresh"))
      assert.strictEqual(yield* loader.pipe(Strategy.cacheAside(Posts, { id: 9 })), "fresh")
      assert.strictEqual(state.runs, 1)
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.decodeErrors, 1)
      assert.strictEqual(stats.keyspaces.post?.decodeErrors, 1)
      assert.strictEqual(stats.storeErrors, 0)
      const raw = JSON.parse((yield* Effect.promise(() => redis.get(`${prefix}:post:9`)))!)
      assert.strictEqual(raw.d, "fresh", "the corrupt entry was replaced")
      const store = yield* CacheStore
      yield* store.ping
    }).pipe(Effect.provide(runtime(prefix)))
  })
})
