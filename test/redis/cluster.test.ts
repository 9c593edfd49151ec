/**
 * RedisStore on a real 3-master Redis Cluster (one harness cluster for the
 * file): the conformance suite, keyspace invalidation over every master with
 * escaped glob characters, the Cachet runtime, and our hash-slot function
 * against `CLUSTER KEYSLOT`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import * as Cachet from "../../src/Cachet.ts"
import { escapeValue } from "../../src/internal/keyEncoding.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import { slotOf } from "../../src/redis/internal/routing.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as CacheStoreSuite from "../../src/testing/CacheStoreSuite.ts"
import { requireRedis } from "../harness/redis.ts"
import { rawClient, runId, sharedCluster } from "./helpers.ts"

const cluster = sharedCluster()

const storeLayer = (prefix: string) =>
  Layer.unwrap(Effect.sync(() => RedisStore.layer({ cluster: cluster.get().startupNodes, prefix })))

const runtime = (prefix: string) => Cachet.layer().pipe(Layer.provideMerge(storeLayer(prefix)))

/** Every key on every master, per node. */
const keysPerNode = Effect.suspend(() =>
  Effect.forEach(cluster.get().nodes, (node) =>
    Effect.map(node.command("KEYS", "*"), (out) =>
      out
        .split("\n")
        .filter((k) => k !== "")
        .sort()
    )
  )
)

const Users = Keyspace.make({
  name: "user",
  key: "user:{id}",
  value: Schema.Struct({ id: Schema.Number, org: Schema.Number }),
  ttl: "1 minute",
  tags: (_p, u) => [`org:${u.org}`]
})
const UsersArchive = Keyspace.make({ name: "user.archive-1/x_y", key: "{id}", value: Schema.Number, ttl: "1 minute" })
const Users2 = Keyspace.make({ name: "user2", key: "{id}", value: Schema.Number, ttl: "1 minute" })

describe.skipIf(!requireRedis())("RedisStore (cluster)", () => {
  CacheStoreSuite.suite("redis cluster", storeLayer(`conf-${runId()}`), { timeout: 20_000 })

  it.effect(
    "invalidateKeyspace deletes exactly that keyspace's keys on every master, glob characters escaped",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        // Two stores whose prefixes would collide as unescaped globs: "c*[ab]?"
        // matches "cZZaQ" and "c[ab]?" matches "caQ".
        const tricky = yield* Layer.build(runtime("c*[ab]?"))
        const neighbours = yield* Layer.build(runtime("cZZaQ"))
        const neighbours2 = yield* Layer.build(runtime("caQ"))
        const ids = Array.from({ length: 60 }, (_, i) => i)
        for (const ctx of [tricky, neighbours, neighbours2]) {
          yield* Effect.provide(
            Effect.forEach(
              ids,
              (id) =>
                Effect.all([
                  Cachet.set(Users, { id }, { id, org: id % 3 }),
                  Cachet.set(UsersArchive, { id }, id),
                  Cachet.set(Users2, { id: `${id}*?[` }, id)
                ]),
              { discard: true }
            ),
            ctx
          )
        }
        yield* Effect.provide(Cachet.invalidateTag("org:1"), tricky)
        yield* cluster.get().command("SET", "unrelated", "1")

        const before = yield* keysPerNode
        for (const keys of before) assert.isAbove(keys.length, 0, "keys live on every master")
        const all = before.flat()
        const userKeys = all.filter((k) => k.startsWith("c%2A%5Bab%5D%3F:user:"))
        assert.strictEqual(userKeys.length, 60)

        const deleted = yield* Effect.provide(Cachet.invalidateKeyspace(Users), tricky)
        assert.strictEqual(deleted, 60)

        const afterAll = (yield* keysPerNode).flat().sort()
        // The clear leaves one record of its own (loads that started before
        // it do not store): exactly one new key, the keyspace's.
        const records = afterAll.filter((k) => !all.includes(k))
        assert.deepStrictEqual(records, ["c%2A%5Bab%5D%3F:~clear:user:"])
        const after = afterAll.filter((k) => !records.includes(k))
        // This test's keys only: the cluster is shared with the file's other
        // tests, whose entries may expire on their own meanwhile (a
        // conformance case's short-lived key once did, between the two scans).
        const ours = (k: string) =>
          k === "unrelated" || ["c%2A%5Bab%5D%3F:", "cZZaQ:", "caQ:"].some((p) => k.startsWith(p))
        assert.deepStrictEqual(
          after.filter(ours),
          all.filter((k) => ours(k) && !userKeys.includes(k)).sort(),
          "nothing else was deleted"
        )
        assert.isTrue(after.includes("c%2A%5Bab%5D%3F:~tag:org:1"), "tag records are not entries")
        assert.strictEqual(after.filter((k) => k.startsWith("cZZaQ:user:")).length, 60)
        assert.strictEqual(after.filter((k) => k.startsWith("caQ:user:")).length, 60)
        assert.strictEqual(after.filter((k) => k.startsWith("c%2A%5Bab%5D%3F:user.archive-1/x_y:")).length, 60)
        assert.strictEqual(after.filter((k) => k.startsWith("c%2A%5Bab%5D%3F:user2:")).length, 60)

        // The other keyspace, whose keys contain escaped glob characters.
        assert.strictEqual(yield* Effect.provide(Cachet.invalidateKeyspace(Users2), tricky), 60)
        assert.strictEqual(yield* Effect.provide(Cachet.invalidateKeyspace(Users2), tricky), 0)
        const finalKeys = (yield* keysPerNode).flat()
        const entries = finalKeys.filter((k) => !k.includes(":~clear:"))
        assert.strictEqual(entries.filter((k) => k.includes(":user2:")).length, 120, "neighbours keep theirs")
        assert.isTrue(finalKeys.includes("unrelated"))
      }),
    30_000
  )

  it.effect(
    "invalidatePattern deletes exactly the matching keys of its keyspace on every master",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const prefix = `p*[${runId()}`
        const ns = escapeValue(prefix)
        const ctx = yield* Layer.build(runtime(prefix))
        const ids = Array.from({ length: 60 }, (_, i) => i)
        yield* Effect.provide(
          Effect.forEach(
            ids,
            (id) =>
              Effect.all([
                Cachet.set(Users, { id }, { id, org: 1 }),
                Cachet.set(Users2, { id }, id),
                Cachet.set(UsersArchive, { id: `4*${id}` }, id)
              ]),
            { discard: true }
          ),
          ctx
        )
        const mine = (keys: ReadonlyArray<string>) => keys.filter((k) => k.startsWith(`${ns}:`))
        const before = (yield* keysPerNode).map(mine)
        for (const keys of before) assert.isAbove(keys.length, 0, "keys live on every master")
        // user:4 and user:40..49; not user2's, not the archive's "4*..." ids.
        assert.strictEqual(yield* Effect.provide(Cachet.invalidatePattern(Users, "user:4*"), ctx), 11)
        const after = (yield* keysPerNode).flatMap(mine)
        const gone = before.flat().filter((k) => !after.includes(k))
        assert.deepStrictEqual(
          gone.sort(),
          [4, ...Array.from({ length: 10 }, (_, i) => 40 + i)].map((id) => `${ns}:user:user:${id}`).sort()
        )
        assert.isTrue(after.includes(`${ns}:~clear:user:`), "the clear record fences older loads")
        // Glob characters in parameters are literal: "4\*1*" is 4*1 and 4*10..19.
        assert.strictEqual(yield* Effect.provide(Cachet.invalidatePattern(UsersArchive, "4\\*1*"), ctx), 11)
        assert.strictEqual(yield* Effect.provide(Cachet.invalidatePattern(UsersArchive, "4\\*1*"), ctx), 0)
      }),
    30_000
  )

  it.effect(
    "Cachet over the cluster: cacheAside, tags in other slots, getMany across slots",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        let loads = 0
        const read = (id: number) =>
          Effect.sync(() => {
            loads++
            return { id, org: 7 }
          }).pipe(Strategy.cacheAside(Users, { id }))
        for (let id = 0; id < 20; id++) yield* read(id)
        for (let id = 0; id < 20; id++) yield* read(id)
        assert.strictEqual(loads, 20)
        yield* TestClock.adjust(1)
        yield* Cachet.invalidateTag("org:7")
        yield* TestClock.adjust(1)
        // Entries are ordered on the servers' clocks (real time): loads
        // that start within the same few milliseconds as the invalidation
        // read as invalidated (the safe side). Step past them.
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
        for (let id = 0; id < 20; id++) yield* read(id)
        assert.strictEqual(loads, 40)
        const many = yield* Cachet.getMany(
          Users,
          Array.from({ length: 30 }, (_, id) => ({ id }))
        )
        assert.strictEqual(many.filter(Option.isSome).length, 20)
        const io = yield* IoRedis.IoRedis
        assert.isTrue(io.isCluster)
      }).pipe(
        Effect.provide(
          Layer.unwrap(
            Effect.sync(() => {
              const io = IoRedis.layer({ cluster: cluster.get().startupNodes })
              return Cachet.layer().pipe(
                Layer.provideMerge(RedisStore.layerClient({ prefix: `rt-${runId()}` })),
                Layer.provideMerge(io)
              )
            })
          )
        )
      ),
    20_000
  )

  it.effect("slotOf agrees with CLUSTER KEYSLOT (fast-check)", () =>
    Effect.gen(function* () {
      const redis = yield* rawClient(cluster.get().nodes[0]!.port)
      const keys = fc.oneof(
        fc.string({ unit: "grapheme", maxLength: 30 }),
        fc.string({ unit: "binary", maxLength: 30 }),
        fc
          .tuple(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }))
          .map(([a, b, c]) => `${a}{${b}}${c}`),
        fc.constantFrom("{}", "{}a", "a{}", "{{a}}", "a{b}{c}", "}{", "user:1")
      )
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(keys, async (key) => {
            const expected = await redis.cluster("KEYSLOT", key)
            return slotOf(key) === expected
          }),
          { numRuns: 300 }
        )
      )
    })
  )
})
