/**
 * Issue #14, items 5, 6 and 10: keyspace versions (`versionMisses`,
 * `invalidateKeyspace(ks, { allVersions: true })`), typed template
 * parameters checked at runtime, and `Cachet.peek`, on the memory store.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"

// Version 1 stored the name as one string; version 2 splits it.
const V1 = Keyspace.make({ name: "profile", key: "{id}", value: Schema.String, ttl: "1 hour" })
const V2Value = Schema.Struct({ first: Schema.String, last: Schema.String })
const V2 = Keyspace.make({ name: "profile", key: "{id}", value: V2Value, ttl: "1 hour", version: 2 })
const V3 = Keyspace.make({ name: "profile", key: "{id}", value: V2Value, ttl: "1 hour", version: 3 })

/** Two runtimes (an old and a new deploy) on one store. */
const deploys = Effect.gen(function* () {
  const store = yield* CacheStore.makeMemory()
  const storeLayer = Layer.succeed(CacheStore.CacheStore, store)
  const old = yield* Layer.build(Cachet.layer().pipe(Layer.provide(storeLayer)))
  const next = yield* Layer.build(Cachet.layer().pipe(Layer.provideMerge(storeLayer)))
  return { store, old, next }
})

describe("keyspace versions", () => {
  it("the version is in the namespace from version 2 on; version 1 keeps the plain name", () => {
    assert.strictEqual(V1.keyUnsafe({ id: 7 }), "profile:7")
    assert.strictEqual(V2.keyUnsafe({ id: 7 }), "profile@2:7")
    assert.strictEqual(V2.version, 2)
    assert.throws(
      () => Keyspace.make({ name: "p", key: "{id}", value: Schema.String, ttl: 1, version: 0 }),
      /option "version" must be a positive integer, got 0/
    )
    assert.throws(
      () => Keyspace.make({ name: "p", key: "{id}", value: Schema.String, ttl: 1, version: 1.5 }),
      /version/
    )
  })

  it.effect("a deploy that bumps the version reads misses counted as versionMisses, not decode errors", () =>
    Effect.gen(function* () {
      const { old, next } = yield* deploys
      for (const id of [1, 2]) yield* Cachet.set(V1, { id }, `Ada ${id}`).pipe(Effect.provide(old))
      let loads = 0
      const read = (id: number) =>
        Effect.sync(() => {
          loads++
          return { first: "Ada", last: String(id) }
        }).pipe(Strategy.cacheAside(V2, { id }), Effect.provide(next))
      yield* read(1)
      yield* read(1) // a hit now
      yield* read(3) // a cold miss: no older entry
      const stats = (yield* Cachet.stats.pipe(Effect.provide(next))).keyspaces.profile!
      assert.strictEqual(loads, 2)
      assert.strictEqual(stats.misses, 2)
      assert.strictEqual(stats.hits, 1)
      assert.strictEqual(stats.versionMisses, 1, "only the miss an old entry explains")
      assert.strictEqual(stats.decodeErrors, 0)
      // The old deploy still reads its own entries (a rolling deploy).
      assert.deepStrictEqual(yield* Cachet.get(V1, { id: 2 }).pipe(Effect.provide(old)), Option.some("Ada 2"))
    }).pipe(Effect.scoped)
  )

  it.effect("a version 3 miss probes versions 1 and 2", () =>
    Effect.gen(function* () {
      const { old, next } = yield* deploys
      yield* Cachet.set(V2, { id: 1 }, { first: "a", last: "b" }).pipe(Effect.provide(old))
      yield* Effect.succeed({ first: "c", last: "d" }).pipe(Strategy.cacheAside(V3, { id: 1 }), Effect.provide(next))
      assert.strictEqual((yield* Cachet.stats.pipe(Effect.provide(next))).versionMisses, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("invalidateKeyspace clears the current version; { allVersions: true } every version", () =>
    Effect.gen(function* () {
      const { old, next, store } = yield* deploys
      yield* Cachet.set(V1, { id: 1 }, "v1").pipe(Effect.provide(old))
      yield* Cachet.set(V2, { id: 1 }, { first: "a", last: "b" }).pipe(Effect.provide(next))
      yield* Cachet.set(V2, { id: 2 }, { first: "a", last: "b" }).pipe(Effect.provide(next))
      const Other = Keyspace.make({ name: "profile2", key: "{id}", value: Schema.String, ttl: "1 hour" })
      yield* Cachet.set(Other, { id: 1 }, "other").pipe(Effect.provide(next))
      assert.strictEqual(yield* Cachet.invalidateKeyspace(V2).pipe(Effect.provide(next)), 2)
      const info = yield* store.info
      assert.strictEqual(info?.entries, 2, "version 1 and the other keyspace stay")
      yield* Cachet.set(V3, { id: 1 }, { first: "a", last: "b" }).pipe(
        Effect.provide(Cachet.layer().pipe(Layer.provide(Layer.succeed(CacheStore.CacheStore, store))))
      )
      yield* Cachet.set(V2, { id: 5 }, { first: "a", last: "b" }).pipe(Effect.provide(next))
      assert.strictEqual(yield* Cachet.invalidateKeyspace(V2, { allVersions: true }).pipe(Effect.provide(next)), 3)
      assert.strictEqual((yield* store.info)?.entries, 1, "only profile2 is left")
      assert.deepStrictEqual(yield* Cachet.get(Other, { id: 1 }).pipe(Effect.provide(next)), Option.some("other"))
    }).pipe(Effect.scoped)
  )

  it.effect("two versions of one keyspace in one runtime: the second is a duplicate, reported and bypassed", () =>
    Effect.gen(function* () {
      yield* Cachet.set(V1, { id: 1 }, "v1")
      const error = yield* Effect.flip(Cachet.set(V2, { id: 1 }, { first: "a", last: "b" }))
      assert.strictEqual(error._tag, "CacheKeyError")
      assert.strictEqual((yield* Cachet.stats).duplicateKeyspaces, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})

describe("typed template parameters", () => {
  const Pages = Keyspace.make({
    name: "page",
    key: "{id:number}:{slug:string}:{any}",
    value: Schema.String,
    ttl: "1 hour"
  })

  it("renders declared kinds as before; refuses a wrong kind with a CacheKeyError naming it", () => {
    assert.strictEqual(Pages.keyUnsafe({ id: 7, slug: "a:b", any: "x" }), "page:7:a%3Ab:x")
    const refused = (params: unknown, message: RegExp) => {
      let thrown: unknown
      try {
        Pages.keyUnsafe(params as never)
      } catch (e) {
        thrown = e
      }
      assert.strictEqual((thrown as { _tag?: string } | undefined)?._tag, "CacheKeyError")
      assert.match((thrown as Error).message, message)
    }
    refused({ id: "7", slug: "s", any: 1 }, /declared \{id:number\} and must be a finite number, got the string "7"/)
    refused({ id: Number.NaN, slug: "s", any: 1 }, /finite number, got the number NaN/)
    refused({ id: Number.POSITIVE_INFINITY, slug: "s", any: 1 }, /got the number Infinity/)
    refused({ id: 1, slug: 5, any: 1 }, /declared \{slug:string\} and must be a string, got the number 5/)
    refused({ id: 1, slug: "s", any: null }, /must be a string or a number, got null/)
  })

  it.effect("Keyspace.key fails with the typed error; strategies count it and answer from the loader", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Keyspace.key(Pages, { id: "7", slug: "s", any: 1 } as never))
      assert.strictEqual(error._tag, "CacheKeyError")
      let loads = 0
      const read = Effect.sync(() => String(++loads)).pipe(
        Strategy.cacheAside(Pages, { id: Number.NaN, slug: "s", any: 1 })
      )
      assert.strictEqual(yield* read, "1")
      assert.strictEqual(yield* read, "2", "nothing cached for a bad key")
      assert.strictEqual((yield* Cachet.stats).keyErrors, 2)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it("an unknown placeholder type is refused at construction", () => {
    assert.throws(
      // @ts-expect-error: a compile error too (Keyspace.TemplateError)
      () => Keyspace.make({ name: "p", key: "{id:bool}", value: Schema.String, ttl: 1 }),
      /placeholder \{id:bool\} declares the type "bool"/
    )
  })
})

describe("Cachet.peek", () => {
  const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute", staleFor: "1 hour" })

  it.effect("reads an entry with its timeline and counts no hit or miss", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_000)
      yield* Cachet.set(Users, { id: 1 }, "Ada")
      const fresh = yield* Cachet.peek(Users, { id: 1 })
      assert.isTrue(Option.isSome(fresh))
      const entry = Option.getOrThrow(fresh)
      assert.strictEqual(entry.state, "fresh")
      assert.strictEqual(entry.createdAt, 1_000)
      assert.strictEqual(entry.freshUntil, 61_000)
      assert.strictEqual(entry.staleUntil, 3_661_000)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(Option.getOrThrow(yield* Cachet.peek(Users, { id: 1 })).state, "stale")
      assert.isTrue(Option.isNone(yield* Cachet.peek(Users, { id: 2 })))
      let stats = yield* Cachet.stats
      assert.deepStrictEqual([stats.hits, stats.misses, stats.staleHits], [0, 0, 0])
      // getEntry, for comparison, counts.
      yield* Cachet.getEntry(Users, { id: 1 })
      stats = yield* Cachet.stats
      assert.strictEqual(stats.staleHits, 1)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("an invalidated entry does not show (the same visibility as every read)", () =>
    Effect.gen(function* () {
      const Tagged = Keyspace.make({
        name: "tagged",
        key: "{id}",
        value: Schema.String,
        ttl: "1 minute",
        tags: () => ["t"]
      })
      yield* Cachet.set(Tagged, { id: 1 }, "x")
      yield* TestClock.adjust("1 millis")
      yield* Cachet.invalidateTag("t")
      assert.isTrue(Option.isNone(yield* Cachet.peek(Tagged, { id: 1 })))
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})
