/**
 * Model-based test of write-behind: random sequences of sets, deletes,
 * flushes, clock steps, and source and store outages; the source must end up
 * equal to the model (the last acknowledged operation of each key), after a
 * flush or after closing the layer. Reads along the way must see the last
 * acknowledged write of their key.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"

class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}
class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {}) {}

const Rows = Keyspace.make({ name: "row", key: "{id}", value: Schema.Number, ttl: "300 millis" })

type Command =
  | { readonly _tag: "set"; readonly key: number; readonly value: number }
  | { readonly _tag: "delete"; readonly key: number }
  | { readonly _tag: "read"; readonly key: number }
  | { readonly _tag: "flush" }
  | { readonly _tag: "advance"; readonly millis: number }
  | { readonly _tag: "sourceDown"; readonly down: boolean }
  | { readonly _tag: "storeDown"; readonly down: boolean }

const key = fc.integer({ min: 0, max: 7 })
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ _tag: fc.constant("set" as const), key, value: fc.integer({ min: 0, max: 99 }) })
  },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("delete" as const), key }) },
  { weight: 3, arbitrary: fc.record({ _tag: fc.constant("read" as const), key }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "flush" as const }) },
  {
    weight: 3,
    arbitrary: fc.record({ _tag: fc.constant("advance" as const), millis: fc.integer({ min: 1, max: 400 }) })
  },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("sourceDown" as const), down: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("storeDown" as const), down: fc.boolean() }) }
)

const runtimeLayer = Cachet.layer({
  writeBehind: {
    flushInterval: "100 millis",
    batchSize: 3,
    concurrency: 2,
    maxEntries: 5,
    // Never gives up: the final state is reached once the source is back.
    retry: Schedule.spaced("50 millis"),
    shutdownTimeout: "1 hour"
  }
}).pipe(Layer.provideMerge(ChaosStore.layer({})), Layer.provide(CacheStore.layerMemory()))

/** Runs `effect` in a fiber while the clock moves, until it completes. */
const stepping = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    for (let i = 0; i < 1_000 && fiber.pollUnsafe() === undefined; i++) {
      yield* Effect.yieldNow
      if (fiber.pollUnsafe() === undefined) yield* TestClock.adjust(50)
    }
    return yield* Fiber.join(fiber)
  })

const run = (commands: ReadonlyArray<Command>, end: "flush" | "close") =>
  Effect.gen(function* () {
    const source = new Map<number, number>()
    const model = new Map<number, number>()
    let sourceDown = false
    // Writes take 20 ms, so operations are in flight while others are queued.
    const write = (apply: () => void) =>
      Effect.andThen(
        Effect.sleep(20),
        Effect.suspend(() => {
          if (sourceDown) return Effect.fail(new DbDown())
          apply()
          return Effect.void
        })
      )
    const find = (id: number) =>
      Effect.suspend(() => {
        const row = source.get(id)
        return row === undefined ? Effect.fail(new NotFound()) : Effect.succeed(row)
      })

    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(runtimeLayer, scope)
    let refused = 0
    let checkedReads = 0

    yield* Effect.gen(function* () {
      const chaos = yield* ChaosStore.ChaosControl
      for (const c of commands) {
        switch (c._tag) {
          case "set": {
            const exit = yield* Effect.exit(
              Strategy.writeBehind(Rows, { id: c.key }, c.value, (v) => write(() => source.set(c.key, v)))
            )
            if (Exit.isSuccess(exit)) model.set(c.key, c.value)
            else refused++
            break
          }
          case "delete": {
            const exit = yield* Effect.exit(
              Strategy.deleteBehind(
                Rows,
                { id: c.key },
                write(() => source.delete(c.key))
              )
            )
            if (Exit.isSuccess(exit)) model.delete(c.key)
            else refused++
            break
          }
          case "read": {
            // Read-your-writes: a key whose last acknowledged operation is a
            // set reads that value, whatever the source and store are doing.
            const expected = model.get(c.key)
            if (expected === undefined) break
            const seen = yield* find(c.key).pipe(Strategy.cacheAside(Rows, { id: c.key }))
            assert.strictEqual(seen, expected, `read of ${c.key}`)
            checkedReads++
            break
          }
          case "flush":
            yield* Effect.forkChild(Strategy.flushWriteBehind)
            break
          case "advance":
            yield* TestClock.adjust(c.millis)
            break
          case "sourceDown":
            sourceDown = c.down
            break
          case "storeDown":
            yield* chaos.set({ failRate: c.down ? 1 : 0 })
            break
        }
      }
      sourceDown = false
      yield* chaos.set({ failRate: 0 })
      if (end === "flush") yield* stepping(Strategy.flushWriteBehind)
    }).pipe(Effect.provideContext(context))

    if (end === "close") yield* stepping(Scope.close(scope, Exit.void))
    const sorted = (m: Map<number, number>) => [...m.entries()].sort(([a], [b]) => a - b)
    assert.deepStrictEqual(sorted(source), sorted(model))
    if (end === "flush") yield* stepping(Scope.close(scope, Exit.void))
    return { refused, checkedReads }
  }).pipe(Effect.provide(TestClock.layer()))

describe("writeBehind model", () => {
  it("after a flush, the source equals the model of acknowledged operations", async () => {
    let refused = 0
    let reads = 0
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 10, maxLength: 60, size: "max" }), async (commands) => {
        const result = await Effect.runPromise(run(commands, "flush"))
        refused += result.refused
        reads += result.checkedReads
      }),
      { numRuns: 150 }
    )
    assert.isAbove(refused, 0, "the queue bound was exercised")
    assert.isAbove(reads, 0)
  })

  it("closing the layer writes everything acknowledged", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 10, maxLength: 60, size: "max" }), async (commands) => {
        await Effect.runPromise(run(commands, "close"))
      }),
      { numRuns: 100 }
    )
  })
})
