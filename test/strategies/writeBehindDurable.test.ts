import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Schedule, Schema } from "effect"
import * as PersistedQueue from "effect/persistence/PersistedQueue"
import { TestClock } from "effect/testing"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"

class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String }) {}
const Users = Keyspace.make({ name: "user", key: "user:{id}", value: User, ttl: "1 minute" })

const makeDb = () => {
  const rows = new Map<number, string>()
  const log: Array<string> = []
  const state = { failing: false }
  const attempt = (apply: () => void) =>
    Effect.suspend(() => {
      if (state.failing) return Effect.fail(new DbDown())
      apply()
      return Effect.void
    })
  const writer = Strategy.durableWriter(Users, {
    set: (user, params) =>
      attempt(() => {
        rows.set(Number(params.id), user.name)
        log.push(`set ${params.id}=${user.name}`)
      }),
    delete: (params) =>
      attempt(() => {
        rows.delete(Number(params.id))
        log.push(`delete ${params.id}`)
      })
  })
  return { rows, log, state, writer }
}

const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

const durable = (db: ReturnType<typeof makeDb>, letters: Array<Strategy.DeadLetter> = []) =>
  Strategy.layerDurableWriteBehind({
    queue: "test",
    writers: [db.writer],
    retry: Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 3 })),
    onDeadLetter: (letter) => Effect.sync(() => letters.push(letter))
  }).pipe(
    Layer.provideMerge(Cachet.layerMemory()),
    Layer.provide(PersistedQueue.layer),
    Layer.provide(PersistedQueue.layerStoreMemory)
  )

describe("writeBehind, durable mode (memory PersistedQueue)", () => {
  it.effect("caches at once; the worker writes the source through the registered writer", () => {
    const db = makeDb()
    return Effect.gen(function* () {
      yield* Strategy.writeBehindDurable(Users, { id: 1 }, new User({ id: 1, name: "Ada" }))
      assert.deepStrictEqual(
        Option.map(yield* Cachet.get(Users, { id: 1 }), (u) => u.name),
        Option.some("Ada")
      )
      yield* settle
      assert.deepStrictEqual(db.log, ["set 1=Ada"])
      yield* Strategy.deleteBehindDurable(Users, { id: 1 })
      assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 1 })))
      yield* settle
      assert.deepStrictEqual(db.log, ["set 1=Ada", "delete 1"])
      assert.strictEqual((yield* Cachet.stats).writeBehindWrites, 2)
    }).pipe(Effect.provide(durable(db)))
  })

  it.effect("two writes of a key in one millisecond, after 999 others: the newer wins (no sequence wrap)", () => {
    const db = makeDb()
    return Effect.gen(function* () {
      db.state.failing = true
      // 999 writes of other keys in this millisecond, then two of key 1000:
      // a counter modulo 1,000 would give the second a smaller sequence.
      for (let id = 1; id < 1_000; id++) {
        yield* Strategy.writeBehindDurable(Users, { id }, new User({ id, name: `u${id}` }))
      }
      yield* Strategy.writeBehindDurable(Users, { id: 1_000 }, new User({ id: 1_000, name: "older" }))
      yield* Strategy.writeBehindDurable(Users, { id: 1_000 }, new User({ id: 1_000, name: "newer" }))
      db.state.failing = false
      for (let i = 0; i < 10 && db.rows.size < 1_000; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      assert.strictEqual(db.rows.get(1_000), "newer")
      assert.strictEqual(db.rows.size, 1_000)
      assert.strictEqual(
        Option.map(yield* Cachet.get(Users, { id: 1_000 }), (u) => u.name).pipe(Option.getOrUndefined),
        "newer"
      )
    }).pipe(Effect.provide(durable(db)))
  })

  it.effect("older operations of a key are skipped (last write wins; a delete is not resurrected)", () => {
    const db = makeDb()
    return Effect.gen(function* () {
      db.state.failing = true
      yield* Strategy.writeBehindDurable(Users, { id: 1 }, new User({ id: 1, name: "v1" }))
      yield* settle // v1 is being retried in place
      yield* Strategy.writeBehindDurable(Users, { id: 1 }, new User({ id: 1, name: "v2" }))
      yield* Strategy.deleteBehindDurable(Users, { id: 1 })
      yield* Strategy.writeBehindDurable(Users, { id: 2 }, new User({ id: 2, name: "x" }))
      db.state.failing = false
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual(db.log, ["delete 1", "set 2=x"], "v1 stopped retrying, v2 was skipped")
      assert.strictEqual((yield* Cachet.stats).writeBehindCoalesced, 2)
    }).pipe(Effect.provide(durable(db)))
  })

  it.effect("a write that keeps failing is a dead letter; its cache entry is invalidated", () => {
    const db = makeDb()
    const letters: Array<Strategy.DeadLetter> = []
    return Effect.gen(function* () {
      db.state.failing = true
      yield* Strategy.writeBehindDurable(Users, { id: 1 }, new User({ id: 1, name: "lost" }))
      yield* settle
      yield* TestClock.adjust("3 seconds")
      yield* settle
      assert.strictEqual(letters.length, 1)
      assert.deepStrictEqual(
        [letters[0]!.key, letters[0]!.attempts, letters[0]!.reason],
        ["user:user:1", 4, "RetriesExhausted"]
      )
      assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 1 })))
    }).pipe(Effect.provide(durable(db, letters)))
  })

  it.effect("read-your-writes while the write is queued", () => {
    const db = makeDb()
    return Effect.gen(function* () {
      db.state.failing = true
      db.rows.set(1, "source")
      const read = Effect.sync(() => new User({ id: 1, name: db.rows.get(1)! })).pipe(
        Strategy.cacheAside(Users, { id: 1 })
      )
      yield* Strategy.writeBehindDurable(Users, { id: 1 }, new User({ id: 1, name: "mine" }))
      yield* Cachet.invalidate(Users, { id: 1 }) // as if the entry were evicted
      assert.strictEqual((yield* read).name, "mine")
      db.state.failing = false
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.strictEqual(db.rows.get(1), "mine")
    }).pipe(Effect.provide(durable(db)))
  })
})
