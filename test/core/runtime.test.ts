import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Metric, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"

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

describe("the runtime owns its fibers", () => {
  it.effect("closing the layer leaves no fiber the runtime started alive", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Cachet.layerMemory(), scope)
      const rt = Context.get(context, Cachet.Cachet)
      const waiting = yield* Effect.gen(function* () {
        for (let id = 0; id < 3; id++) yield* Cachet.set(Items, { id }, id)
        yield* TestClock.adjust("15 seconds") // stale: reads revalidate in the background
        for (let id = 0; id < 3; id++) yield* Effect.never.pipe(Strategy.staleWhileRevalidate(Items, { id }))
        yield* Strategy.writeBehind(Items, { id: 9 }, 9, Effect.void) // starts the flusher
        const waiting = yield* Effect.forkChild(Effect.never.pipe(Strategy.cacheAside(Items, { id: 7 })))
        yield* settle
        return waiting
      }).pipe(Effect.provideContext(context))
      assert.strictEqual(rt.liveFibers(), 3 + 1 + 1, "three reloads, one load, the flusher")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(rt.liveFibers(), 0)
      assert.isTrue(Exit.isFailure(yield* Fiber.await(waiting)), "the waiting reader was released")
    })
  )
})

describe("metrics of two runtimes", () => {
  const series = (snapshot: ReadonlyArray<Metric.Metric.Snapshot>, id: string, attrs: Record<string, string>) =>
    snapshot.filter((m) => m.id === id && Object.entries(attrs).every(([k, v]) => m.attributes?.[k] === v))
  const countOf = (m: Metric.Metric.Snapshot | undefined) => (m?.state as { count: number } | undefined)?.count

  it.effect("two runtimes keep separate series, and closing one leaves the other's intact", () =>
    Effect.gen(function* () {
      const scopeA = yield* Scope.make()
      const scopeB = yield* Scope.make()
      const a = yield* Layer.buildWithScope(Cachet.layerMemory(), scopeA)
      const b = yield* Layer.buildWithScope(Cachet.layerMemory(), scopeB)
      const read = Effect.succeed(1).pipe(Strategy.cacheAside(Items, { id: 1 }))
      yield* Effect.provideContext(Effect.repeat(read, { times: 1 }), a) // a miss, then a hit
      yield* Effect.provideContext(Effect.repeat(read, { times: 3 }), b) // a miss, then three hits

      const before = yield* Metric.snapshot
      const hits = series(before, "cachet_requests_total", { keyspace: "item", result: "hit" })
      assert.deepStrictEqual(hits.map(countOf).sort(), [1, 3], "one series per runtime")
      assert.strictEqual(series(before, "cachet_load_duration_seconds", { keyspace: "item" }).length, 2)

      yield* Scope.close(scopeA, Exit.void)
      const after = yield* Metric.snapshot
      const left = series(after, "cachet_requests_total", { keyspace: "item", result: "hit" })
      assert.deepStrictEqual(left.map(countOf), [3], "the open runtime's series is still there")
      const loads = series(after, "cachet_load_duration_seconds", { keyspace: "item" })
      assert.deepStrictEqual(loads.map(countOf), [1], "and so is its load-time histogram")
      yield* Scope.close(scopeB, Exit.void)
      assert.strictEqual(series(yield* Metric.snapshot, "cachet_requests_total", { keyspace: "item" }).length, 0)
    })
  )
})
