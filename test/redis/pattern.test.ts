/**
 * Issue #14, items 1 and 5 on a real Redis (one harness server for the file):
 * `Cachet.invalidatePattern` on RedisStore (SCAN + exact filter + UNLINK in
 * batches, the clear record that fences loads of other processes) and on
 * TieredStore (the other instances' L1s drop matching keys only, over the
 * bus), and keyspace versions (the presence probe behind `versionMisses`,
 * which copies nothing into a TieredStore's L1). The multi-instance tests
 * run under `it.live`: pub/sub delivery and the probe's fiber are real time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import * as Cachet from "../../src/Cachet.ts"
import { escapeValue } from "../../src/internal/keyEncoding.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { keyspacesOf, patternInputs, patternRun } from "../core/globReference.ts"
import { requireRedis } from "../harness/redis.ts"
import { eventually, instance, on, statsOf, subscribed } from "../tiered/helpers.ts"
import { rawClient, runId, sharedServer } from "./helpers.ts"

const server = sharedServer()

const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 hour" })
const Users2 = Keyspace.make({ name: "user2", key: "{id}", value: Schema.String, ttl: "1 hour" })

const runtime = (prefix: string, options?: Partial<RedisStore.Options>) =>
  Layer.unwrap(
    Effect.sync(() =>
      Cachet.layer().pipe(Layer.provide(RedisStore.layer({ url: server.get().url, prefix, ...options })))
    )
  )

describe.skipIf(!requireRedis())("invalidatePattern on Redis", () => {
  it.effect("RedisStore: exactly the matching keys, in batches, with glob characters in parameters literal", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.now())
      const prefix = `pat*[${runId()}`
      // Small batches and scans: 250 matching keys take several of each.
      const ctx = yield* Layer.build(runtime(prefix, { deleteBatchSize: 40, scanCount: 50 }))
      const ids = Array.from({ length: 300 }, (_, i) => i)
      yield* Effect.provide(
        Effect.forEach(ids, (id) => Cachet.set(Users, { id: id < 250 ? `a${id}` : `b${id}` }, "v"), {
          concurrency: 16,
          discard: true
        }),
        ctx
      )
      yield* Effect.provide(
        Effect.all([
          Cachet.set(Users, { id: "a*[x]" }, "v"),
          Cachet.set(Users, { id: "a:b" }, "v"),
          Cachet.set(Users2, { id: "a1" }, "v")
        ]),
        ctx
      )
      const raw = yield* rawClient(server.get().port)
      const ns = escapeValue(prefix)
      const keys = () => Effect.promise(() => raw.keys(`${ns.replace(/[*?[\]\\]/g, "\\$&")}:*`))
      assert.strictEqual(yield* Effect.provide(Cachet.invalidatePattern(Users, "a\\*\\[x]"), ctx), 1, "literal")
      assert.strictEqual(yield* Effect.provide(Cachet.invalidatePattern(Users, "a:*"), ctx), 1, "a stored %3A is a :")
      assert.strictEqual(yield* Effect.provide(Cachet.invalidatePattern(Users, "a*"), ctx), 250)
      const left = (yield* keys()).sort()
      assert.strictEqual(left.filter((k) => k.startsWith(`${ns}:user:b`)).length, 50)
      assert.strictEqual(left.filter((k) => k.startsWith(`${ns}:user:a`)).length, 0)
      assert.isTrue(left.includes(`${ns}:user2:a1`), "user2 is another keyspace")
      assert.isTrue(left.includes(`${ns}:~clear:user:`))
    })
  )

  it.live("a load in another process that started before the invalidation stores nothing (fenced)", () =>
    Effect.gen(function* () {
      const prefix = `fence-${runId()}`
      const a = yield* Layer.build(runtime(prefix))
      const b = yield* Layer.build(runtime(prefix))
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const loader = Deferred.succeed(started, undefined).pipe(Effect.andThen(Deferred.await(gate)), Effect.as("old"))
      const load = yield* Effect.forkChild(Effect.provide(loader.pipe(Strategy.cacheAside(Users, { id: 41 })), a))
      // The loader runs: its load has read the server's clock (its start).
      yield* Deferred.await(started)
      yield* Effect.provide(Cachet.invalidatePattern(Users, "4*"), b)
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(load), "old")
      assert.isTrue(Option.isNone(yield* Effect.provide(Cachet.get(Users, { id: 41 }), b)), "not stored")
      assert.strictEqual((yield* Effect.provide(Cachet.stats, a)).fencedWrites, 1)
    })
  )

  it.live("TieredStore: the other instances' L1s drop the matching keys and keep the rest", () =>
    Effect.gen(function* () {
      const prefix = `tpat-${runId()}`
      const options = { l2: { url: server.get().url, prefix, commandTimeout: 300 } }
      const a = yield* instance(options)
      const b = yield* instance(options)
      yield* subscribed(a)
      yield* subscribed(b)
      for (const id of [41, 42, 5]) yield* on(a)(Cachet.set(Users, { id }, `v${id}`))
      yield* eventually(
        Effect.map(statsOf(b), (s) => (s.bus?.received ?? 0) >= 3),
        1_000,
        "B heard the sets",
        2
      )
      // B reads them into its L1.
      for (const id of [41, 42, 5])
        assert.deepStrictEqual(yield* on(b)(Cachet.get(Users, { id })), Option.some(`v${id}`))
      assert.strictEqual(yield* on(a)(Cachet.invalidatePattern(Users, "4?")), 2)
      yield* eventually(
        Effect.map(on(b)(Cachet.get(Users, { id: 41 })), Option.isNone),
        1_000,
        "the pattern reached B's L1",
        2
      )
      assert.isTrue(Option.isNone(yield* on(b)(Cachet.get(Users, { id: 42 }))))
      const before = (yield* statsOf(b)).l1Hits
      assert.deepStrictEqual(yield* on(b)(Cachet.get(Users, { id: 5 })), Option.some("v5"))
      assert.strictEqual((yield* statsOf(b)).l1Hits, before + 1, "a key the pattern does not cover stays in B's L1")
    })
  )

  it.live("versions: a miss of version 2 where version 1 is stored is a versionMiss; the probe fills no L1", () =>
    Effect.gen(function* () {
      const prefix = `ver-${runId()}`
      const V1 = Keyspace.make({ name: "acct", key: "{id}", value: Schema.String, ttl: "1 hour" })
      const V2 = Keyspace.make({ name: "acct", key: "{id}", value: Schema.Number, ttl: "1 hour", version: 2 })
      const old = yield* Layer.build(runtime(prefix))
      yield* Effect.provide(Cachet.set(V1, { id: 1 }, "one"), old)
      yield* Effect.provide(Cachet.set(V1, { id: 2 }, "two"), old)
      yield* Effect.provide(Cachet.invalidate(V1, { id: 2 }), old) // a tombstone is no entry
      const next = yield* instance({ l2: { url: server.get().url, prefix, commandTimeout: 300 }, bus: false })
      for (const id of [1, 2, 3]) yield* on(next)(Effect.succeed(id).pipe(Strategy.cacheAside(V2, { id })))
      yield* eventually(
        Effect.map(on(next)(Cachet.stats), (s) => s.versionMisses === 1),
        1_000,
        "the probe counted the one miss an old entry explains",
        5
      )
      const stats = yield* on(next)(Cachet.stats)
      assert.strictEqual(stats.misses, 3)
      assert.strictEqual(stats.decodeErrors, 0)
      assert.strictEqual((yield* statsOf(next)).l1Entries, 3, "only the three version-2 entries are in the L1")
      assert.deepStrictEqual(yield* Effect.provide(Cachet.get(V1, { id: 1 }), old), Option.some("one"))
    })
  )

  it.effect(
    "property on Redis: a pattern deletes exactly its keyspace's matching keys, never another's",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const keyspaces = keyspacesOf()
        // One runtime on a prefix full of glob characters; each run clears the keyspaces first.
        const ctx = yield* Layer.build(runtime(`fz*[?]${runId()}`))
        const services = yield* Effect.context<never>()
        const clear = Effect.forEach(keyspaces, (ks) => Cachet.invalidateKeyspace(ks), { discard: true })
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(...patternInputs(12), (entries, target, pattern) =>
              Effect.runPromiseWith(services)(
                Effect.andThen(clear, patternRun(keyspaces, entries, target, pattern)).pipe(Effect.provide(ctx))
              )
            ),
            { numRuns: 60 }
          )
        )
      }),
    60_000
  )
})
