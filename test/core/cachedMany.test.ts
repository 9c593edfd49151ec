import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Schema } from "effect"
import * as Request from "effect/Request"
import * as RequestResolver from "effect/RequestResolver"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import { settle } from "../strategies/helpers.ts"

class DbDown extends Schema.TaggedError<DbDown>()("DbDown", {}) {}

const Users = Keyspace.make({
  name: "user",
  key: "{id}",
  value: Schema.String,
  ttl: "10 seconds",
  staleFor: "1 minute"
})

type P = { readonly id: number }

/** A batch loader that records each call's ids and takes `millis` of clock time. */
const batchLoader = (millis = 0, fail?: (ids: ReadonlyArray<number>) => boolean) => {
  const calls: Array<ReadonlyArray<number>> = []
  const loadMany = (ps: ReadonlyArray<P>) =>
    Effect.gen(function* () {
      const ids = ps.map((p) => p.id)
      calls.push(ids)
      if (millis > 0) yield* Effect.sleep(millis)
      if (fail?.(ids)) return yield* new DbDown()
      return ids.map((id) => `user ${id} v${calls.length}`)
    })
  return { calls, loadMany }
}

const stored = (id: number) => Effect.map(Cachet.getEntry(Users, { id }), Option.getOrUndefined)

describe("Cachet.cachedMany", () => {
  it.effect("one loadMany call for the misses, each once; hits answer; results aligned with the input", () =>
    Effect.gen(function* () {
      const { calls, loadMany } = batchLoader()
      const getUsers = Cachet.cachedMany(Users, loadMany)
      yield* Cachet.set(Users, { id: 2 }, "cached 2")
      const out = yield* getUsers([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 1 }])
      assert.deepStrictEqual(out, ["user 1 v1", "cached 2", "user 3 v1", "user 1 v1"])
      assert.deepStrictEqual(calls, [[1, 3]])
      assert.deepStrictEqual(yield* getUsers([{ id: 3 }, { id: 1 }]), ["user 3 v1", "user 1 v1"])
      assert.strictEqual(calls.length, 1, "all hits now")
      assert.deepStrictEqual(yield* getUsers([]), [])
      const stats = (yield* Cachet.stats).keyspaces.user!
      assert.strictEqual(stats.hits, 3)
      assert.strictEqual(stats.misses, 2)
      assert.strictEqual(stats.sets, 3) // one explicit, two from the batch
      assert.strictEqual(stats.loads, 2)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("keys already loading are joined, and single loads join the batch's keys", () =>
    Effect.gen(function* () {
      const { calls, loadMany } = batchLoader(1_000)
      const getUsers = Cachet.cachedMany(Users, loadMany)
      let singleRuns = 0
      const single = (id: number) =>
        Strategy.cacheAside(
          Effect.gen(function* () {
            singleRuns++
            yield* Effect.sleep(500)
            return `single ${id}`
          }),
          Users,
          { id }
        )
      const first = yield* Effect.forkChild(single(1))
      yield* settle
      const batch = yield* Effect.forkChild(getUsers([{ id: 1 }, { id: 2 }]))
      yield* settle
      const joiner = yield* Effect.forkChild(single(2))
      yield* settle
      assert.deepStrictEqual(calls, [[2]], "key 1 was loading: only key 2 is in the batch")
      yield* TestClock.adjust(1_000)
      assert.deepStrictEqual(yield* Fiber.join(batch), ["single 1", "user 2 v1"])
      assert.strictEqual(yield* Fiber.join(first), "single 1")
      assert.strictEqual(yield* Fiber.join(joiner), "user 2 v1", "joined the batch's flight")
      assert.strictEqual(singleRuns, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("fenced per key: a key invalidated while the batch runs is not stored, the others are", () =>
    Effect.gen(function* () {
      const { loadMany } = batchLoader(1_000)
      const batch = yield* Effect.forkChild(Cachet.cachedMany(Users, loadMany)([{ id: 1 }, { id: 2 }]))
      yield* TestClock.adjust(500)
      yield* Cachet.invalidate(Users, { id: 1 })
      yield* TestClock.adjust(500)
      assert.deepStrictEqual(yield* Fiber.join(batch), ["user 1 v1", "user 2 v1"], "the caller still gets its values")
      assert.isUndefined(yield* stored(1), "the load started before the invalidation: not stored")
      assert.strictEqual((yield* stored(2))?.value, "user 2 v1")
      yield* Cachet.set(Users, { id: 3 }, "explicit")
      const again = yield* Effect.forkChild(Cachet.cachedMany(Users, loadMany)([{ id: 4 }]))
      yield* TestClock.adjust(1_000)
      yield* Fiber.join(again)
      assert.strictEqual((yield* stored(3))?.value, "explicit")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a failed loadMany: stale values answer their keys; a key without one fails the call", () =>
    Effect.gen(function* () {
      let down = false
      const { calls, loadMany } = batchLoader(0, () => down)
      const getUsers = Cachet.cachedMany(Users, loadMany)
      yield* getUsers([{ id: 1 }, { id: 2 }])
      yield* TestClock.adjust(10_000) // both stale
      down = true
      assert.deepStrictEqual(yield* getUsers([{ id: 1 }, { id: 2 }]), ["user 1 v1", "user 2 v1"])
      const exit = yield* Effect.exit(getUsers([{ id: 1 }, { id: 9 }]))
      assert.deepStrictEqual(exit, Exit.fail(new DbDown()))
      assert.strictEqual(calls.length, 3)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a loadMany answering the wrong number of values dies, naming the counts; nothing stored", () =>
    Effect.gen(function* () {
      const getUsers = Cachet.cachedMany(Users, (_ps: ReadonlyArray<P>) => Effect.succeed(["only one"]))
      const exit = yield* Effect.exit(getUsers([{ id: 1 }, { id: 2 }]))
      assert.isTrue(Exit.isFailure(exit))
      assert.match(String(Exit.isFailure(exit) ? exit.cause.reasons[0] : ""), /returned 1 values for 2 parameters/)
      assert.isUndefined(yield* stored(1))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("read-your-writes: a key with a queued write-behind answers its queued value, not the source's", () =>
    Effect.gen(function* () {
      const { calls, loadMany } = batchLoader()
      yield* Strategy.writeBehind(Users, { id: 1 }, "queued 1", () => Effect.void)
      yield* Cachet.invalidate(Users, { id: 1 }) // the cache entry goes; the write stays queued
      const out = yield* Cachet.cachedMany(Users, loadMany)([{ id: 1 }, { id: 2 }])
      assert.deepStrictEqual(out, ["queued 1", "user 2 v1"])
      assert.deepStrictEqual(calls, [[2]], "the source is not asked for key 1")
      assert.strictEqual((yield* stored(1))?.value, "queued 1")
    }).pipe(Effect.provide(Cachet.layerMemory({ writeBehind: { flushInterval: "1 hour" } })))
  )

  it.effect("parameters that cannot form a key are loaded, not cached, and counted", () =>
    Effect.gen(function* () {
      const { calls, loadMany } = batchLoader()
      const getUsers = Cachet.cachedMany(Users, loadMany)
      const bad = { id: undefined as unknown as number }
      const good = { id: 1 }
      const out = yield* getUsers([bad, good])
      assert.strictEqual(out[1], "user 1 v1")
      assert.strictEqual(calls.length, 2)
      const stats = (yield* Cachet.stats).keyspaces.user!
      assert.strictEqual(stats.keyErrors, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

class GetUser extends Request.Class<{ readonly id: number }, string, DbDown> {}

describe("Cachet.resolver", () => {
  const make = () => {
    const batches: Array<ReadonlyArray<number>> = []
    const inner = RequestResolver.make<GetUser>((entries) =>
      Effect.sync(() => {
        batches.push(entries.map((e) => e.request.id))
        for (const entry of entries) {
          entry.completeUnsafe(
            entry.request.id === 13 ? Exit.fail(new DbDown()) : Exit.succeed(`user ${entry.request.id}`)
          )
        }
      })
    )
    return { batches, inner }
  }

  it.effect("Effect.request through the wrapped resolver: misses reach it in one batch, hits never", () =>
    Effect.gen(function* () {
      const { batches, inner } = make()
      const users = yield* Cachet.resolver(Users, inner)
      const ask = (ids: ReadonlyArray<number>) =>
        Effect.forEach(ids, (id) => Effect.exit(Effect.request(new GetUser({ id }), users)), {
          concurrency: "unbounded"
        })
      const first = yield* ask([1, 2, 13])
      assert.deepStrictEqual(first, [Exit.succeed("user 1"), Exit.succeed("user 2"), Exit.fail(new DbDown())])
      assert.deepStrictEqual(batches, [[1, 2, 13]])
      const second = yield* ask([1, 2, 3])
      assert.deepStrictEqual(second, [Exit.succeed("user 1"), Exit.succeed("user 2"), Exit.succeed("user 3")])
      assert.deepStrictEqual(batches, [[1, 2, 13], [3]], "only the miss reached the resolver")
      assert.strictEqual((yield* stored(13)) === undefined, true, "failures are not cached")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

describe("cachedMany coherence (property)", () => {
  const Items = Keyspace.make({ name: "item", key: "{id}", value: Schema.String, ttl: "1 hour" })
  type Op =
    | { readonly _tag: "batch"; readonly ids: ReadonlyArray<number>; readonly delay: number }
    | { readonly _tag: "set"; readonly id: number }
    | { readonly _tag: "invalidate"; readonly id: number }
    | { readonly _tag: "wait"; readonly millis: number }
  const id = fc.integer({ min: 0, max: 3 })
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      _tag: fc.constant("batch" as const),
      ids: fc.array(id, { minLength: 1, maxLength: 4 }),
      delay: fc.integer({ min: 0, max: 30 })
    }),
    fc.record({ _tag: fc.constant("set" as const), id }),
    fc.record({ _tag: fc.constant("invalidate" as const), id }),
    fc.record({ _tag: fc.constant("wait" as const), millis: fc.integer({ min: 1, max: 20 }) })
  )

  it("a batch never stores over a later set or invalidation of a key; the last set wins otherwise", () =>
    fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), (ops) =>
        Effect.runPromise(
          Effect.gen(function* () {
            let step = 0
            // Per key: the step of its last explicit op, and the value of its last set.
            const explicit = new Map<number, { readonly at: number; readonly value: string | undefined }>()
            const loadStarts = new Map<string, number>() // batch value -> step its load started
            const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
            let batchNo = 0
            for (const o of ops) {
              step++
              if (o._tag === "batch") {
                const b = batchNo++
                const at = step
                const loadMany = (ps: ReadonlyArray<{ readonly id: number | string }>) =>
                  Effect.gen(function* () {
                    const values = ps.map((p) => `b${b}:${p.id}`)
                    for (const v of values) loadStarts.set(v, at)
                    yield* Effect.sleep(o.delay)
                    return values
                  })
                fibers.push(yield* Effect.forkChild(Cachet.cachedMany(Items, loadMany)(o.ids.map((i) => ({ id: i })))))
                yield* settle
              } else if (o._tag === "set") {
                const value = `s${step}:${o.id}`
                yield* Cachet.set(Items, { id: o.id }, value)
                explicit.set(o.id, { at: step, value })
              } else if (o._tag === "invalidate") {
                yield* Cachet.invalidate(Items, { id: o.id })
                explicit.set(o.id, { at: step, value: undefined })
              } else {
                yield* TestClock.adjust(o.millis)
              }
            }
            yield* TestClock.adjust(1_000)
            for (const fiber of fibers) yield* Fiber.join(fiber)
            for (const k of [0, 1, 2, 3]) {
              const entry = Option.getOrUndefined(yield* Cachet.getEntry(Items, { id: k }))
              const last = explicit.get(k)
              const v = entry?.value
              if (v?.startsWith("b")) {
                // A batch's value: its load started after the key's last explicit op.
                assert.isAbove(loadStarts.get(v)!, last?.at ?? 0, `key ${k}: ${v} over ${JSON.stringify(last)}`)
              } else if (last !== undefined) {
                const laterLoad = [...loadStarts].some(([val, at]) => val.endsWith(`:${k}`) && at > last.at)
                // No load of the key started after the last explicit op: that op's state stands.
                if (!laterLoad) assert.strictEqual(v, last.value, `key ${k}`)
              }
            }
          }).pipe(Effect.provide(Cachet.layerMemory()), Effect.provide(TestClock.layer()))
        )
      ),
      { numRuns: 150 }
    ))
})
