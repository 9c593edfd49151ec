import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Metric, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"

export class User extends Schema.Class<User>("User")({
  id: Schema.Number,
  name: Schema.String,
  orgId: Schema.Number
}) {}
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { id: Schema.Number }) {}
export class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}

export const Users = Keyspace.make({
  name: "user",
  key: "user:{id}",
  value: User,
  ttl: "10 seconds",
  staleFor: "20 seconds",
  tags: (_p, u) => ["users", `org:${u.orgId}`]
})
const Plain = Keyspace.make({ name: "plain", key: "{id}", value: Schema.String, ttl: "10 seconds" })
export const Lookups = Keyspace.make({
  name: "lookup",
  key: "{id}",
  value: User,
  ttl: "1 minute",
  negative: { ttl: "5 seconds", error: NotFound }
})

export const user = (id: number, name = `user ${id}`, orgId = 7) => new User({ id, name, orgId })

/** A loader that counts its runs. */
export const counting = <A, E>(effect: (run: number) => Effect.Effect<A, E>) => {
  const state = { runs: 0 }
  const loader = Effect.suspend(() => effect(++state.runs))
  return { state, loader }
}

/**
 * The cacheAside and runtime behaviour, on any store. `settle` lets forked
 * callers reach their wait: a yield in process, a short real wait where a
 * read is real I/O (Redis).
 */
/**
 * Moves past every write so far on the store's clock: the TestClock by 1 ms
 * and, for a store that orders writes on its own clock (Redis: the server's,
 * in real time), bounded polling until that clock has moved 2 ms. A load
 * that then starts is ordered after those writes (a load ordered at or
 * before an explicit write is fenced by design).
 */
const pastWrites = (key: string, adjust = true) =>
  Effect.gen(function* () {
    if (adjust) yield* TestClock.adjust(1)
    const store = yield* CacheStore.CacheStore
    if (store.time === undefined) return
    const start = yield* Effect.orDie(store.time(key))
    for (let i = 0; i < 500; i++) {
      if ((yield* Effect.orDie(store.time(key))) >= start + 2) return
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
    }
    return yield* Effect.die(new Error("the store's clock did not move in 500 polls"))
  })

export const cacheAsideSuite = (
  label: string,
  store: Layer.Layer<CacheStore.CacheStore>,
  options: { readonly inProcess: boolean; readonly settle: Effect.Effect<void> }
): void => {
  const { inProcess, settle } = options
  const Memory = Cachet.layer().pipe(Layer.provideMerge(store))
  const Chaos = (chaos: ChaosStore.Options) =>
    Cachet.layer().pipe(Layer.provideMerge(ChaosStore.layer(chaos)), Layer.provide(store))

  describe(`cacheAside on ${label}`, () => {
    it.effect("timeline: fresh, stale and gone at exactly ttl and ttl + staleFor", () =>
      Effect.gen(function* () {
        const { state, loader } = counting(() => Effect.succeed(user(1)))
        const read = loader.pipe(Strategy.cacheAside(Users, { id: 1 }))
        const where = Effect.map(
          Cachet.getEntry(Users, { id: 1 }),
          Option.map((e) => e.state)
        )

        assert.deepStrictEqual(yield* read, user(1))
        assert.strictEqual(state.runs, 1)
        yield* TestClock.adjust(9_999)
        assert.deepStrictEqual(yield* where, Option.some("fresh"))
        yield* read
        assert.strictEqual(state.runs, 1, "fresh: a hit")

        yield* TestClock.adjust(1)
        assert.deepStrictEqual(yield* where, Option.some("stale"), "stale at exactly ttl")
        yield* TestClock.adjust(19_999)
        assert.deepStrictEqual(yield* where, Option.some("stale"))
        yield* TestClock.adjust(1)
        assert.deepStrictEqual(yield* where, Option.none(), "gone at exactly ttl + staleFor")

        yield* read
        assert.strictEqual(state.runs, 2, "gone: loads again")
      }).pipe(Effect.provide(Memory))
    )

    it.effect("a stale entry is a miss, and the fallback if the loader fails (stale-if-error)", () =>
      Effect.gen(function* () {
        let fail = false
        const { state, loader } = counting((run) =>
          fail ? Effect.fail(new DbDown()) : Effect.succeed(user(1, `v${run}`))
        )
        const read = loader.pipe(Strategy.cacheAside(Users, { id: 1 }))

        assert.strictEqual((yield* read).name, "v1")
        yield* TestClock.adjust("15 seconds")
        // v2's load must start after v1's write on the store's clock, or its
        // write is fenced (by design) and v1 stays.
        yield* pastWrites("user:1", false)
        assert.strictEqual((yield* read).name, "v2", "stale: the loader answers")

        yield* TestClock.adjust("15 seconds")
        fail = true
        assert.strictEqual((yield* read).name, "v2", "loader failed inside the stale window: stale value")
        yield* TestClock.adjust("20 seconds")
        const exit = yield* Effect.exit(read)
        assert.isTrue(Exit.isFailure(exit), "past the stale window the failure surfaces")
        assert.deepStrictEqual(
          Cause.findErrorOption((exit as Exit.Failure<User, DbDown>).cause),
          Option.some(new DbDown())
        )
        assert.strictEqual(state.runs, 4)

        const stats = (yield* Cachet.stats).keyspaces["user"]!
        assert.strictEqual(stats.staleHits, 1)
        assert.strictEqual(stats.loadFailures, 2)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("loader failures are not cached", () =>
      Effect.gen(function* () {
        const { state, loader } = counting((run) => (run === 1 ? Effect.fail(new DbDown()) : Effect.succeed(user(2))))
        const read = loader.pipe(Strategy.cacheAside(Users, { id: 2 }))
        assert.isTrue(Exit.isFailure(yield* Effect.exit(read)))
        assert.deepStrictEqual(yield* read, user(2))
        assert.deepStrictEqual(yield* read, user(2))
        assert.strictEqual(state.runs, 2)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("negative caching replays a matching failure for its own ttl", () =>
      Effect.gen(function* () {
        const { state, loader } = counting((run) =>
          run <= 2 ? Effect.fail(new NotFound({ id: 9 })) : Effect.succeed(user(9))
        )
        const read = loader.pipe(Strategy.cacheAside(Lookups, { id: 9 }))
        assert.deepStrictEqual(yield* Effect.flip(read), new NotFound({ id: 9 }))
        assert.deepStrictEqual(yield* Effect.flip(read), new NotFound({ id: 9 }), "replayed from the cache")
        assert.strictEqual(state.runs, 1)
        yield* TestClock.adjust("5 seconds")
        assert.deepStrictEqual(yield* Effect.flip(read), new NotFound({ id: 9 }))
        assert.strictEqual(state.runs, 2, "negative ttl elapsed: loaded again")
        yield* TestClock.adjust("5 seconds")
        // On a shared store a load that starts within the clock anchor's
        // margin (about 1 ms of real time) of the key's last write is fenced,
        // its value not stored (conservative, and counted): real time passes
        // first, as this test means the load to start after that write.
        yield* settle
        assert.deepStrictEqual(yield* read, user(9))
        assert.isTrue(Option.isSome(yield* Cachet.get(Lookups, { id: 9 })))
      }).pipe(Effect.provide(Memory))
    )

    it.effect("failures that do not match the negative Schema are not cached", () =>
      Effect.gen(function* () {
        const { state, loader } = counting(() => Effect.fail(new DbDown()))
        const read = loader.pipe(Strategy.cacheAside(Lookups, { id: 1 }))
        yield* Effect.exit(read)
        yield* Effect.exit(read)
        assert.strictEqual(state.runs, 2)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("single-flight: 1,000 concurrent misses run the loader once", () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const { state, loader } = counting(() => Effect.as(Deferred.await(gate), user(3)))
        const fibers = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: 1_000 }), () => loader.pipe(Strategy.cacheAside(Users, { id: 3 })), {
            concurrency: "unbounded"
          })
        )
        yield* settle
        yield* Deferred.succeed(gate, undefined)
        const results = yield* Fiber.join(fibers)
        assert.strictEqual(state.runs, 1)
        assert.strictEqual(results.length, 1_000)
        assert.isTrue(results.every((u) => u.id === 3))
        const stats = (yield* Cachet.stats).keyspaces["user"]!
        assert.strictEqual(stats.loads, 1)
        assert.strictEqual(stats.misses + stats.hits, 1_000)
        if (inProcess) assert.strictEqual(stats.misses, 1_000)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("a caller's interruption does not cancel a load others wait on", () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        let interrupted = false
        const { state, loader } = counting(() =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Deferred.await(gate)),
            Effect.as(user(4)),
            Effect.onInterrupt(() => Effect.sync(() => (interrupted = true)))
          )
        )
        const read = loader.pipe(Strategy.cacheAside(Users, { id: 4 }))
        const first = yield* Effect.forkChild(read)
        yield* Deferred.await(started)
        const second = yield* Effect.forkChild(read)
        yield* settle
        yield* Fiber.interrupt(first)
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(yield* Fiber.join(second), user(4))
        assert.isFalse(interrupted)
        assert.strictEqual(state.runs, 1)
        assert.isTrue(Option.isSome(yield* Cachet.get(Users, { id: 4 })), "the load completed and was stored")
      }).pipe(Effect.provide(Memory))
    )

    it.effect("when every waiter is interrupted, the load is interrupted", () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        let interrupted = false
        const loader = Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.as(user(5)),
          Effect.onInterrupt(() => Effect.sync(() => (interrupted = true)))
        )
        const fiber = yield* Effect.forkChild(loader.pipe(Strategy.cacheAside(Users, { id: 5 })))
        yield* Deferred.await(started)
        yield* Fiber.interrupt(fiber)
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow
        assert.isTrue(interrupted)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("an invalidation during a load keeps the loaded value out of the cache", () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const { state, loader } = counting((run) =>
          Deferred.succeed(started, undefined).pipe(Effect.andThen(Deferred.await(gate)), Effect.as(user(6, `v${run}`)))
        )
        const fiber = yield* Effect.forkChild(loader.pipe(Strategy.cacheAside(Users, { id: 6 })))
        yield* Deferred.await(started)
        yield* Cachet.invalidate(Users, { id: 6 })
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual((yield* Fiber.join(fiber)).name, "v1", "the caller still gets its value")
        assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 6 })), "but it was not stored")
        assert.strictEqual(state.runs, 1)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("degrade mode: a failing store is a counted miss and the loader answers", () =>
      Effect.gen(function* () {
        const { state, loader } = counting(() => Effect.succeed(user(7)))
        for (let i = 0; i < 5; i++) {
          // E is DbDown-free and store-error-free at the type level: no catch needed.
          assert.deepStrictEqual(yield* loader.pipe(Strategy.cacheAside(Users, { id: 7 })), user(7))
        }
        assert.strictEqual(state.runs, 5, "nothing could be cached")
        const stats = yield* Cachet.stats
        assert.isAtLeast(stats.storeErrors, 5)
        assert.strictEqual(stats.keyspaces["user"]!.misses, 5)
        assert.isAbove((yield* Cachet.Cachet).store.name.length, 0)
      }).pipe(Effect.provide(Chaos({ failRate: 1 })))
    )

    it.effect("strict mode: a failing store fails with CacheStoreError", () =>
      Effect.gen(function* () {
        const { state, loader } = counting(() => Effect.succeed(user(8)))
        const error = yield* Effect.flip(loader.pipe(Strategy.cacheAside(Users, { id: 8 }, { onStoreError: "fail" })))
        assert.strictEqual(error._tag, "CacheStoreError")
        assert.strictEqual((error as { reason: string }).reason, "Unavailable")
        assert.strictEqual(state.runs, 0, "the read failed before any load")
      }).pipe(Effect.provide(Chaos({ failRate: 1 })))
    )

    it.effect("strict mode: a failed write after a successful load fails the call", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Effect.succeed(user(8)).pipe(Strategy.cacheAside(Users, { id: 8 }, { onStoreError: "fail" }))
        )
        assert.strictEqual(error._tag, "CacheStoreError")
      }).pipe(Effect.provide(Chaos({ failRate: 1, ops: ["set"] })))
    )

    it.effect("an outage that ends: the cache is used again", () =>
      Effect.gen(function* () {
        const chaos = yield* ChaosStore.ChaosControl
        const { state, loader } = counting(() => Effect.succeed(user(9)))
        const read = loader.pipe(Strategy.cacheAside(Users, { id: 9 }))
        yield* chaos.set({ failRate: 1 })
        yield* read
        yield* read
        yield* chaos.set({ failRate: 0 })
        yield* read
        yield* read
        yield* read
        assert.strictEqual(state.runs, 3, "two during the outage, one to refill")
        assert.strictEqual(yield* chaos.injected, 4, "two reads and two writes failed")
      }).pipe(Effect.provide(Chaos({})))
    )

    it.effect("a read through a slow store waits on Effect's Clock", () =>
      Effect.gen(function* () {
        const fiber = yield* Effect.forkChild(Effect.succeed("v").pipe(Strategy.cacheAside(Plain, { id: 1 })))
        yield* TestClock.adjust("49 millis")
        assert.isUndefined(fiber.pollUnsafe(), "the store's 50 ms of Effect time have not passed")
        // Every store call waits 50 ms of Effect time; over a remote store the
        // next call starts only after real I/O, so keep moving the clock.
        let steps = 0
        while (fiber.pollUnsafe() === undefined && steps++ < 100) {
          yield* TestClock.adjust("50 millis")
          yield* settle
        }
        assert.strictEqual(yield* Fiber.join(fiber), "v")
      }).pipe(Effect.provide(Chaos({ latency: "50 millis" })))
    )
  })

  describe(`invalidation on ${label}`, () => {
    it.effect("invalidateTag makes every entry with the tag gone, in every keyspace", () =>
      Effect.gen(function* () {
        const Orgs = Keyspace.make({
          name: "org",
          key: "{id}",
          value: Schema.String,
          ttl: "1 minute",
          tags: (p) => [`org:${p.id}`]
        })
        yield* Cachet.set(Users, { id: 1 }, user(1, "a", 7))
        yield* Cachet.set(Users, { id: 2 }, user(2, "b", 8))
        yield* Cachet.set(Orgs, { id: 7 }, "org seven")
        yield* TestClock.adjust(1)
        yield* Cachet.invalidateTag("org:7")
        assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 1 })))
        assert.isTrue(Option.isNone(yield* Cachet.get(Orgs, { id: 7 })))
        assert.isTrue(Option.isSome(yield* Cachet.get(Users, { id: 2 })), "other tags are untouched")

        // Entries created after the invalidation are valid again.
        yield* TestClock.adjust(1)
        yield* Cachet.set(Users, { id: 1 }, user(1, "a2", 7))
        assert.strictEqual(Option.getOrThrow(yield* Cachet.get(Users, { id: 1 })).name, "a2")
      }).pipe(Effect.provide(Memory))
    )

    it.effect("an invalidation wins a tie: an entry created in the same millisecond is gone", () =>
      Effect.gen(function* () {
        yield* Cachet.set(Users, { id: 1 }, user(1))
        yield* Cachet.invalidateTag("users")
        assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 1 })))
      }).pipe(Effect.provide(Memory))
    )

    it.effect("a load that overlaps a tag invalidation is not served as fresh", () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const loader = Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Deferred.await(gate)),
          Effect.as(user(3, "old", 7))
        )
        const fiber = yield* Effect.forkChild(loader.pipe(Strategy.cacheAside(Users, { id: 3 })))
        yield* Deferred.await(started)
        yield* TestClock.adjust(5)
        yield* Cachet.invalidateTag("org:7")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(fiber)
        assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 3 })), "read before the invalidation: gone")
      }).pipe(Effect.provide(Memory))
    )

    it.effect("entries with tags live at most tagRetention", () =>
      Effect.gen(function* () {
        const Long = Keyspace.make({
          name: "long",
          key: "{id}",
          value: Schema.String,
          ttl: "7 days",
          tags: () => ["t"]
        })
        const Untagged = Keyspace.make({ name: "untagged", key: "{id}", value: Schema.String, ttl: "7 days" })
        yield* Cachet.set(Long, { id: 1 }, "x")
        yield* Cachet.set(Untagged, { id: 1 }, "y")
        yield* TestClock.adjust("1 hour")
        assert.isTrue(Option.isNone(yield* Cachet.get(Long, { id: 1 })))
        assert.isTrue(Option.isSome(yield* Cachet.get(Untagged, { id: 1 })))
      }).pipe(Effect.provide(Cachet.layer({ tagRetention: "1 hour" }).pipe(Layer.provide(store))))
    )

    it.effect("invalidateKeyspace deletes exactly its own keys", () =>
      Effect.gen(function* () {
        const UserX = Keyspace.make({ name: "userx", key: "user:{id}", value: Schema.String, ttl: "1 minute" })
        for (let id = 0; id < 10; id++) {
          yield* Cachet.set(Users, { id }, user(id))
          yield* Cachet.set(UserX, { id }, `x${id}`)
        }
        assert.strictEqual(yield* Cachet.invalidateKeyspace(Users), 10)
        for (let id = 0; id < 10; id++) {
          assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id })))
          assert.isTrue(Option.isSome(yield* Cachet.get(UserX, { id })))
        }
        assert.strictEqual((yield* Cachet.stats).keyspaces["user"]!.deletes, 10)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("invalidate deletes one entry", () =>
      Effect.gen(function* () {
        yield* Cachet.set(Users, { id: 1 }, user(1))
        yield* Cachet.set(Users, { id: 10 }, user(10))
        yield* Cachet.invalidate(Users, { id: 1 })
        assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 1 })))
        assert.isTrue(Option.isSome(yield* Cachet.get(Users, { id: 10 })))
      }).pipe(Effect.provide(Memory))
    )

    it.effect("invalidation in degrade mode swallows store failures; strict surfaces them", () =>
      Effect.gen(function* () {
        yield* Cachet.invalidate(Users, { id: 1 })
        yield* Cachet.invalidateTag("users")
        assert.strictEqual(yield* Cachet.invalidateKeyspace(Users), 0)
        const e1 = yield* Effect.flip(Cachet.invalidate(Users, { id: 1 }, { onStoreError: "fail" }))
        const e2 = yield* Effect.flip(Cachet.invalidateTag("users", { onStoreError: "fail" }))
        const e3 = yield* Effect.flip(Cachet.invalidateKeyspace(Users, { onStoreError: "fail" }))
        assert.deepStrictEqual([e1._tag, e2._tag, e3._tag], ["CacheStoreError", "CacheStoreError", "CacheStoreError"])
        assert.strictEqual((yield* Cachet.stats).storeErrors, 6)
      }).pipe(Effect.provide(Chaos({ failRate: 1 })))
    )
  })

  describe(`direct access on ${label}`, () => {
    it.effect("set refuses a value that fails its Schema, and stores nothing", () =>
      Effect.gen(function* () {
        // A plain object that is not even the encoded form (name is a number).
        // (A plain object of the right shape is built into a User: issue #10 case 7.)
        const notAUser = { id: 1, name: 5, orgId: 7 } as unknown as User
        const error = yield* Effect.flip(Cachet.set(Users, { id: 1 }, notAUser))
        assert.strictEqual(error._tag, "CacheEncodeError")
        assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 1 })))
        const error2 = yield* Effect.flip(Cachet.set(Plain, { id: 1 }, 42 as unknown as string))
        assert.strictEqual(error2._tag, "CacheEncodeError")
        assert.strictEqual((yield* Cachet.stats).encodeErrors, 2)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("a loader value that fails its Schema is returned but not stored", () =>
      Effect.gen(function* () {
        // Not a User, nor its encoded form (orgId is missing).
        const { state, loader } = counting(() => Effect.succeed({ id: 1, name: "x" } as unknown as User))
        yield* loader.pipe(Strategy.cacheAside(Users, { id: 1 }))
        yield* loader.pipe(Strategy.cacheAside(Users, { id: 1 }))
        assert.strictEqual(state.runs, 2)
        assert.strictEqual((yield* Cachet.stats).encodeErrors, 2)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("bad parameters bypass the cache with a counted key error; set fails with CacheKeyError", () =>
      Effect.gen(function* () {
        const { state, loader } = counting(() => Effect.succeed(user(1)))
        const bad = { id: { nested: true } } as unknown as { id: number }
        yield* loader.pipe(Strategy.cacheAside(Users, bad))
        yield* loader.pipe(Strategy.cacheAside(Users, bad))
        assert.strictEqual(state.runs, 2)
        assert.isTrue(Option.isNone(yield* Cachet.get(Users, bad)))
        const error = yield* Effect.flip(Cachet.set(Users, bad, user(1)))
        assert.strictEqual(error._tag, "CacheKeyError")
        assert.strictEqual((yield* Cachet.stats).keyErrors, 4)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("getMany returns fresh values in order, honouring tags", () =>
      Effect.gen(function* () {
        yield* Cachet.set(Users, { id: 1 }, user(1, "a", 1))
        yield* Cachet.set(Users, { id: 3 }, user(3, "c", 3))
        yield* TestClock.adjust(1)
        yield* Cachet.invalidateTag("org:3")
        const many = yield* Cachet.getMany(Users, [{ id: 1 }, { id: 2 }, { id: 3 }])
        assert.deepStrictEqual(many.map(Option.map((u) => u.name)), [Option.some("a"), Option.none(), Option.none()])
      }).pipe(Effect.provide(Memory))
    )

    it.effect("getMany through an Effect-only store honours tags too", () =>
      Effect.gen(function* () {
        yield* Cachet.set(Users, { id: 1 }, user(1, "a", 1))
        yield* Cachet.set(Users, { id: 3 }, user(3, "c", 3))
        yield* TestClock.adjust(1)
        yield* Cachet.invalidateTag("org:3")
        const many = yield* Cachet.getMany(Users, [{ id: 1 }, { id: 2 }, { id: 3 }])
        assert.deepStrictEqual(many.map(Option.map((u) => u.name)), [Option.some("a"), Option.none(), Option.none()])
      }).pipe(Effect.provide(Chaos({})))
    )

    it.effect("warm loads what is missing, skips what is fresh, counts failures", () =>
      Effect.gen(function* () {
        yield* Cachet.set(Users, { id: 1 }, user(1))
        const result = yield* Cachet.warm(Users, [{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }], (p) =>
          p.id === 4 ? Effect.fail(new DbDown()) : Effect.succeed(user(p.id))
        )
        assert.deepStrictEqual(result, { loaded: 2, skipped: 1, failed: 1 })
        assert.isTrue(Option.isSome(yield* Cachet.get(Users, { id: 3 })))
        yield* pastWrites("user:1")
        const forced = yield* Cachet.warm(Users, [{ id: 1 }], (p) => Effect.succeed(user(p.id, "again")), {
          force: true
        })
        assert.deepStrictEqual(forced, { loaded: 1, skipped: 0, failed: 0 })
        assert.strictEqual(Option.getOrThrow(yield* Cachet.get(Users, { id: 1 })).name, "again")
      }).pipe(Effect.provide(Memory))
    )

    it.effect("cached memoises a function", () =>
      Effect.gen(function* () {
        let runs = 0
        const findUser = Cachet.cached(Users, (p: { readonly id: number }) =>
          Effect.sync(() => user(p.id, `run ${++runs}`))
        )
        assert.strictEqual((yield* findUser({ id: 1 })).name, "run 1")
        assert.strictEqual((yield* findUser({ id: 1 })).name, "run 1")
        assert.strictEqual((yield* findUser({ id: 2 })).name, "run 2")
        const explicit = Cachet.cached(
          Plain,
          (p: { readonly id: number }) => Effect.succeed(`p${p.id}`),
          Strategy.cacheAside
        )
        assert.strictEqual(yield* explicit({ id: 5 }), "p5")
      }).pipe(Effect.provide(Memory))
    )

    it.effect("two different keyspaces with one name: the second is reported and bypasses the cache", () =>
      Effect.gen(function* () {
        const A = Keyspace.make({ name: "dup", key: "{id}", value: Schema.String, ttl: 1_000 })
        const B = Keyspace.make({ name: "dup", key: "{id}", value: Schema.Number, ttl: 1_000 })
        yield* Cachet.set(A, { id: 1 }, "a")
        const error = yield* Effect.flip(Cachet.set(B, { id: 1 }, 1))
        assert.strictEqual(error._tag, "CacheKeyError")
        assert.match(error.message, /two different keyspaces are named "dup"/)
        // Reads of B go to the loader, every time; A is untouched.
        let loads = 0
        const readB = Effect.sync(() => ++loads).pipe(Strategy.cacheAside(B, { id: 1 }))
        assert.strictEqual(yield* readB, 1)
        assert.strictEqual(yield* readB, 2)
        assert.deepStrictEqual(yield* Cachet.get(A, { id: 1 }), Option.some("a"))
        const stats = (yield* Cachet.stats).keyspaces.dup!
        assert.strictEqual(stats.duplicateKeyspaces, 1)
        assert.strictEqual(stats.keyErrors, 3)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("one definition made twice (one factory, one Schema) is the same keyspace", () =>
      Effect.gen(function* () {
        const value = Schema.String
        const make = () => Keyspace.make({ name: "twice", key: "{id}", value, ttl: 1_000 })
        const A = make()
        const B = make()
        yield* Cachet.set(A, { id: 1 }, "a")
        assert.deepStrictEqual(yield* Cachet.get(B, { id: 1 }), Option.some("a"))
        assert.strictEqual((yield* Cachet.stats).keyspaces.twice!.duplicateKeyspaces, 0)
      }).pipe(Effect.provide(Memory))
    )
  })

  describe(`stats and metrics on ${label}`, () => {
    it.effect("stats count hits, misses, stale hits and loads, in total and per keyspace", () =>
      Effect.gen(function* () {
        const load = (id: number) => Effect.succeed(user(id)).pipe(Strategy.cacheAside(Users, { id }))
        yield* load(1)
        yield* load(1)
        yield* load(1)
        yield* load(2)
        yield* Effect.succeed("x").pipe(Strategy.cacheAside(Plain, { id: 1 }))
        const stats = yield* Cachet.stats
        assert.strictEqual(stats.hits, 2)
        assert.strictEqual(stats.misses, 3)
        assert.strictEqual(stats.loads, 3)
        assert.strictEqual(stats.sets, 3)
        assert.closeTo(stats.hitRate, 2 / 5, 1e-9)
        assert.strictEqual(stats.keyspaces["user"]!.hits, 2)
        assert.strictEqual(stats.keyspaces["plain"]!.misses, 1)
        if (inProcess) assert.strictEqual(stats.store?.entries, 3)
      }).pipe(Effect.provide(Memory))
    )

    it.effect("metrics carry a keyspace attribute and match the stats", () =>
      Effect.gen(function* () {
        yield* Effect.succeed(user(1)).pipe(Strategy.cacheAside(Users, { id: 1 }))
        yield* Effect.succeed(user(1)).pipe(Strategy.cacheAside(Users, { id: 1 }))
        const snapshot = yield* Metric.snapshot
        const find = (id: string, attrs: Record<string, string>) =>
          snapshot.find((m) => m.id === id && Object.entries(attrs).every(([k, v]) => m.attributes?.[k] === v))
        const hits = find("cachet_requests_total", { keyspace: "user", result: "hit" })
        const misses = find("cachet_requests_total", { keyspace: "user", result: "miss" })
        assert.deepStrictEqual((hits?.state as { count: number } | undefined)?.count, 1)
        assert.deepStrictEqual((misses?.state as { count: number } | undefined)?.count, 1)
        const loads = find("cachet_load_duration_seconds", { keyspace: "user" })
        assert.strictEqual((loads?.state as { count: number } | undefined)?.count, 1)
        if (inProcess) assert.isDefined(find("cachet_store_entries", {}))
        assert.isTrue(
          snapshot.every((m) => !("key" in (m.attributes ?? {}))),
          "no per-key labels"
        )
      }).pipe(Effect.provide(Memory))
    )

    it.effect("closing the layer removes its metric series", () =>
      Effect.gen(function* () {
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Effect.succeed("v").pipe(Strategy.cacheAside(Plain, { id: 1 }))
          }).pipe(Effect.provide(Memory))
        )
        const snapshot = yield* Metric.snapshot
        assert.isUndefined(
          snapshot.find((m) => m.id === "cachet_requests_total" && m.attributes?.["keyspace"] === "plain")
        )
      })
    )
  })
}
