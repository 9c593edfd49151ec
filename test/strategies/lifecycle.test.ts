import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import { makeWriteLog, recordingStore } from "./helpers.ts"

const Items = Keyspace.make({
  name: "item",
  key: "{id}",
  value: Schema.Number,
  ttl: "10 seconds",
  staleFor: "1 minute"
})

const settle = Effect.gen(function* () {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow
})

describe("background work belongs to the layer", () => {
  it.effect(
    "closing interrupts reloads, refreshes and loads in flight, flushes write-behind, and writes nothing to the store",
    () =>
      Effect.gen(function* () {
        const log = makeWriteLog()
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Cachet.layer().pipe(Layer.provide(recordingStore(log))), scope)
        const counts = { interrupted: 0, finished: 0, sourceWrites: 0 }
        const slow = (value: number) =>
          Effect.sleep("5 seconds").pipe(
            Effect.as(value),
            Effect.tap(() => Effect.sync(() => counts.finished++)),
            Effect.onInterrupt(() => Effect.sync(() => counts.interrupted++))
          )
        const foreground = yield* Effect.gen(function* () {
          for (let id = 0; id < 30; id++) yield* Cachet.set(Items, { id }, id)
          yield* TestClock.adjust("9 seconds") // fresh, past 80% of the ttl
          for (let id = 0; id < 10; id++) yield* slow(100).pipe(Strategy.refreshAhead(Items, { id }))
          yield* TestClock.adjust("2 seconds") // stale
          for (let id = 10; id < 20; id++) yield* slow(200).pipe(Strategy.staleWhileRevalidate(Items, { id }))
          // Foreground misses, waiting on their loads.
          const waiting = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: 5 }, (_, i) => 100 + i),
              (id) => slow(300).pipe(Strategy.cacheAside(Items, { id })),
              { concurrency: "unbounded" }
            )
          )
          for (let id = 20; id < 25; id++) {
            yield* Strategy.writeBehind(
              Items,
              { id },
              -id,
              Effect.sync(() => counts.sourceWrites++)
            )
          }
          yield* settle
          return waiting
        }).pipe(Effect.provideContext(context))

        const writesBefore = log.writes
        log.closing = true
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(counts.interrupted, 10 + 10 + 5, "every background and foreground load was interrupted")
        assert.strictEqual(counts.sourceWrites, 5, "write-behind was flushed")
        const exit = yield* Fiber.await(foreground)
        assert.isTrue(Exit.isFailure(exit), "the waiting readers were interrupted")

        yield* TestClock.adjust("1 minute")
        assert.strictEqual(counts.finished, 0, "nothing ran on")
        assert.strictEqual(log.writesAfterClose, 0, "no store write after close")
        assert.strictEqual(log.writes, writesBefore)
      })
  )

  it.effect("a reader waiting on a reload that never started is released when the layer closes", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Cachet.layerMemory(), scope)
      let runs = 0
      const loader = Effect.sync(() => ++runs)
      const waiting = yield* Effect.gen(function* () {
        yield* Cachet.set(Items, { id: 1 }, 0)
        yield* TestClock.adjust("15 seconds")
        // Schedules a reload (not started yet) ...
        assert.strictEqual(yield* loader.pipe(Strategy.staleWhileRevalidate(Items, { id: 1 })), 0)
        // ... and a cache-aside reader of the same key joins it.
        return yield* Effect.forkChild(loader.pipe(Strategy.cacheAside(Items, { id: 1 })), { startImmediately: true })
      }).pipe(Effect.provideContext(context))
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(waiting)
      assert.isDefined(exit, "the reader did not hang")
      assert.strictEqual(runs, 0, "the reload never ran")
    })
  )
})
