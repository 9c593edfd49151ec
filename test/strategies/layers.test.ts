import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"

const Users = Keyspace.make({
  name: "user",
  key: "{id}",
  value: Schema.String,
  ttl: "10 seconds",
  staleFor: "1 minute"
})
const Posts = Keyspace.make({ name: "post", key: "{id}", value: Schema.String, ttl: "10 seconds" })

const counting = () => {
  const state = { runs: 0 }
  const load = (id: number) => Effect.sync(() => `v${++state.runs} of ${id}`)
  return { state, load }
}

/** One program, written once: every call site uses `auto` or `cached`. */
const program = (load: (id: number) => Effect.Effect<string>) => {
  const findUser = Cachet.cached(Users, (p: { readonly id: number }) => load(p.id))
  const findPost = (id: number) => load(id).pipe(Strategy.auto(Posts, { id }))
  return Effect.gen(function* () {
    const a = yield* findUser({ id: 1 })
    const b = yield* findUser({ id: 1 })
    yield* TestClock.adjust("11 seconds")
    const c = yield* findUser({ id: 1 }) // stale
    const d = yield* findPost(1)
    const e = yield* findPost(1)
    return [a, b, c, d, e]
  })
}

describe("strategies as layers", () => {
  it.effect("without a layer: cache-aside", () =>
    Effect.gen(function* () {
      const { state, load } = counting()
      const results = yield* program(load)
      assert.deepStrictEqual(results, ["v1 of 1", "v1 of 1", "v2 of 1", "v3 of 1", "v3 of 1"])
      assert.strictEqual(state.runs, 3)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("Strategy.layer sets one keyspace's strategy; layers for other keyspaces merge", () =>
    Effect.gen(function* () {
      const { state, load } = counting()
      const results = yield* program(load)
      assert.deepStrictEqual(results.slice(0, 3), ["v1 of 1", "v1 of 1", "v1 of 1"], "stale served (SWR)")
      assert.notStrictEqual(results[3], results[4], "posts bypass the cache")
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      assert.strictEqual(state.runs, 4, "one user load, one background reload, two post loads")
      assert.strictEqual((yield* Cachet.stats).keyspaces["user"]!.revalidations, 1)
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          Cachet.layerMemory(),
          Strategy.layer(Users, Strategy.staleWhileRevalidate),
          Strategy.layer(Posts, Strategy.bypass)
        )
      )
    )
  )

  it.effect("Strategy.layerDefault(Strategy.bypass) switches a whole program off; per-keyspace layers win", () =>
    Effect.gen(function* () {
      const { state, load } = counting()
      yield* program(load).pipe(Effect.provide(Strategy.layerDefault(Strategy.bypass)))
      assert.strictEqual(state.runs, 5, "every call ran the loader")
      assert.strictEqual((yield* Cachet.stats).sets, 0, "nothing was cached")
      state.runs = 0
      yield* program(load).pipe(
        Effect.provide(Layer.merge(Strategy.layerDefault(Strategy.bypass), Strategy.layer(Posts, Strategy.cacheAside)))
      )
      assert.strictEqual(state.runs, 4, "users bypassed (3), posts cached (1)")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("the innermost layer for a keyspace wins", () =>
    Effect.gen(function* () {
      const { state, load } = counting()
      const read = load(1).pipe(Strategy.auto(Posts, { id: 1 }))
      yield* read.pipe(
        Effect.provide(Strategy.layer(Posts, Strategy.bypass)),
        Effect.provide(Strategy.layer(Posts, Strategy.cacheAside))
      )
      yield* read.pipe(Effect.provide(Strategy.layer(Posts, Strategy.bypass)))
      assert.strictEqual(state.runs, 2)
      assert.strictEqual((yield* Cachet.stats).sets, 0)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a strategy with options is a generic arrow", () =>
    Effect.gen(function* () {
      const { state, load } = counting()
      const early: Strategy.Strategy = (keyspace, params) => Strategy.refreshAhead(keyspace, params, { at: 0.5 })
      const read = load(1).pipe(Strategy.auto(Posts, { id: 1 }), Effect.provide(Strategy.layer(Posts, early)))
      yield* read
      yield* TestClock.adjust("5 seconds")
      yield* read
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      assert.strictEqual(state.runs, 2, "refreshed at half the ttl")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("readOnly reads the cache and never writes it", () =>
    Effect.gen(function* () {
      const { state, load } = counting()
      const read = load(1).pipe(Strategy.readOnly(Posts, { id: 1 }))
      assert.strictEqual(yield* read, "v1 of 1")
      assert.strictEqual(yield* read, "v2 of 1", "a miss is not stored")
      yield* Cachet.set(Posts, { id: 1 }, "cached")
      assert.strictEqual(yield* read, "cached", "a fresh entry is served")
      assert.strictEqual(state.runs, 2)
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.sets, 1)
      assert.strictEqual(stats.hits, 1)
      yield* TestClock.adjust("11 seconds")
      yield* read
      assert.isTrue(Option.isNone(yield* Cachet.get(Posts, { id: 1 })))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})
