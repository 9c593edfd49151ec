/**
 * RedisStore's decode cache: the model (fast-check: an entry is reused only
 * for the very bytes and codec it was decoded from, within its bounds), and
 * the store on a harness server: unchanged bytes give the same decoded
 * value, any change in Redis (another writer, a corrupt overwrite, a
 * tombstone) decodes afresh, and an expired entry is not served from it.
 *
 * Real time (`it.live`) for the server tests (the store's times come from
 * the Effect Clock; the expiry case sets the clock through `TestClock`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, type Context, Effect, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { CacheStore, type StoredEntry } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import { DecodeCache } from "../../src/redis/internal/decodeCache.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import { requireRedis } from "../harness/redis.ts"
import { codecOf, rawClient, runId, sharedServer } from "./helpers.ts"

const entryOf = (value: unknown): StoredEntry => ({ value, createdAt: 0, freshUntil: 1, staleUntil: 1, tags: [] })

describe("DecodeCache (model)", () => {
  it("answers only the bytes and codec it remembered, within its bounds", () => {
    const codecs = [codecOf("a"), codecOf("b")]
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("set" as const),
        key: fc.integer({ min: 0, max: 7 }),
        bytes: fc.uint8Array({ maxLength: 40 }),
        codec: fc.integer({ min: 0, max: 1 })
      }),
      fc.record({
        kind: fc.constant("get" as const),
        key: fc.integer({ min: 0, max: 7 }),
        bytes: fc.uint8Array({ maxLength: 40 }),
        codec: fc.integer({ min: 0, max: 1 })
      }),
      fc.record({ kind: fc.constant("delete" as const), key: fc.integer({ min: 0, max: 7 }) })
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 8, max: 400 }),
        fc.array(op, { maxLength: 80 }),
        (entries, maxBytes, ops) => {
          const cache = new DecodeCache({ entries, maxBytes })
          // The model: what was last remembered per key (it may have been evicted since).
          const last = new Map<number, { bytes: Buffer; codec: number; entry: StoredEntry }>()
          for (const o of ops) {
            const key = `k${o.key}`
            if (o.kind === "delete") {
              cache.delete(key)
              last.delete(o.key)
            } else if (o.kind === "set") {
              // A reply buffer that the caller reuses afterwards: the cache must have copied it.
              const raw = Buffer.from(o.bytes)
              const entry = entryOf(o.key)
              cache.set(key, raw, codecs[o.codec]!, entry)
              last.set(o.key, { bytes: Buffer.from(o.bytes), codec: o.codec, entry })
              raw.fill(0xff)
            } else {
              const got = cache.get(key, Buffer.from(o.bytes), codecs[o.codec]!)
              const known = last.get(o.key)
              if (got !== undefined) {
                // Never a false positive: the same bytes, the same codec, the entry decoded from them.
                assert.isDefined(known)
                assert.isTrue(known!.bytes.equals(Buffer.from(o.bytes)))
                assert.strictEqual(known!.codec, o.codec)
                assert.strictEqual(got, known!.entry)
              }
            }
            assert.isAtMost(cache.size, entries)
          }
        }
      )
    )
  })

  it("keeps what it was given while within bounds, and a referenced entry over an unreferenced one", () => {
    const codec = codecOf("a")
    const cache = new DecodeCache({ entries: 2, maxBytes: 1_000 })
    const a = entryOf("a")
    cache.set("a", Buffer.from("aaaa"), codec, a)
    cache.set("b", Buffer.from("bbbb"), codec, entryOf("b"))
    assert.strictEqual(cache.get("a", Buffer.from("aaaa"), codec), a)
    // Full: "b" (not referenced) goes, "a" (referenced) stays.
    cache.set("c", Buffer.from("cccc"), codec, entryOf("c"))
    assert.strictEqual(cache.get("a", Buffer.from("aaaa"), codec), a)
    assert.isUndefined(cache.get("b", Buffer.from("bbbb"), codec))
    assert.isDefined(cache.get("c", Buffer.from("cccc"), codec))
    // A value larger than an eighth of maxBytes is never kept.
    cache.set("d", Buffer.alloc(200), codec, entryOf("d"))
    assert.isUndefined(cache.get("d", Buffer.alloc(200), codec))
  })
})

const server = sharedServer()

const Users = Keyspace.make({
  name: "dc-user",
  key: "{id}",
  value: Schema.Struct({ name: Schema.String, roles: Schema.Array(Schema.String) }),
  ttl: "1 hour"
})

const onStore = <A, E>(
  io: Context.Context<IoRedis.IoRedis>,
  options: Partial<RedisStore.Options>,
  effect: Effect.Effect<A, E, Cachet.Cachet>
): Effect.Effect<A, E> =>
  effect.pipe(
    Effect.provide(Cachet.layer().pipe(Layer.provide(RedisStore.layerClient({ prefix: "dc", ...options })))),
    Effect.provide(io)
  )

describe.skipIf(!requireRedis())("RedisStore decodeCache", () => {
  it.live("unchanged bytes give the same decoded value; any change in Redis decodes afresh", () =>
    Effect.gen(function* () {
      const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
      const redis = yield* rawClient(server.get().port)
      const id = runId()
      const full = `dc:dc-user:${id}`
      yield* onStore(
        io,
        {},
        Effect.gen(function* () {
          yield* Cachet.set(Users, { id }, { name: "Ada", roles: ["admin"] })
          const first = yield* Cachet.get(Users, { id })
          const second = yield* Cachet.get(Users, { id })
          assert.deepStrictEqual(first, Option.some({ name: "Ada", roles: ["admin"] }))
          // The same object: the second read compared bytes, it did not parse them.
          assert.strictEqual(Option.getOrThrow(second), Option.getOrThrow(first))
          const many = yield* Cachet.getMany(Users, [{ id }, { id }])
          assert.strictEqual(Option.getOrThrow(many[0]!), Option.getOrThrow(first))

          // Another writer changes the bytes (same length, another value): read afresh.
          const raw = (yield* Effect.promise(() => redis.get(full)))!
          yield* Effect.promise(() => redis.set(full, raw.replace('"Ada"', '"Bob"')))
          assert.deepStrictEqual(yield* Cachet.get(Users, { id }), Option.some({ name: "Bob", roles: ["admin"] }))

          // Corrupt bytes: a counted miss, not the remembered value.
          yield* Effect.promise(() => redis.set(full, raw.replace('"roles":["admin"]', '"roles":[1]')))
          const before = (yield* Cachet.stats).decodeErrors
          assert.deepStrictEqual(yield* Cachet.get(Users, { id }), Option.none())
          assert.strictEqual((yield* Cachet.stats).decodeErrors, before + 1)

          // Back to the original bytes, then invalidated: a tombstone is no entry.
          yield* Effect.promise(() => redis.set(full, raw))
          assert.isTrue(Option.isSome(yield* Cachet.get(Users, { id })))
          yield* Cachet.invalidate(Users, { id })
          assert.deepStrictEqual(yield* Cachet.get(Users, { id }), Option.none())
        })
      )
    })
  )

  it.live("an entry past its staleUntil (on the Effect Clock) is not served from the decode cache", () =>
    Effect.gen(function* () {
      const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
      const id = runId()
      yield* onStore(
        io,
        {},
        Effect.gen(function* () {
          yield* TestClock.setTime(Date.now())
          yield* Cachet.set(Users, { id }, { name: "Ada", roles: [] })
          assert.isTrue(Option.isSome(yield* Cachet.get(Users, { id })))
          assert.isTrue(Option.isSome(yield* Cachet.get(Users, { id })))
          yield* TestClock.adjust("2 hours")
          assert.deepStrictEqual(yield* Cachet.get(Users, { id }), Option.none())
        })
      ).pipe(Effect.provide(TestClock.layer()))
    })
  )

  it.live("the store itself serves no remembered entry past its staleUntil (get, batched or not, and getMany)", () =>
    Effect.gen(function* () {
      const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
      for (const batchReads of [true, false]) {
        yield* Effect.gen(function* () {
          yield* TestClock.setTime(Date.now())
          const store = yield* CacheStore
          const codec = codecOf("item")
          const key = `item:${runId()}`
          const now = yield* Clock.currentTimeMillis
          const entry: StoredEntry = {
            value: { n: 1 },
            createdAt: now,
            freshUntil: now + 1_000,
            staleUntil: now + 2_000,
            tags: []
          }
          yield* store.set(key, entry, codec)
          // Read twice: the second answer is the decode cache's.
          assert.deepStrictEqual((yield* store.get(key, codec))?.value, { n: 1 })
          assert.deepStrictEqual((yield* store.get(key, codec))?.value, { n: 1 })
          // Redis still holds the key (its PX runs on the server's real
          // clock); on the Effect Clock the entry is past its staleUntil.
          yield* TestClock.adjust("3 seconds")
          assert.strictEqual(yield* store.get(key, codec), undefined, `get, batchReads: ${batchReads}`)
          assert.deepStrictEqual(yield* store.getMany([key], codec), [undefined])
        }).pipe(
          Effect.provide(RedisStore.layerClient({ prefix: "dc-store", batchReads })),
          Effect.provide(io),
          Effect.provide(TestClock.layer())
        )
      }
    })
  )

  it.live(
    "replies are read as strings: any text value round-trips (U+FFFD and non-UTF-8 bytes through a second read as bytes)",
    () =>
      Effect.gen(function* () {
        const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
        const redis = yield* rawClient(server.get().port)
        const Texts = Keyspace.make({ name: "dc-text", key: "{id}", value: Schema.String, ttl: "1 hour" })
        yield* onStore(
          io,
          {},
          Effect.gen(function* () {
            // Any code points, U+FFFD and lone surrogates included (fast-check over a real server).
            const values = fc.sample(
              fc.oneof(fc.string({ unit: "binary", maxLength: 30 }), fc.constant("a\uFFFDb"), fc.constant("\n\uFFFD")),
              { numRuns: 60, seed: 7 }
            )
            for (const [i, value] of values.entries()) {
              const id = `${runId()}-${i}`
              yield* Cachet.set(Texts, { id }, value)
              assert.deepStrictEqual(yield* Cachet.get(Texts, { id }), Option.some(value), JSON.stringify(value))
              const many = yield* Cachet.getMany(Texts, [{ id }, { id: `${id}-absent` }])
              assert.deepStrictEqual(many, [Option.some(value), Option.none()])
            }
            // Bytes that are not UTF-8 (they read as U+FFFD in a string): a counted miss, deleted.
            const id = runId()
            const full = `dc:dc-text:${id}`
            yield* Cachet.set(Texts, { id }, "ok")
            const raw = (yield* Effect.promise(() => redis.getBuffer(full)))!
            const broken = Buffer.concat([
              raw.subarray(0, raw.length - 3),
              Buffer.from([0xff]),
              raw.subarray(raw.length - 2)
            ])
            yield* Effect.promise(() => redis.set(full, broken))
            const before = (yield* Cachet.stats).decodeErrors
            assert.deepStrictEqual(yield* Cachet.get(Texts, { id }), Option.none())
            assert.strictEqual((yield* Cachet.stats).decodeErrors, before + 1)
            assert.strictEqual(yield* Effect.promise(() => redis.exists(full)), 0, "the corrupt entry was deleted")
          })
        )
      })
  )

  it.live("decodeCache: false decodes every read", () =>
    Effect.gen(function* () {
      const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
      const id = runId()
      yield* onStore(
        io,
        { decodeCache: false },
        Effect.gen(function* () {
          yield* Cachet.set(Users, { id }, { name: "Ada", roles: [] })
          const first = Option.getOrThrow(yield* Cachet.get(Users, { id }))
          const second = Option.getOrThrow(yield* Cachet.get(Users, { id }))
          assert.deepStrictEqual(first, second)
          assert.notStrictEqual(first, second)
        })
      )
    })
  )
})
