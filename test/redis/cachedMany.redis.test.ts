/**
 * Batched loads and sliding expiry over RedisStore, on a harness server:
 * round trips counted with INFO commandstats, fences checked across two
 * runtimes (the Redis script is then the only thing that can refuse a write).
 *
 * Under `it.effect` (TestClock, set to the wall clock first so that Redis
 * TTLs and Effect time agree).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { CacheStore } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { requireRedis } from "../harness/redis.ts"
import { instance, on, statsOf, subscribed } from "../tiered/helpers.ts"
import { eventually, runId, sharedServer } from "./helpers.ts"

const server = sharedServer()

const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
const Sessions = Keyspace.make({ name: "session", key: "{id}", value: Schema.String, ttl: "10 seconds", sliding: true })

const runtime = (prefix: string) =>
  Layer.unwrap(
    Effect.sync(() => Cachet.layer().pipe(Layer.provideMerge(RedisStore.layer({ url: server.get().url, prefix }))))
  )

const atWallClock = TestClock.setTime(Date.now())

/** Calls of each command so far, from INFO commandstats. */
const commandCalls = Effect.map(
  Effect.suspend(() => server.get().command("INFO", "commandstats")),
  (info) => {
    const calls: Record<string, number> = {}
    for (const match of info.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) calls[match[1]!] = Number(match[2])
    return calls
  }
)

const delta = (before: Record<string, number>, after: Record<string, number>) => {
  const out: Record<string, number> = {}
  for (const [name, n] of Object.entries(after)) if (n !== (before[name] ?? 0)) out[name] = n - (before[name] ?? 0)
  return out
}

describe.skipIf(!requireRedis())("cachedMany and sliding over RedisStore", () => {
  it.effect("cachedMany: one MGET for every key, one loadMany, one script call for the batched fenced write", () => {
    const prefix = `many-${runId()}`
    return Effect.gen(function* () {
      yield* atWallClock
      const calls: Array<ReadonlyArray<number>> = []
      const getUsers = Cachet.cachedMany(Users, (ps: ReadonlyArray<{ readonly id: number }>) =>
        Effect.sync(() => {
          calls.push(ps.map((p) => p.id))
          return ps.map((p) => `user ${p.id}`)
        })
      )
      // Warm the connection, the scripts and the server clock's anchor.
      yield* getUsers([{ id: 1000 }])
      yield* Cachet.set(Users, { id: 5 }, "cached 5")
      const ids = Array.from({ length: 50 }, (_, i) => ({ id: i }))
      const before = yield* commandCalls
      const out = yield* getUsers(ids)
      const after = yield* commandCalls
      assert.strictEqual(out.length, 50)
      assert.strictEqual(out[5], "cached 5")
      assert.strictEqual(out[7], "user 7")
      assert.deepStrictEqual(calls[1]?.length, 49, "one loadMany call for the 49 misses")
      const used = delta(before, after)
      assert.strictEqual(used.mget, 1, "one store read for all 50 keys")
      // (EVAL the first time a batch of this size runs on the connection, EVALSHA after.)
      assert.strictEqual((used.evalsha ?? 0) + (used.eval ?? 0), 1, "one script call writes the 49 values")
      // Inside that script: a GETRANGE and a SET per key, and one GET of the
      // keyspace's clear record; no command per key from the client.
      assert.strictEqual(used.set, 49)
      assert.strictEqual(used.getrange, 49)
      assert.strictEqual(used.get, 1, "the clear record, once")
      const raw = JSON.parse(yield* server.get().command("GET", `${prefix}:user:7`))
      assert.strictEqual(raw.d, "user 7")
      assert.isNumber(raw.o)
      // All hits now: one MGET, nothing else.
      const before2 = yield* commandCalls
      yield* getUsers(ids)
      const used2 = delta(before2, yield* commandCalls)
      assert.deepStrictEqual(
        Object.keys(used2).filter((c) => c !== "info"),
        ["mget"]
      )
    }).pipe(Effect.provide(runtime(prefix)))
  })

  it.effect("cachedMany: a key invalidated by another instance while the batch runs is not stored", () => {
    const prefix = `manyfence-${runId()}`
    return Effect.gen(function* () {
      yield* atWallClock
      const other = yield* Layer.build(runtime(prefix))
      const started = yield* Deferred.make<void>()
      const getUsers = Cachet.cachedMany(Users, (ps: ReadonlyArray<{ readonly id: number }>) =>
        Effect.andThen(
          Deferred.succeed(started, undefined),
          Effect.as(
            Effect.sleep("1 second"),
            ps.map((p) => `loaded ${p.id}`)
          )
        )
      )
      yield* Cachet.set(Users, { id: 99 }, "warm")
      const batch = yield* Effect.forkChild(getUsers([{ id: 1 }, { id: 2 }]))
      yield* Deferred.await(started) // the batch has read the store and taken its fences
      // Another process: this runtime's flights know nothing of it; only the
      // Redis script's fence (the tombstone's order) can refuse the write.
      yield* Cachet.invalidate(Users, { id: 1 }).pipe(Effect.provide(other))
      yield* Cachet.set(Users, { id: 2 }, "explicit 2").pipe(Effect.provide(other))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(batch), ["loaded 1", "loaded 2"])
      assert.deepStrictEqual(yield* Cachet.get(Users, { id: 1 }), Option.none(), "the invalidation wins")
      assert.deepStrictEqual(yield* Cachet.get(Users, { id: 2 }), Option.some("explicit 2"), "the explicit write wins")
      assert.strictEqual((yield* Cachet.stats).fencedWrites, 2)
    }).pipe(Effect.scoped, Effect.provide(runtime(prefix)))
  })

  it.effect("sliding on Redis: a read extends the entry in Redis; a touch never resurrects a tombstone", () => {
    const prefix = `slide-${runId()}`
    return Effect.gen(function* () {
      yield* atWallClock
      const other = yield* Layer.build(runtime(prefix))
      const read = Strategy.cacheAside(Effect.succeed("s1"), Sessions, { id: 1 })
      yield* read
      const first = JSON.parse(yield* server.get().command("GET", `${prefix}:session:1`))
      yield* TestClock.adjust("5 seconds")
      yield* read
      const second = JSON.parse(yield* server.get().command("GET", `${prefix}:session:1`))
      assert.strictEqual(second.f - first.f, 5_000, "freshUntil moved by 5 s in Redis")
      assert.strictEqual(second.o, first.o, "the entry keeps its order")
      assert.strictEqual(second.s - first.s, 5_000, "and its staleUntil (the Redis TTL follows it)")

      // A touch of an entry that another instance invalidated or rewrote
      // since it was read: refused by the script (compare-and-set on the order).
      const store = yield* CacheStore
      const codec = { keyspace: "session", encode: Sessions.encode, decode: Sessions.decode, onCorrupt: () => {} }
      const seen = (yield* store.get("session:1", codec))!
      assert.isNumber(seen.order)
      const touched = { ...seen, freshUntil: seen.freshUntil + 1_000, staleUntil: seen.staleUntil + 1_000 }
      yield* Cachet.invalidate(Sessions, { id: 1 }).pipe(Effect.provide(other))
      assert.isUndefined(yield* store.setOrdered!("session:1", touched, codec, undefined, seen.order))
      assert.isUndefined(yield* store.get("session:1", codec), "still a tombstone")
      yield* Cachet.set(Sessions, { id: 1 }, "s2").pipe(Effect.provide(other))
      assert.isUndefined(yield* store.setOrdered!("session:1", touched, codec, undefined, seen.order))
      assert.strictEqual((yield* store.get("session:1", codec))?.value, "s2", "the newer write stays")
      const current = (yield* store.get("session:1", codec))!
      assert.strictEqual(
        yield* store.setOrdered!(
          "session:1",
          { ...current, freshUntil: current.freshUntil + 1 },
          codec,
          undefined,
          current.order
        ),
        current.order,
        "the entry as read: the touch lands"
      )
    }).pipe(Effect.scoped, Effect.provide(runtime(prefix)))
  })

  // Real time (it.live): the bus delivers in real time.
  it.live("cachedMany on TieredStore: other instances read the batch's values, not their own older copy", () =>
    Effect.gen(function* () {
      const prefix = `manytiered-${runId()}`
      const a = yield* instance({ l2: { url: server.get().url, prefix } })
      const b = yield* instance({ l2: { url: server.get().url, prefix } })
      yield* subscribed(a)
      yield* subscribed(b)
      const received = (yield* statsOf(a)).bus!.received
      yield* on(b)(Cachet.set(Users, { id: 1 }, "old on B")) // in B's L1 too
      yield* eventually(
        Effect.map(statsOf(a), (s) => s.bus!.received > received),
        2_000,
        "A heard B's set"
      )
      yield* on(a)(Cachet.invalidate(Users, { id: 1 }))
      const getUsers = Cachet.cachedMany(Users, (ps: ReadonlyArray<{ readonly id: number }>) =>
        Effect.succeed(ps.map((p) => `loaded ${p.id}`))
      )
      // A batch that starts within a millisecond of the invalidation is
      // fenced (its start is a lower bound of the server's clock): then the
      // next call loads again. Polled, bounded.
      yield* eventually(
        Effect.gen(function* () {
          const out = yield* on(a)(getUsers([{ id: 1 }, { id: 2 }, { id: 3 }]))
          assert.deepStrictEqual(out, ["loaded 1", "loaded 2", "loaded 3"])
          return Option.getOrUndefined(yield* on(b)(Cachet.get(Users, { id: 1 }))) === "loaded 1"
        }),
        2_000,
        "B reads the batch's value of key 1"
      )
      assert.deepStrictEqual(yield* on(b)(Cachet.get(Users, { id: 2 })), Option.some("loaded 2"))
      const raw = JSON.parse(yield* server.get().command("GET", `${prefix}:user:3`))
      assert.strictEqual(raw.d, "loaded 3")
      assert.isNumber(raw.o)
    }).pipe(Effect.scoped)
  )
})
