/**
 * The memory hit path of issue 12: `Cachet.cached` builds its loader on a
 * miss only; the keyspace's runtime state is found through a slot on the
 * keyspace (one runtime at a time, falling back to the map); stampede
 * waiters share one join effect per flight and still stop the load when the
 * last of them leaves.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, ManagedRuntime, Option, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"

const Items = Keyspace.make({
  name: "item",
  key: "{id}",
  value: Schema.String,
  ttl: "10 seconds",
  staleFor: "1 minute"
})

/** A loader function that counts how often it is called (built) and how often its effect runs. */
const counted = () => {
  const counts = { built: 0, runs: 0 }
  const make = (p: { readonly id: number }) => {
    counts.built++
    return Effect.sync(() => `item ${p.id} run ${++counts.runs}`)
  }
  return { counts, make }
}

describe("Cachet.cached builds the loader on a miss only", () => {
  const strategies: ReadonlyArray<readonly [string, Strategy.Strategy | undefined]> = [
    ["none (from context)", undefined],
    ["cacheAside", Strategy.cacheAside],
    ["staleWhileRevalidate", Strategy.staleWhileRevalidate],
    ["refreshAhead", Strategy.refreshAhead],
    ["readOnly", Strategy.readOnly]
  ]
  for (const [name, strategy] of strategies) {
    it.effect(`${name}: 1 miss then 20 fresh hits build the loader once`, () =>
      Effect.gen(function* () {
        const { counts, make } = counted()
        const find = Cachet.cached(Items, make, strategy)
        // readOnly never stores: seed the entry so that reads are hits.
        if (name === "readOnly") yield* Cachet.set(Items, { id: 1 }, "item 1 seeded")
        const first = yield* find({ id: 1 })
        for (let i = 0; i < 20; i++) assert.strictEqual(yield* find({ id: 1 }), first)
        assert.strictEqual(counts.built, name === "readOnly" ? 0 : 1)
        assert.strictEqual(counts.runs, counts.built)
        const stats = (yield* Cachet.stats).keyspaces.item!
        assert.strictEqual(stats.hits, name === "readOnly" ? 21 : 20)
      }).pipe(Effect.provide(Cachet.layerMemory()))
    )
  }

  it.effect("a stale entry builds it (stale-while-revalidate revalidates with it)", () =>
    Effect.gen(function* () {
      const { counts, make } = counted()
      const find = Cachet.cached(Items, make, Strategy.staleWhileRevalidate)
      assert.strictEqual(yield* find({ id: 2 }), "item 2 run 1")
      yield* TestClock.adjust("11 seconds")
      // Stale: served at once, and one reload starts with a freshly built loader.
      assert.strictEqual(yield* find({ id: 2 }), "item 2 run 1")
      assert.strictEqual(counts.built, 2)
      for (let i = 0; i < 10 && Option.getOrUndefined(yield* Cachet.get(Items, { id: 2 })) !== "item 2 run 2"; i++) {
        yield* Effect.yieldNow
      }
      assert.strictEqual(yield* find({ id: 2 }), "item 2 run 2")
      assert.strictEqual(counts.built, 2)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("the strategy from context (Strategy.layer) is honoured, and still builds on a miss only", () =>
    Effect.gen(function* () {
      const { counts, make } = counted()
      const find = Cachet.cached(Items, make)
      assert.strictEqual(yield* find({ id: 3 }), "item 3 run 1")
      yield* TestClock.adjust("11 seconds")
      // Stale-while-revalidate from context: the stale value answers at once.
      assert.strictEqual(yield* find({ id: 3 }), "item 3 run 1")
      // Bypass from context: the loader answers every time and nothing is read.
      const bypassed = yield* find({ id: 3 }).pipe(Effect.provide(Strategy.layer(Items, Strategy.bypass)))
      assert.match(bypassed, /^item 3 run \d$/)
      assert.isTrue(counts.built >= 3)
    }).pipe(Effect.provide(Layer.merge(Cachet.layerMemory(), Strategy.layer(Items, Strategy.staleWhileRevalidate))))
  )

  it.effect("a strategy of one's own (an arrow) is applied to loader(params) on every call, and still caches", () =>
    Effect.gen(function* () {
      const { counts, make } = counted()
      const early: Strategy.Strategy = (keyspace, params) => Strategy.refreshAhead(keyspace, params, { at: 0.5 })
      const find = Cachet.cached(Items, make, early)
      for (let i = 0; i < 5; i++) assert.strictEqual(yield* find({ id: 4 }), "item 4 run 1")
      assert.strictEqual(counts.built, 5)
      assert.strictEqual(counts.runs, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("Strategy.bypass: the loader answers every call; nothing is cached", () =>
    Effect.gen(function* () {
      const { counts, make } = counted()
      const find = Cachet.cached(Items, make, Strategy.bypass)
      assert.strictEqual(yield* find({ id: 5 }), "item 5 run 1")
      assert.strictEqual(yield* find({ id: 5 }), "item 5 run 2")
      assert.isTrue(Option.isNone(yield* Cachet.get(Items, { id: 5 })))
      assert.strictEqual(counts.built, 2)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("with an events subscriber, a cached hit is still a Hit event", () =>
    Effect.gen(function* () {
      const { make } = counted()
      const find = Cachet.cached(Items, make, Strategy.cacheAside)
      yield* find({ id: 6 })
      const reader = yield* Effect.forkChild(Cachet.events.pipe(Stream.take(1), Stream.runCollect))
      for (let i = 0; i < 100 && (yield* Cachet.health).events.subscribers === 0; i++) yield* Effect.yieldNow
      assert.strictEqual(yield* find({ id: 6 }), "item 6 run 1")
      const events = yield* Fiber.join(reader)
      assert.deepStrictEqual(
        events.map((e) => [e._tag, "key" in e ? e.key : undefined]),
        [["Hit", "item:6"]]
      )
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("after the layer closed, the loader answers (built then)", () =>
    Effect.gen(function* () {
      const { counts, make } = counted()
      const find = Cachet.cached(Items, make, Strategy.cacheAside)
      const runtime = ManagedRuntime.make(Cachet.layerMemory())
      const context = yield* Effect.promise(() => runtime.context())
      yield* find({ id: 7 }).pipe(Effect.provideContext(context))
      yield* Effect.promise(() => runtime.dispose())
      assert.strictEqual(yield* find({ id: 7 }).pipe(Effect.provideContext(context)), "item 7 run 2")
      assert.strictEqual(counts.built, 2)
    })
  )
})

describe("the keyspace's runtime slot", () => {
  const slot = Symbol.for("cachet/Keyspace/runtimeState")

  it.effect("two runtimes reading one keyspace in turn keep their own entries and counters", () =>
    Effect.gen(function* () {
      const a = ManagedRuntime.make(Cachet.layerMemory())
      const b = ManagedRuntime.make(Cachet.layerMemory())
      const inA = <X>(e: Effect.Effect<X, never, Cachet.Cachet>) => Effect.promise(() => a.runPromise(e))
      const inB = <X>(e: Effect.Effect<X, never, Cachet.Cachet>) => Effect.promise(() => b.runPromise(e))
      const read = (value: string) => Effect.succeed(value).pipe(Strategy.cacheAside(Items, { id: 1 }))
      for (let i = 0; i < 5; i++) {
        assert.strictEqual(yield* inA(read("a")), "a")
        assert.strictEqual(yield* inB(read("b")), "b")
      }
      const statsA = (yield* inA(Cachet.stats)).keyspaces.item!
      const statsB = (yield* inB(Cachet.stats)).keyspaces.item!
      assert.deepStrictEqual([statsA.misses, statsA.hits], [1, 4])
      assert.deepStrictEqual([statsB.misses, statsB.hits], [1, 4])
      const held = () => (Items as unknown as Record<symbol, unknown>)[slot]
      // A read in A takes the slot; closing A empties it (a keyspace does
      // not keep a closed runtime alive); B takes it over, and so on.
      assert.strictEqual(yield* inA(read("a2")), "a")
      assert.isDefined(held())
      yield* Effect.promise(() => a.dispose())
      assert.isUndefined(held())
      assert.strictEqual(yield* inB(read("b2")), "b")
      assert.isDefined(held())
      yield* Effect.promise(() => b.dispose())
      assert.isUndefined(held())
    })
  )

  it.effect("the slot is not enumerable: a spread copy of a keyspace does not carry it", () =>
    Effect.gen(function* () {
      yield* Effect.succeed("x").pipe(Strategy.cacheAside(Items, { id: 9 }))
      assert.isFalse(Object.getOwnPropertySymbols({ ...Items }).includes(slot))
      assert.isFalse(Object.keys(Items).some((k) => k.includes("runtime")))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a frozen keyspace works (it takes the map path)", () =>
    Effect.gen(function* () {
      const Frozen = Object.freeze(
        Keyspace.make({ name: "frozen", key: "{id}", value: Schema.String, ttl: "10 seconds" })
      )
      let runs = 0
      const read = Effect.sync(() => `v${++runs}`).pipe(Strategy.cacheAside(Frozen, { id: 1 }))
      assert.strictEqual(yield* read, "v1")
      assert.strictEqual(yield* read, "v1")
      assert.strictEqual((yield* Cachet.stats).keyspaces.frozen!.hits, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a keyspace frozen after its first read keeps working", () =>
    Effect.gen(function* () {
      const Later = Keyspace.make({ name: "later", key: "{id}", value: Schema.String, ttl: "10 seconds" })
      const read = (v: string) => Effect.succeed(v).pipe(Strategy.cacheAside(Later, { id: 1 }))
      assert.strictEqual(yield* read("a"), "a")
      Object.freeze(Later)
      assert.strictEqual(yield* read("b"), "a")
      // Another runtime cannot take the frozen slot over; it reads through its map.
      const other = ManagedRuntime.make(Cachet.layerMemory())
      assert.strictEqual(yield* Effect.promise(() => other.runPromise(read("c"))), "c")
      assert.strictEqual(yield* Effect.promise(() => other.runPromise(read("d"))), "c")
      yield* Effect.promise(() => other.dispose())
      assert.strictEqual(yield* read("e"), "a")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

describe("stampede waiters", () => {
  it.effect("1,000 callers, 999 interrupted: the load goes on, runs once, and the last caller gets its value", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      let runs = 0
      let interrupted = false
      const loader = Effect.suspend(() => {
        runs++
        return Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Deferred.await(gate)),
          Effect.as("loaded"),
          Effect.onInterrupt(() => Effect.sync(() => (interrupted = true)))
        )
      })
      const read = loader.pipe(Strategy.cacheAside(Items, { id: 1 }))
      const first = yield* Effect.forkChild(read)
      yield* Deferred.await(started)
      const others = yield* Effect.forEach(Array.from({ length: 999 }), () => Effect.forkChild(read))
      yield* Effect.yieldNow
      // Everyone but the last joiner leaves, the starter first.
      yield* Fiber.interrupt(first)
      for (const fiber of others.slice(0, -1)) yield* Fiber.interrupt(fiber)
      assert.isFalse(interrupted, "one caller still waits: the load is not stopped")
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(others.at(-1)!), "loaded")
      assert.strictEqual(runs, 1)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(others[0]!)))
      assert.deepStrictEqual(yield* Cachet.get(Items, { id: 1 }), Option.some("loaded"))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("1,000 callers, all interrupted: the load is stopped and nothing is stored", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      let interrupted = false
      const loader = Deferred.succeed(started, undefined).pipe(
        Effect.andThen(Effect.never),
        Effect.as("never"),
        Effect.onInterrupt(() => Effect.sync(() => (interrupted = true)))
      )
      const read = loader.pipe(Strategy.cacheAside(Items, { id: 2 }))
      const first = yield* Effect.forkChild(read)
      yield* Deferred.await(started)
      const others = yield* Effect.forEach(Array.from({ length: 999 }), () => Effect.forkChild(read))
      yield* Effect.yieldNow
      for (const fiber of others) yield* Fiber.interrupt(fiber)
      assert.isFalse(interrupted, "the starter still waits")
      yield* Fiber.interrupt(first)
      for (let i = 0; i < 5 && !interrupted; i++) yield* Effect.yieldNow
      assert.isTrue(interrupted)
      assert.isTrue(Option.isNone(yield* Cachet.get(Items, { id: 2 })))
      // A later read starts a new load.
      assert.strictEqual(yield* Effect.succeed("again").pipe(Strategy.cacheAside(Items, { id: 2 })), "again")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a caller joining a load that completes meanwhile gets its result", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      let runs = 0
      const read = Effect.suspend(() => {
        runs++
        return Effect.as(Deferred.await(gate), "v")
      }).pipe(Strategy.cacheAside(Items, { id: 3 }))
      const fibers = yield* Effect.forEach(Array.from({ length: 50 }), () => Effect.forkChild(read))
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      const late = yield* Effect.forkChild(read)
      const all = yield* Fiber.joinAll([...fibers, late])
      assert.isTrue(all.every((v) => v === "v"))
      assert.strictEqual(runs, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

describe("the key memo", () => {
  // A one-placeholder keyspace memoises its rendered keys (and their index
  // hash) in two generations (`internal/keyMemo.ts`, tested on its own in
  // keyMemo.test.ts); a hot set larger than one generation rotates them,
  // and keys come back from the previous one.
  const Wide = Keyspace.make({ name: "wide", key: "{id}", value: Schema.Number, ttl: "1 hour" })
  const HOT = 50_000

  it("renders the same key as the template, across generations", () => {
    for (let pass = 0; pass < 3; pass++) {
      for (let id = 0; id < HOT; id++) {
        const key = Wide.keyUnsafe({ id: pass === 1 ? HOT - 1 - id : id })
        if (key !== `wide:${pass === 1 ? HOT - 1 - id : id}`) assert.fail(`pass ${pass}, id ${id}: ${key}`)
      }
    }
    // Strings and numbers name the same entry; an escaped string is not memoised as another's key.
    assert.strictEqual(Wide.keyUnsafe({ id: "7" } as never), "wide:7")
    assert.strictEqual(Wide.keyUnsafe({ id: 7 }), "wide:7")
    assert.notStrictEqual(Wide.keyUnsafe({ id: "a:b" } as never), "wide:a:b")
  })

  it.effect("a hot set larger than a generation reads as hits (the hash handed over with each key is its own)", () =>
    Effect.gen(function* () {
      for (let id = 0; id < HOT; id++) yield* Cachet.set(Wide, { id }, id)
      let wrong = 0
      for (let pass = 0; pass < 2; pass++) {
        for (let id = 0; id < HOT; id++) {
          const value = yield* Effect.succeed(-1).pipe(Strategy.cacheAside(Wide, { id }))
          if (value !== id) wrong++
        }
      }
      assert.strictEqual(wrong, 0)
      const stats = (yield* Cachet.stats).keyspaces.wide!
      assert.strictEqual(stats.hits, 2 * HOT)
      assert.strictEqual(stats.misses, 0)
    }).pipe(Effect.provide(Cachet.layerMemory({ capacity: 2 * HOT })))
  )
})
