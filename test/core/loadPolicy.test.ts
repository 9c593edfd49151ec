import { assert, describe, it } from "@effect/vitest"
import { Context, type Duration, Effect, Exit, Fiber, Layer, Option, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { CacheLoadTimeout } from "../../src/CacheError.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import { settle, timedLoader } from "../strategies/helpers.ts"

class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}

class Product extends Schema.Class<Product>("Product")({ sku: Schema.String, hot: Schema.Boolean }) {}

const entryOf = <P, A, EN>(keyspace: Keyspace.Keyspace<P, A, EN>, params: P) =>
  Effect.map(Cachet.getEntry(keyspace, params), Option.getOrUndefined)

describe("ttl and staleFor from the value", () => {
  const Products = Keyspace.make({
    name: "product",
    key: "{sku}",
    value: Product,
    ttl: (p) => (p.hot ? "10 seconds" : "1 hour"),
    staleFor: (_p, params) => (params.sku === "long" ? "1 minute" : 0)
  })

  it.effect("each value gets its own timeline", () =>
    Effect.gen(function* () {
      yield* Strategy.cacheAside(Effect.succeed(new Product({ sku: "a", hot: true })), Products, { sku: "a" })
      yield* Strategy.cacheAside(Effect.succeed(new Product({ sku: "long", hot: false })), Products, { sku: "long" })
      const hot = yield* entryOf(Products, { sku: "a" })
      const cold = yield* entryOf(Products, { sku: "long" })
      assert.strictEqual(hot?.freshUntil, 10_000)
      assert.strictEqual(hot?.staleUntil, 10_000)
      assert.strictEqual(cold?.freshUntil, 3_600_000)
      assert.strictEqual(cold?.staleUntil, 3_660_000)

      yield* TestClock.adjust(10_000)
      let loads = 0
      const load = Effect.sync(() => {
        loads++
        return new Product({ sku: "a", hot: true })
      })
      yield* Strategy.cacheAside(load, Products, { sku: "a" })
      assert.strictEqual(loads, 1, "the hot entry expired at 10 s")
      yield* Strategy.cacheAside(load, Products, { sku: "long" })
      assert.strictEqual(loads, 1, "the cold one is still fresh")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a ttl function that throws or answers nonsense: served, not stored, counted", () =>
    Effect.gen(function* () {
      const Bad = Keyspace.make({
        name: "bad-ttl",
        key: "{id}",
        value: Schema.Number,
        ttl: (n: number) => {
          if (n === 1) throw new Error("boom")
          return (n === 2 ? -5 : "nonsense") as never
        }
      })
      for (const id of [1, 2, 3]) {
        assert.strictEqual(yield* Strategy.cacheAside(Effect.succeed(id), Bad, { id }), id)
        assert.isUndefined(yield* entryOf(Bad, { id }))
      }
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.keyspaces["bad-ttl"]?.encodeErrors, 3)
      assert.strictEqual(stats.keyspaces["bad-ttl"]?.sets, 0)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("results are clamped to maxTtl (default 1 day for a function)", () =>
    Effect.gen(function* () {
      const Long = Keyspace.make({ name: "long-ttl", key: "{id}", value: Schema.Number, ttl: () => "30 days" })
      const Capped = Keyspace.make({
        name: "capped-ttl",
        key: "{id}",
        value: Schema.Number,
        ttl: () => "30 days",
        maxTtl: "1 hour"
      })
      yield* Strategy.cacheAside(Effect.succeed(1), Long, { id: 1 })
      yield* Strategy.cacheAside(Effect.succeed(1), Capped, { id: 1 })
      assert.strictEqual((yield* entryOf(Long, { id: 1 }))?.freshUntil, 86_400_000)
      assert.strictEqual((yield* entryOf(Capped, { id: 1 }))?.freshUntil, 3_600_000)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it("property: the entry's lifetimes are the function's answers, clamped", () =>
    fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 1, max: 5_000_000 }),
        (ttl, staleFor, max) =>
          Effect.runPromise(
            Effect.gen(function* () {
              const K = Keyspace.make({
                name: "prop-ttl",
                key: "{id}",
                value: Schema.Number,
                ttl: () => ttl,
                staleFor: () => staleFor,
                maxTtl: max
              })
              yield* Strategy.cacheAside(Effect.succeed(1), K, { id: 1 })
              const entry = yield* entryOf(K, { id: 1 })
              assert.strictEqual(entry!.freshUntil - entry!.createdAt, Math.min(ttl, max))
              assert.strictEqual(entry!.staleUntil - entry!.freshUntil, Math.min(staleFor, max))
              // On the TestClock: a lifetime of 1 ms on the real clock could
              // end before the entry is read back (CI saw ttl 17, maxTtl 1).
            }).pipe(Effect.provide(Cachet.layerMemory()), Effect.provide(TestClock.layer()))
          )
      ),
      { numRuns: 50 }
    ))
})

describe("per-call ttl", () => {
  const Users = Keyspace.make({ name: "user-ttl", key: "{id}", value: Schema.String, ttl: "5 minutes" })

  it.effect("a call's ttl applies to what it stores; clamped to the keyspace's ttl", () =>
    Effect.gen(function* () {
      yield* Strategy.cacheAside(Effect.succeed("a"), Users, { id: 1 }, { ttl: "10 seconds" })
      yield* Effect.succeed("b").pipe(Strategy.cacheAside(Users, { id: 2 }, { ttl: "1 day" }))
      yield* Strategy.cacheAside(Effect.succeed("c"), Users, { id: 3 }, { ttl: (v: string) => (v === "c" ? 1_000 : 1) })
      assert.strictEqual((yield* entryOf(Users, { id: 1 }))?.freshUntil, 10_000)
      assert.strictEqual((yield* entryOf(Users, { id: 2 }))?.freshUntil, 300_000, "clamped to the keyspace's ttl")
      assert.strictEqual((yield* entryOf(Users, { id: 3 }))?.freshUntil, 1_000)

      yield* TestClock.adjust(10_000)
      let loads = 0
      yield* Strategy.cacheAside(
        Effect.sync(() => {
          loads++
          return "a2"
        }),
        Users,
        { id: 1 }
      )
      assert.strictEqual(loads, 1, "the 10-second entry expired")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a bad per-call option is a defect of the miss that reads it, naming the option", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Strategy.cacheAside(Effect.succeed("x"), Users, { id: 9 }, { ttl: 0 }))
      assert.isTrue(Exit.isFailure(exit))
      assert.match(
        String(Exit.isFailure(exit) ? exit.cause.reasons[0] : ""),
        /option "ttl" must be a finite duration above zero/
      )
      assert.isUndefined(yield* entryOf(Users, { id: 9 }))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

describe("sliding expiry", () => {
  const Sessions = Keyspace.make({
    name: "session",
    key: "{id}",
    value: Schema.String,
    ttl: "10 seconds",
    sliding: true
  })

  it.effect("a read extends freshness; an entry nobody reads expires", () =>
    Effect.gen(function* () {
      let loads = 0
      const load = Effect.sync(() => {
        loads++
        return `s${loads}`
      })
      const read = (id: number) => Strategy.cacheAside(load, Sessions, { id })
      yield* read(1)
      yield* read(2)
      for (let t = 0; t < 10; t++) {
        yield* TestClock.adjust(5_000)
        assert.strictEqual(yield* read(1), "s1", `still fresh at ${(t + 1) * 5} s`)
      }
      assert.strictEqual((yield* entryOf(Sessions, { id: 1 }))?.freshUntil, 60_000)
      assert.strictEqual(loads, 2)
      // Key 2 was read only at 0: gone at 10 s, so this read loads.
      assert.strictEqual(yield* read(2), "s3")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("reads closer than a tenth of the ttl to the last extension write nothing", () =>
    Effect.gen(function* () {
      yield* Strategy.cacheAside(Effect.succeed("v"), Sessions, { id: 1 })
      yield* TestClock.adjust(999)
      yield* Strategy.cacheAside(Effect.succeed("v"), Sessions, { id: 1 })
      assert.strictEqual((yield* entryOf(Sessions, { id: 1 }))?.freshUntil, 10_000)
      yield* TestClock.adjust(1)
      yield* Strategy.cacheAside(Effect.succeed("v"), Sessions, { id: 1 })
      assert.strictEqual((yield* entryOf(Sessions, { id: 1 }))?.freshUntil, 11_000)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a touch never resurrects an invalidated entry nor undoes a newer write", () =>
    Effect.gen(function* () {
      yield* Strategy.cacheAside(Effect.succeed("old"), Sessions, { id: 1 })
      yield* TestClock.adjust(5_000)
      yield* Cachet.set(Sessions, { id: 1 }, "new")
      yield* TestClock.adjust(5_000)
      assert.strictEqual(yield* Strategy.cacheAside(Effect.succeed("x"), Sessions, { id: 1 }), "new")
      assert.strictEqual((yield* entryOf(Sessions, { id: 1 }))?.value, "new")
      yield* Cachet.invalidate(Sessions, { id: 1 })
      assert.isUndefined(yield* entryOf(Sessions, { id: 1 }))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

describe("soft and hard timeouts", () => {
  const Prices = Keyspace.make({
    name: "price",
    key: "{sku}",
    value: Schema.Number,
    ttl: "10 seconds",
    staleFor: "1 hour",
    timeout: { soft: "100 millis" }
  })

  it.effect("soft: a slow loader answers stale at the soft timeout; the load finishes and is stored", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Prices, { sku: "a" }, 1)
      yield* TestClock.adjust(10_000) // stale
      const { starts, loader } = timedLoader(1_000)
      const read = Effect.forkChild(Strategy.cacheAside(Effect.as(loader, 2), Prices, { sku: "a" }))
      const reader = yield* read
      yield* TestClock.adjust(99)
      assert.isUndefined(reader.pollUnsafe(), "waits until the soft timeout")
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* Fiber.join(reader), 1, "stale at 100 ms")
      assert.deepStrictEqual(starts, [10_000])
      yield* TestClock.adjust(900)
      yield* settle
      const entry = yield* entryOf(Prices, { sku: "a" })
      assert.strictEqual(entry?.value, 2, "stored when the background load finished")
      assert.strictEqual(entry?.createdAt, 10_000)
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.keyspaces.price?.softTimeouts, 1)
      assert.strictEqual(stats.keyspaces.price?.staleHits, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("soft: a fast loader answers; without a stale value a soft timeout waits for the load", () =>
    Effect.gen(function* () {
      const { loader } = timedLoader(50)
      yield* Cachet.set(Prices, { sku: "a" }, 1)
      yield* TestClock.adjust(10_000)
      const fast = yield* Effect.forkChild(Strategy.cacheAside(Effect.as(loader, 2), Prices, { sku: "a" }))
      yield* TestClock.adjust(50)
      assert.strictEqual(yield* Fiber.join(fast), 2)

      const slow = timedLoader(1_000)
      const cold = yield* Effect.forkChild(Strategy.cacheAside(Effect.as(slow.loader, 3), Prices, { sku: "b" }))
      yield* TestClock.adjust(500)
      assert.isUndefined(cold.pollUnsafe(), "no stale value: waits past the soft timeout")
      yield* TestClock.adjust(500)
      assert.strictEqual(yield* Fiber.join(cold), 3)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("soft timeout load invalidated before it finishes does not store", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Prices, { sku: "a" }, 1)
      yield* TestClock.adjust(10_000)
      const { loader } = timedLoader(1_000)
      const reader = yield* Effect.forkChild(Strategy.cacheAside(Effect.as(loader, 2), Prices, { sku: "a" }))
      yield* TestClock.adjust(100)
      assert.strictEqual(yield* Fiber.join(reader), 1)
      yield* Cachet.invalidate(Prices, { sku: "a" })
      yield* TestClock.adjust(900)
      yield* settle
      assert.isUndefined(yield* entryOf(Prices, { sku: "a" }), "fenced: the invalidation wins")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  const Strict = Keyspace.make({
    name: "strict-timeout",
    key: "{id}",
    value: Schema.Number,
    ttl: "10 seconds",
    staleFor: "1 minute",
    timeout: { hard: "2 seconds" }
  })

  it.effect("hard: fails with CacheLoadTimeout when no stale value can answer; stale otherwise", () =>
    Effect.gen(function* () {
      const { loader } = timedLoader(5_000)
      const reader = yield* Effect.forkChild(Effect.exit(Strategy.cacheAside(Effect.as(loader, 1), Strict, { id: 1 })))
      yield* TestClock.adjust(1_999)
      assert.isUndefined(reader.pollUnsafe())
      yield* TestClock.adjust(1)
      const exit = yield* Fiber.join(reader)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.deepStrictEqual(
        error?._tag === "Fail" ? error.error : undefined,
        new CacheLoadTimeout({ keyspace: "strict-timeout", after: 2_000 })
      )
      yield* TestClock.adjust(10_000)
      assert.isUndefined(yield* entryOf(Strict, { id: 1 }), "nobody waited: the load was interrupted, nothing stored")

      yield* Cachet.set(Strict, { id: 2 }, 7)
      yield* TestClock.adjust(10_000)
      const stale = yield* Effect.forkChild(Strategy.cacheAside(Effect.as(loader, 8), Strict, { id: 2 }))
      yield* TestClock.adjust(2_000)
      assert.strictEqual(yield* Fiber.join(stale), 7, "a stale value answers at the hard timeout")
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.keyspaces["strict-timeout"]?.hardTimeouts, 2)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a call's hard timeout replaces the keyspace's", () =>
    Effect.gen(function* () {
      const { loader } = timedLoader(1_000)
      const reader = yield* Effect.forkChild(
        Effect.exit(
          Strategy.cacheAside(Effect.as(loader, 1), Prices, { sku: "z" }, { timeout: { hard: "300 millis" } })
        )
      )
      yield* TestClock.adjust(300)
      const exit = yield* Fiber.join(reader)
      assert.isTrue(Exit.isFailure(exit))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("hard: a reader that times out leaves the load to the readers still waiting", () =>
    Effect.gen(function* () {
      const { starts, loader } = timedLoader(3_000)
      const read = (hard: Duration.Input) =>
        Effect.exit(Strategy.cacheAside(Effect.as(loader, 5), Prices, { sku: "shared" }, { timeout: { hard } }))
      const impatient = yield* Effect.forkChild(read("1 second"))
      yield* settle
      const patient = yield* Effect.forkChild(read("10 seconds"))
      yield* TestClock.adjust(1_000)
      assert.isTrue(Exit.isFailure(yield* Fiber.join(impatient)))
      yield* TestClock.adjust(2_000)
      assert.deepStrictEqual(yield* Fiber.join(patient), Exit.succeed(5), "the same load answered")
      assert.deepStrictEqual(starts, [0], "one loader run")
      assert.strictEqual((yield* entryOf(Prices, { sku: "shared" }))?.value, 5)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("soft: closing the layer interrupts the background load; nothing is stored after", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Cachet.layerMemory(), scope)
      let interrupted = 0
      const slow = Effect.sleep("5 seconds").pipe(
        Effect.as(2),
        Effect.onInterrupt(() => Effect.sync(() => interrupted++))
      )
      const answer = yield* Effect.gen(function* () {
        yield* Cachet.set(Prices, { sku: "a" }, 1)
        yield* TestClock.adjust(10_000)
        const reader = yield* Effect.forkChild(Strategy.cacheAside(slow, Prices, { sku: "a" }))
        yield* TestClock.adjust(100)
        return yield* Fiber.join(reader)
      }).pipe(Effect.provideContext(context))
      assert.strictEqual(answer, 1, "stale at the soft timeout")
      const rt = Context.get(context, Cachet.Cachet)
      assert.strictEqual(rt.liveFibers(), 1, "the load goes on in the layer")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(interrupted, 1)
      assert.strictEqual(rt.liveFibers(), 0)
    })
  )

  it("soft must be below hard", () => {
    assert.throws(
      () =>
        Keyspace.make({
          name: "bad-timeout",
          key: "{id}",
          value: Schema.Number,
          ttl: "1 minute",
          timeout: { soft: "2 seconds", hard: "1 second" }
        }),
      /"timeout.soft" must be below "timeout.hard"/
    )
  })
})

describe("failure backoff", () => {
  const Rates = Keyspace.make({
    name: "rate",
    key: "{pair}",
    value: Schema.Number,
    ttl: "10 seconds",
    staleFor: "1 hour",
    failureBackoff: "5 seconds"
  })

  it.effect("after a failure answered from stale, the loader rests for the backoff; then it is called again", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Rates, { pair: "eurusd" }, 1.08)
      yield* TestClock.adjust(10_000)
      let calls = 0
      const failing = Effect.suspend(() => {
        calls++
        return Effect.fail(new DbDown())
      })
      const read = Strategy.cacheAside(failing, Rates, { pair: "eurusd" })
      assert.strictEqual(yield* read, 1.08)
      assert.strictEqual(calls, 1)
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust(999)
        assert.strictEqual(yield* read, 1.08)
      }
      assert.strictEqual(calls, 1, "resting for 5 s")
      yield* TestClock.adjust(5)
      assert.strictEqual(yield* read, 1.08)
      assert.strictEqual(calls, 2, "called again after the backoff")
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.keyspaces.rate?.backoffSkips, 5)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("stale-while-revalidate: a failed revalidation rests the key's reloads", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Rates, { pair: "gbpusd" }, 1.27)
      yield* TestClock.adjust(10_000)
      let calls = 0
      const failing = Effect.suspend(() => {
        calls++
        return Effect.fail(new DbDown())
      })
      const read = Strategy.staleWhileRevalidate(failing, Rates, { pair: "gbpusd" })
      assert.strictEqual(yield* read, 1.27)
      yield* settle
      assert.strictEqual(calls, 1)
      yield* TestClock.adjust(4_000)
      assert.strictEqual(yield* read, 1.27)
      yield* settle
      assert.strictEqual(calls, 1, "no reload while resting")
      yield* TestClock.adjust(1_000)
      assert.strictEqual(yield* read, 1.27)
      yield* settle
      assert.strictEqual(calls, 2)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("without a stale value the loader is always called (backoff needs something to serve)", () =>
    Effect.gen(function* () {
      let calls = 0
      const failing = Effect.suspend(() => {
        calls++
        return Effect.fail(new DbDown())
      })
      const read = Effect.exit(Strategy.cacheAside(failing, Rates, { pair: "none" }))
      yield* read
      yield* read
      assert.strictEqual(calls, 2)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

describe("lifetimes of a write (writeThrough, Cachet.set)", () => {
  const Users = Keyspace.make({
    name: "wuser",
    key: "{id}",
    value: Schema.String,
    ttl: "1 minute",
    staleFor: "1 minute"
  })

  it.effect("Cachet.set and writeThrough take ttl and staleFor for this value, clamped to the keyspace's maxTtl", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Users, { id: 1 }, "short", { ttl: "2 seconds", staleFor: 0 })
      yield* Effect.succeed("through").pipe(Strategy.writeThrough(Users, { id: 2 }, { ttl: "5 seconds" }))
      yield* Cachet.set(Users, { id: 3 }, "long", { ttl: "1 hour" })
      yield* Cachet.set(Users, { id: 4 }, "by value", { ttl: (v: string) => (v.length > 3 ? "3 seconds" : "1 minute") })
      const at = (id: number) => entryOf(Users, { id })
      assert.deepStrictEqual([(yield* at(1))?.freshUntil, (yield* at(1))?.staleUntil], [2_000, 2_000])
      assert.deepStrictEqual([(yield* at(2))?.freshUntil, (yield* at(2))?.staleUntil], [5_000, 65_000])
      assert.strictEqual((yield* at(3))?.freshUntil, 60_000, "a write may shorten the ttl, not lengthen it")
      assert.strictEqual((yield* at(4))?.freshUntil, 3_000)
      yield* TestClock.adjust(2_001)
      assert.deepStrictEqual(yield* Cachet.get(Users, { id: 1 }), Option.none(), "gone after its own 2 s")
      assert.deepStrictEqual(yield* Cachet.get(Users, { id: 2 }), Option.some("through"))
      // Without options: the keyspace's lifetimes, as before.
      yield* Cachet.set(Users, { id: 5 }, "plain")
      assert.strictEqual((yield* at(5))?.freshUntil, 2_001 + 60_000)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})
