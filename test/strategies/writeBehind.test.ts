import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Context,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Metric,
  Option,
  References,
  Schedule,
  Schema,
  Scope
} from "effect"
import { TestClock } from "effect/testing"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"
import { captureLogs, chaosLayer, makeWriteLog, recordingStore } from "./helpers.ts"

class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}
class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {}) {}

const Names = Keyspace.make({ name: "name", key: "{id}", value: Schema.String, ttl: "1 minute" })

/** A source table with a switch to make it fail, and a record of its writes. */
const makeDb = (latency = 0) => {
  const rows = new Map<number, string>()
  const log: Array<string> = []
  const state = { failing: false, active: 0, maxActive: 0, attempts: 0 }
  const run = (apply: () => void, what: string) =>
    Effect.suspend(() => {
      state.attempts++
      state.active++
      state.maxActive = Math.max(state.maxActive, state.active)
      const body = Effect.suspend(() => {
        if (state.failing) return Effect.fail(new DbDown())
        apply()
        log.push(what)
        return Effect.void
      })
      return (latency > 0 ? Effect.andThen(Effect.sleep(latency), body) : body).pipe(
        Effect.ensuring(Effect.sync(() => state.active--))
      )
    })
  const save = (id: number) => (value: string) =>
    run(() => {
      rows.set(id, value)
    }, `set ${id}=${value}`)
  const remove = (id: number) =>
    run(() => {
      rows.delete(id)
    }, `delete ${id}`)
  const find = (id: number) =>
    Effect.suspend(() => {
      const row = rows.get(id)
      return row === undefined ? Effect.fail(new NotFound()) : Effect.succeed(row)
    })
  return { rows, log, state, save, remove, find }
}

const opened = <A>(layer: Layer.Layer<A>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(layer, scope)
    return { scope, context }
  })

/** Closes a scope while the clock moves in `step`s (shutdown may wait on retries). */
const closeStepping = (scope: Scope.Closeable, step = 100, maxSteps = 10_000) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(Scope.close(scope, Exit.void))
    for (let i = 0; i < maxSteps && fiber.pollUnsafe() === undefined; i++) {
      yield* Effect.yieldNow
      if (fiber.pollUnsafe() === undefined) yield* TestClock.adjust(step)
    }
    yield* Fiber.join(fiber)
  })

/** Runs `effect` while the clock moves in `step`s, until it completes. */
const stepping = <A, E, R>(effect: Effect.Effect<A, E, R>, step = 100, maxSteps = 10_000) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    for (let i = 0; i < maxSteps && fiber.pollUnsafe() === undefined; i++) {
      yield* Effect.yieldNow
      if (fiber.pollUnsafe() === undefined) yield* TestClock.adjust(step)
    }
    return yield* Fiber.join(fiber)
  })

const settle = Effect.gen(function* () {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow
})

describe("writeBehind", () => {
  it.effect("caches at once; writes the source after flushInterval, coalesced (last write wins)", () =>
    Effect.gen(function* () {
      const db = makeDb()
      yield* Strategy.writeBehind(Names, { id: 1 }, "a", db.save(1))
      yield* Strategy.writeBehind(Names, { id: 1 }, "b", db.save(1))
      yield* Strategy.writeBehind(Names, { id: 1 }, "c", db.save(1))
      assert.deepStrictEqual(yield* Cachet.get(Names, { id: 1 }), Option.some("c"), "cached at once")
      assert.deepStrictEqual(db.log, [], "not written yet")
      assert.strictEqual((yield* Cachet.stats).writeBehindQueued, 1)
      yield* TestClock.adjust(999)
      assert.deepStrictEqual(db.log, [])
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(db.log, ["set 1=c"], "one write, of the last value")
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.writeBehindQueued, 0)
      assert.strictEqual(stats.writeBehindWrites, 1)
      assert.strictEqual(stats.writeBehindCoalesced, 2)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("the writer may be an effect; it runs with the caller's context", () =>
    Effect.gen(function* () {
      class Audit extends Context.Service<Audit, { readonly lines: Array<string> }>()("Audit") {}
      const lines: Array<string> = []
      const write = Effect.flatMap(Effect.service(Audit), (audit) => Effect.sync(() => audit.lines.push("saved")))
      yield* Strategy.writeBehind(Names, { id: 1 }, "a", write).pipe(Effect.provideService(Audit, { lines }))
      yield* Strategy.flushWriteBehind
      assert.deepStrictEqual(lines, ["saved"])
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("batches: at most batchSize per batch, concurrency writers at once; a full batch starts early", () =>
    Effect.gen(function* () {
      const db = makeDb(10)
      const ids = Array.from({ length: 250 }, (_, i) => i)
      yield* Effect.forEach(ids, (id) => Strategy.writeBehind(Names, { id }, `v${id}`, db.save(id)))
      yield* settle
      // 250 >= batchSize: no need to wait for the interval.
      yield* TestClock.adjust(10)
      assert.strictEqual(db.log.length, 4, "the first batch's first writes, 4 at once")
      yield* stepping(Strategy.flushWriteBehind, 10)
      assert.strictEqual(db.rows.size, 250)
      assert.strictEqual(db.state.maxActive, 4)
    }).pipe(Effect.provide(Cachet.layerMemory({ writeBehind: { batchSize: 100, concurrency: 4 } })))
  )

  it.effect("retries on the schedule, without holding up other keys", () =>
    Effect.gen(function* () {
      const db = makeDb()
      const flaky = makeDb()
      flaky.state.failing = true
      yield* Strategy.writeBehind(Names, { id: 1 }, "x", flaky.save(1))
      yield* Strategy.flushWriteBehind.pipe(Effect.forkChild)
      yield* settle
      assert.strictEqual(flaky.state.attempts, 1)
      yield* Strategy.writeBehind(Names, { id: 2 }, "y", db.save(2))
      yield* TestClock.adjust(1_000)
      assert.deepStrictEqual(db.log, ["set 2=y"], "key 2 was written while key 1 waits for its retry")
      yield* TestClock.adjust(1_000) // retries at +1 s, +2 s (spaced 1 s) ...
      flaky.state.failing = false
      yield* TestClock.adjust(1_000)
      assert.deepStrictEqual(flaky.log, ["set 1=x"])
      const stats = yield* Cachet.stats
      assert.isAtLeast(stats.writeBehindRetries, 2)
      assert.strictEqual(stats.writeBehindDeadLetters, 0)
    }).pipe(Effect.provide(Cachet.layerMemory({ writeBehind: { retry: Schedule.spaced("1 second") } })))
  )

  it.effect("dead letters: counted, logged, given to onDeadLetter; the cache entry is invalidated", () => {
    const logs = captureLogs()
    const letters: Array<Strategy.DeadLetter> = []
    const layer = Cachet.layerMemory({
      writeBehind: {
        retry: Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 2 })),
        onDeadLetter: (letter) => Effect.sync(() => letters.push(letter))
      }
    })
    return Effect.gen(function* () {
      const db = makeDb()
      db.state.failing = true
      yield* Strategy.writeBehind(Names, { id: 1 }, "lost", db.save(1))
      yield* stepping(Strategy.flushWriteBehind)
      assert.strictEqual(db.state.attempts, 3, "the first attempt and 2 retries")
      assert.strictEqual(letters.length, 1)
      const letter = letters[0]!
      assert.deepStrictEqual(
        { key: letter.key, op: letter.op, value: letter.value, attempts: letter.attempts, reason: letter.reason },
        { key: "name:1", op: "set", value: "lost", attempts: 3, reason: "RetriesExhausted" }
      )
      assert.isTrue(Option.isNone(yield* Cachet.getEntry(Names, { id: 1 })), "the cache does not keep it")
      assert.strictEqual((yield* Cachet.stats).writeBehindDeadLetters, 1)
      const snapshot = yield* Metric.snapshot
      const metric = snapshot.find(
        (m) => m.id === "cachet_write_behind_total" && m.attributes?.["outcome"] === "dead_letter"
      )
      assert.strictEqual((metric?.state as { count: number } | undefined)?.count, 1)
      assert.isTrue(logs.messages.some((m) => m.includes("write-behind gave up on set name:1")))
    }).pipe(Effect.provide(layer), Effect.provide(logs.layer))
  })

  it.effect("a delete is never resurrected by an older write (queued, retrying, or in flight)", () =>
    Effect.gen(function* () {
      // Queued: the delete replaces the write.
      const db = makeDb()
      yield* Strategy.writeBehind(Names, { id: 1 }, "old", db.save(1))
      yield* Strategy.deleteBehind(Names, { id: 1 }, db.remove(1))
      assert.isTrue(Option.isNone(yield* Cachet.getEntry(Names, { id: 1 })), "deleted from the cache at once")
      yield* stepping(Strategy.flushWriteBehind)
      assert.deepStrictEqual(db.log, ["delete 1"])

      // Retrying: the failed write is dropped once the delete is queued.
      db.rows.set(2, "row")
      db.state.failing = true
      yield* Strategy.writeBehind(Names, { id: 2 }, "old", db.save(2))
      yield* TestClock.adjust(1_000)
      assert.strictEqual(db.state.attempts, 2)
      yield* Strategy.deleteBehind(Names, { id: 2 }, db.remove(2))
      db.state.failing = false
      yield* stepping(Strategy.flushWriteBehind)
      assert.isFalse(db.rows.has(2))
      assert.deepStrictEqual(db.log, ["delete 1", "delete 2"], "the old write never ran again")

      // In flight: the delete waits for it, then runs.
      const slow = makeDb(500)
      yield* Strategy.writeBehind(Names, { id: 3 }, "old", slow.save(3))
      yield* TestClock.adjust(1_100) // the write started at 1 s and is in flight
      assert.strictEqual(slow.state.active, 1)
      yield* Strategy.deleteBehind(Names, { id: 3 }, slow.remove(3))
      yield* stepping(Strategy.flushWriteBehind)
      assert.deepStrictEqual(slow.log, ["set 3=old", "delete 3"])
      assert.isFalse(slow.rows.has(3))
    }).pipe(Effect.provide(Cachet.layerMemory({ writeBehind: { retry: Schedule.spaced("100 millis") } })))
  )

  it.effect("read-your-writes: a miss while the write is queued answers with the queued value", () =>
    Effect.gen(function* () {
      const db = makeDb()
      db.rows.set(1, "source")
      db.state.failing = true
      const read = db.find(1).pipe(Strategy.cacheAside(Names, { id: 1 }))
      yield* Strategy.writeBehind(Names, { id: 1 }, "mine", db.save(1))
      yield* TestClock.adjust("2 minutes") // the entry expired; the write still fails
      assert.strictEqual(yield* read, "mine")
      assert.strictEqual(db.rows.get(1), "source")
      // A queued delete: the loader answers, and nothing is stored.
      yield* Strategy.deleteBehind(Names, { id: 1 }, db.remove(1))
      assert.strictEqual(yield* read, "source")
      assert.isTrue(Option.isNone(yield* Cachet.getEntry(Names, { id: 1 })))
      db.state.failing = false
      yield* stepping(Strategy.flushWriteBehind)
      assert.isFalse(db.rows.has(1))
    }).pipe(Effect.provide(Cachet.layerMemory({ writeBehind: { retry: Schedule.spaced("1 second") } })))
  )

  it.effect("the queue is bounded by entries and bytes: a new key past the bound fails, nothing changes", () =>
    Effect.gen(function* () {
      const db = makeDb()
      for (let id = 0; id < 3; id++) yield* Strategy.writeBehind(Names, { id }, "v", db.save(id))
      const error = yield* Effect.flip(Strategy.writeBehind(Names, { id: 3 }, "v", db.save(3)))
      assert.strictEqual(error._tag, "WriteBehindQueueFull")
      assert.strictEqual((error as Strategy.WriteBehindQueueFull).limit, "maxEntries")
      assert.isTrue(Option.isNone(yield* Cachet.getEntry(Names, { id: 3 })), "not cached")
      // An update of a queued key needs no room.
      yield* Strategy.writeBehind(Names, { id: 0 }, "w", db.save(0))
      const big = yield* Effect.flip(Strategy.writeBehind(Names, { id: 1 }, "x".repeat(10_000), db.save(1)))
      assert.strictEqual((big as Strategy.WriteBehindQueueFull).limit, "maxBytes")
      yield* Strategy.flushWriteBehind
      assert.deepStrictEqual(
        [...db.rows.entries()],
        [
          [0, "w"],
          [1, "v"],
          [2, "v"]
        ]
      )
      yield* Strategy.writeBehind(Names, { id: 3 }, "v", db.save(3))
    }).pipe(Effect.provide(Cachet.layerMemory({ writeBehind: { maxEntries: 3, maxBytes: 1_000 } })))
  )

  it.effect("a value that fails its Schema is refused; a failing cache is degraded or strict", () =>
    Effect.gen(function* () {
      const db = makeDb()
      const refused = yield* Effect.flip(Strategy.writeBehind(Names, { id: 1 }, 1 as unknown as string, db.save(1)))
      assert.strictEqual(refused._tag, "CacheEncodeError")
      const chaos = yield* ChaosStore.ChaosControl
      yield* chaos.set({ failRate: 1 })
      yield* Strategy.writeBehind(Names, { id: 1 }, "a", db.save(1))
      const strict = yield* Effect.flip(
        Strategy.writeBehind(Names, { id: 1 }, "b", db.save(1), { onStoreError: "fail" })
      )
      assert.strictEqual(strict._tag, "CacheStoreError")
      yield* chaos.set({ failRate: 0 })
      yield* Strategy.flushWriteBehind
      assert.strictEqual(db.rows.get(1), "b", "queued even though the cache write failed")
    }).pipe(Effect.provide(chaosLayer({})))
  )

  it("invalid options throw at Cachet.layer, naming the option", () => {
    assert.throws(() => Cachet.layer({ writeBehind: { maxEntries: 0 } }), /"writeBehind.maxEntries"/)
    assert.throws(
      () => Cachet.layer({ writeBehind: { flushInterval: "soon" as never } }),
      /"writeBehind.flushInterval"/
    )
    assert.throws(() => Cachet.layer({ writeBehind: { retry: 3 as never } }), /"writeBehind.retry"/)
  })
})

describe("writeBehind at shutdown", () => {
  it.effect("closing the layer writes what is queued; later calls fail with CacheShuttingDown", () =>
    Effect.gen(function* () {
      const db = makeDb(50)
      const log = makeWriteLog()
      const { scope, context } = yield* opened(
        Cachet.layer({ writeBehind: { flushInterval: "1 hour" } }).pipe(Layer.provideMerge(recordingStore(log)))
      )
      const ids = Array.from({ length: 20 }, (_, i) => i)
      yield* Effect.forEach(ids, (id) => Strategy.writeBehind(Names, { id }, `v${id}`, db.save(id))).pipe(
        Effect.provideContext(context)
      )
      assert.strictEqual(db.rows.size, 0)
      log.closing = true
      yield* closeStepping(scope, 50)
      assert.strictEqual(db.rows.size, 20, "everything acknowledged was written")
      assert.strictEqual(log.writesAfterClose, 0, "and nothing was written to the store")
      const after = yield* Effect.flip(
        Strategy.writeBehind(Names, { id: 1 }, "late", db.save(1)).pipe(Effect.provideContext(context))
      )
      assert.strictEqual(after._tag, "CacheShuttingDown")
    })
  )

  it.effect("5,000 dead letters at shutdown log one line per keyspace, with the count and the first keys", () =>
    Effect.gen(function* () {
      // Every line a console logger would print: the message and each
      // annotation, split at newlines (a pretty Cause is many lines).
      const lines: Array<string> = []
      const errors: Array<string> = []
      const logger = Logger.make((options) => {
        const message = Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message)
        lines.push(...message.split("\n"))
        if (options.logLevel === "Error") errors.push(message)
        const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
        for (const [k, v] of Object.entries(annotations)) lines.push(...`${k}=${String(v)}`.split("\n"))
        if (options.cause.reasons.length > 0) lines.push(...Cause.pretty(options.cause).split("\n"))
      })
      const Other = Keyspace.make({ name: "other", key: "{id}", value: Schema.String, ttl: "1 minute" })
      const db = makeDb()
      db.state.failing = true
      const letters: Array<Strategy.DeadLetter> = []
      const { scope, context } = yield* opened(
        Cachet.layer({
          writeBehind: {
            maxEntries: 10_000,
            retry: Schedule.spaced("1 second"),
            shutdownTimeout: "2 seconds",
            onDeadLetter: (letter) => Effect.sync(() => letters.push(letter))
          }
        }).pipe(Layer.provide(CacheStore.layerMemory({ capacity: 10_000 })))
      )
      for (let id = 0; id < 4_000; id++) {
        yield* Strategy.writeBehind(Names, { id }, `v${id}`, db.save(id)).pipe(Effect.provideContext(context))
      }
      for (let id = 0; id < 1_000; id++) {
        yield* Strategy.writeBehind(Other, { id }, `v${id}`, db.save(id)).pipe(Effect.provideContext(context))
      }
      const before = lines.length
      yield* closeStepping(scope, 500).pipe(Effect.provide(Logger.layer([logger])))
      const logged = lines.length - before
      console.log(`dead letters at shutdown: ${letters.length}; log lines: ${logged}`)
      assert.strictEqual(letters.length, 5_000, "every write left is still handed to onDeadLetter")
      assert.isBelow(logged, 20)
      const summaries = errors.filter((m) => m.includes("write-behind gave up on"))
      assert.strictEqual(summaries.length, 2, "one line per keyspace")
      assert.include(
        summaries[0]!,
        `4000 write(s) of keyspace "name" (Shutdown): name:0, name:1, name:2, name:3, name:4 and 3995 more; each was passed to onDeadLetter`
      )
      assert.include(summaries[1]!, `1000 write(s) of keyspace "other" (Shutdown)`)
    })
  )

  it.effect("without onDeadLetter the aggregated line says the writes are lost", () =>
    Effect.gen(function* () {
      const logs = captureLogs()
      const db = makeDb()
      db.state.failing = true
      const { scope, context } = yield* opened(
        Cachet.layer({ writeBehind: { retry: Schedule.spaced("1 second"), shutdownTimeout: "1 second" } }).pipe(
          Layer.provide(CacheStore.layerMemory())
        )
      )
      for (let id = 0; id < 3; id++) {
        yield* Strategy.writeBehind(Names, { id }, "x", db.save(id)).pipe(Effect.provideContext(context))
      }
      yield* closeStepping(scope, 500).pipe(Effect.provide(logs.layer))
      const summaries = logs.messages.filter((m) => m.includes("write-behind gave up on"))
      assert.deepStrictEqual(summaries, [
        `cachet: write-behind gave up on 3 write(s) of keyspace "name" (Shutdown): name:0, name:1, name:2; no onDeadLetter is set: they are lost`
      ])
    })
  )

  it.effect("what is not written by shutdownTimeout is dead-lettered with reason Shutdown", () =>
    Effect.gen(function* () {
      const db = makeDb()
      db.state.failing = true
      const letters: Array<Strategy.DeadLetter> = []
      const { scope, context } = yield* opened(
        Cachet.layer({
          writeBehind: {
            retry: Schedule.spaced("1 second"),
            shutdownTimeout: "5 seconds",
            onDeadLetter: (letter) => Effect.sync(() => letters.push(letter))
          }
        }).pipe(Layer.provide(CacheStore.layerMemory()))
      )
      yield* Strategy.writeBehind(Names, { id: 1 }, "a", db.save(1)).pipe(Effect.provideContext(context))
      yield* Strategy.deleteBehind(Names, { id: 2 }, db.remove(2)).pipe(Effect.provideContext(context))
      yield* closeStepping(scope, 500)
      assert.deepStrictEqual(
        letters.map((l) => [l.key, l.op, l.reason]),
        [
          ["name:1", "set", "Shutdown"],
          ["name:2", "delete", "Shutdown"]
        ]
      )
      assert.isAtLeast(db.state.attempts, 8, "retried until the deadline")
    })
  )
})
