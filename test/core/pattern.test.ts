/**
 * Issue #14, item 1: `Cachet.invalidatePattern` on the memory store and
 * through the runtime: the glob syntax, the count, in-flight loads, the
 * journal during an outage, and a fast-check property that a pattern never
 * reaches outside its keyspace (a keyspace whose name is a prefix of
 * another's, glob characters in parameters).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Glob from "../../src/internal/glob.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"
import { keyspacesOf, param, patternArb, patternInputs, patternRun, reference } from "./globReference.ts"

const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 hour" })
// A keyspace whose name starts with the other's.
const Users2 = Keyspace.make({ name: "user2", key: "{id}", value: Schema.String, ttl: "1 hour" })
const Posts = Keyspace.make({ name: "post", key: "org:{org}:post:{id}", value: Schema.String, ttl: "1 hour" })

const present = <P>(ks: Keyspace.Keyspace<P, string>, params: P) => Effect.map(Cachet.peek(ks, params), Option.isSome)

describe("Cachet.invalidatePattern (memory store)", () => {
  it.effect("deletes the keyspace's entries whose key matches, returns the count, leaves the rest", () =>
    Effect.gen(function* () {
      for (const id of [4, 41, 42, 5, 14]) yield* Cachet.set(Users, { id }, `u${id}`)
      yield* Cachet.set(Users2, { id: 4 }, "other keyspace")
      assert.strictEqual(yield* Cachet.invalidatePattern(Users, "4*"), 3)
      for (const id of [4, 41, 42]) assert.isFalse(yield* present(Users, { id }))
      for (const id of [5, 14]) assert.isTrue(yield* present(Users, { id }))
      assert.isTrue(yield* present(Users2, { id: 4 }), "user2:4 is not user:4*")
      assert.strictEqual((yield* Cachet.stats).keyspaces.user!.deletes, 3)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("?, [set], [^set], ranges and \\ escapes; glob characters in parameters match only as literals", () =>
    Effect.gen(function* () {
      const ids = ["a1", "b1", "c1", "ab", "a*", "a?", "[x]", "x:y", "100%"]
      const count = (pattern: string) =>
        Effect.gen(function* () {
          for (const id of ids) yield* Cachet.set(Users, { id }, id)
          return yield* Cachet.invalidatePattern(Users, pattern)
        })
      assert.strictEqual(yield* count("?1"), 3)
      assert.strictEqual(yield* count("[ab]1"), 2)
      assert.strictEqual(yield* count("[^a]1"), 2)
      assert.strictEqual(yield* count("[a-b]?"), 5) // a1 b1 ab a* a?
      assert.strictEqual(yield* count("a\\*"), 1, "only the literal a*, not a1 or ab")
      assert.strictEqual(yield* count("a\\?"), 1)
      assert.strictEqual(yield* count("\\[x\\]"), 1)
      assert.strictEqual(yield* count("x:*"), 1, "a : in a value, stored escaped, matches a literal :")
      assert.strictEqual(yield* count("*%"), 1)
      assert.strictEqual(yield* count("*"), ids.length)
      assert.strictEqual(yield* count("zzz"), 0)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("the pattern covers the whole rendered key of a template, literals included", () =>
    Effect.gen(function* () {
      for (const [org, id] of [
        [7, 1],
        [7, 2],
        [8, 1]
      ] as const)
        yield* Cachet.set(Posts, { org, id }, `${org}/${id}`)
      assert.strictEqual(yield* Cachet.invalidatePattern(Posts, "org:7:*"), 2)
      assert.isTrue(yield* present(Posts, { org: 8, id: 1 }))
      assert.strictEqual(yield* Cachet.invalidatePattern(Posts, "*:post:1"), 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("hashed keys (over maxKeyBytes) are covered when their readable start could match", () =>
    Effect.gen(function* () {
      const Long = Keyspace.make({ name: "long", key: "{id}", value: Schema.String, ttl: "1 hour", maxKeyBytes: 128 })
      const long = `abc${"x".repeat(300)}`
      yield* Cachet.set(Long, { id: long }, "v")
      yield* Cachet.set(Long, { id: "zzz" }, "v")
      assert.isTrue(Long.keyUnsafe({ id: long }).includes("#"), "the key is hashed")
      assert.strictEqual(yield* Cachet.invalidatePattern(Long, "ab*"), 1)
      assert.isFalse(yield* present(Long, { id: long }))
      assert.isTrue(yield* present(Long, { id: "zzz" }))
      yield* Cachet.set(Long, { id: long }, "v")
      assert.strictEqual(yield* Cachet.invalidatePattern(Long, "b*"), 0, "its readable start rules it out")
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a malformed pattern fails with CacheKeyError and deletes nothing", () =>
    Effect.gen(function* () {
      yield* Cachet.set(Users, { id: 1 }, "u1")
      for (const bad of ["[a", "a\\", "[]", "[z-a]"]) {
        const error = yield* Effect.flip(Cachet.invalidatePattern(Users, bad))
        assert.strictEqual(error._tag, "CacheKeyError")
      }
      assert.isTrue(yield* present(Users, { id: 1 }))
      assert.strictEqual((yield* Cachet.stats).keyErrors, 4)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a load in flight of a matching key does not store its result; a non-matching one does", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const slow = (id: number) =>
        Deferred.await(gate).pipe(Effect.as(`loaded ${id}`), Strategy.cacheAside(Users, { id }))
      const a = yield* Effect.forkChild(slow(41))
      const b = yield* Effect.forkChild(slow(51))
      yield* TestClock.adjust("1 millis")
      yield* Cachet.invalidatePattern(Users, "4*")
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(a), "loaded 41")
      assert.strictEqual(yield* Fiber.join(b), "loaded 51")
      assert.isFalse(yield* present(Users, { id: 41 }), "invalidated while loading: not stored")
      assert.isTrue(yield* present(Users, { id: 51 }))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

class Memory extends Context.Service<Memory, CacheStore.CacheStore["Service"]>()("test/pattern/Memory") {}

const chaosLayer = Layer.unwrap(
  Effect.map(CacheStore.makeMemory(), (memory) =>
    Cachet.layer().pipe(
      Layer.provideMerge(ChaosStore.layer({ failRate: 0 })),
      Layer.provide(Layer.succeed(CacheStore.CacheStore, memory)),
      Layer.merge(Layer.succeed(Memory, memory))
    )
  )
)
const down = ChaosStore.ChaosControl.use((c) => c.set({ failRate: 1, ops: ["deletePattern"] }))
const up = ChaosStore.ChaosControl.use((c) => c.set({ failRate: 0 }))
const rawCodec = { keyspace: "user", encode: Users.encode, decode: Users.decode, onCorrupt: () => {} }

describe("Cachet.invalidatePattern while the store does not answer", () => {
  it.effect("journalled, scoped to its keyspace: hidden here at once, deleted in the store on replay", () =>
    Effect.gen(function* () {
      const memory = yield* Memory
      for (const id of [41, 42, 5]) yield* Cachet.set(Users, { id }, `u${id}`)
      yield* Cachet.set(Users2, { id: 41 }, "other")
      yield* down
      assert.strictEqual(yield* Cachet.invalidatePattern(Users, "4*"), 0, "nothing deleted yet")
      assert.isFalse(yield* present(Users, { id: 41 }), "this process stops serving it at once")
      assert.isFalse(yield* present(Users, { id: 42 }))
      assert.isTrue(yield* present(Users, { id: 5 }), "a key the pattern does not cover is served")
      assert.isTrue(yield* present(Users2, { id: 41 }), "another keyspace is not covered")
      assert.isDefined(yield* memory.get(Users.keyUnsafe({ id: 41 }), rawCodec), "the store still has it")
      const stats = yield* Cachet.stats
      assert.strictEqual(stats.journaled, 1)
      assert.strictEqual(stats.storeErrors, 1)
      yield* up
      yield* TestClock.adjust("300 millis")
      assert.isUndefined(yield* memory.get(Users.keyUnsafe({ id: 41 }), rawCodec), "replayed")
      assert.isDefined(yield* memory.get(Users.keyUnsafe({ id: 5 }), rawCodec))
      assert.strictEqual((yield* Cachet.Cachet).journalDepth(), 0)
      // After the replay, new entries of matching keys are served again.
      yield* Cachet.set(Users, { id: 41 }, "again")
      assert.isTrue(yield* present(Users, { id: 41 }))
    }).pipe(Effect.provide(chaosLayer))
  )

  it.effect('{ onStoreError: "fail" } fails with CacheStoreError, and the invalidation is still journalled', () =>
    Effect.gen(function* () {
      yield* Cachet.set(Users, { id: 41 }, "u41")
      yield* down
      const error = yield* Effect.flip(Cachet.invalidatePattern(Users, "4*", { onStoreError: "fail" }))
      assert.strictEqual(error._tag, "CacheStoreError")
      assert.isFalse(yield* present(Users, { id: 41 }))
      assert.strictEqual((yield* Cachet.stats).journaled, 1)
    }).pipe(Effect.provide(chaosLayer))
  )
})

describe("property: a pattern never reaches outside its keyspace", () => {
  it.effect("every entry of another keyspace survives; inside, exactly the matching keys go", () =>
    Effect.promise(() => {
      const keyspaces = keyspacesOf()
      return fc.assert(
        fc.asyncProperty(...patternInputs(20), (entries, target, pattern) =>
          Effect.runPromise(patternRun(keyspaces, entries, target, pattern).pipe(Effect.provide(Cachet.layerMemory())))
        ),
        { numRuns: 300 }
      )
    })
  )

  it("the matcher agrees with the reference on random keys and patterns", () =>
    fc.assert(
      fc.property(patternArb, param, (pattern, id) => {
        const regex = reference(pattern)
        const matcher = Glob.compile(pattern)
        assert.strictEqual(typeof matcher === "string", regex === undefined, pattern)
        if (typeof matcher === "string" || regex === undefined) return
        const key = Users.keyUnsafe({ id }).slice("user:".length)
        assert.strictEqual(Glob.covers(matcher, key), regex.test(String(id)), `${pattern} on ${String(id)}`)
        // Redis narrows its SCAN with the hint: it must match every covered key.
        if (regex.test(String(id)))
          assert.isTrue(reference(Glob.scanHint(matcher, 128))!.test(key), "hint is a superset")
      }),
      { numRuns: 2000 }
    ))
})
