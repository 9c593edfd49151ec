/**
 * RedisStore's `compress` option on a harness server: the stored form, both
 * forms read by every store (a rollout), ordering through the scripts, and
 * corrupt compressed bytes as counted misses (fast-check).
 *
 * Real time (`it.live`) where fast-check drives a Promise loop; the store's
 * times come from the Effect Clock either way.
 */
import * as zlib from "node:zlib"
import { assert, describe, it } from "@effect/vitest"
import { type Context, Effect, Exit, Layer, Option, Schema } from "effect"
import fc from "fast-check"
import { CacheStore, type EntryCodec } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import { requireRedis } from "../harness/redis.ts"
import { rawClient, runId, sharedServer } from "./helpers.ts"

const server = sharedServer()

const Docs = Keyspace.make({ name: "doc", key: "{id}", value: Schema.Struct({ body: Schema.String }), ttl: "1 hour" })

/** A value whose JSON is about `bytes` long and compresses well (text). */
const doc = (bytes: number, seed = 0) => ({
  body: Array.from({ length: Math.ceil(bytes / 12) }, (_, i) => `word${(i * 7 + seed) % 97} `)
    .join("")
    .slice(0, bytes)
})

const onStore = <A, E>(
  io: Context.Context<IoRedis.IoRedis>,
  options: Partial<RedisStore.Options>,
  effect: Effect.Effect<A, E, Cachet.Cachet | CacheStore>
): Effect.Effect<A, E> =>
  effect.pipe(
    Effect.provide(Cachet.layer().pipe(Layer.provideMerge(RedisStore.layerClient({ prefix: "z", ...options })))),
    Effect.provide(io)
  )

const codecs: ReadonlyArray<RedisStore.CompressOptions["codec"] & string> = ["brotli", "gzip", "zstd"]
const tagOf = { brotli: "br", gzip: "gz", zstd: "zs" } as const

describe.skipIf(!requireRedis())("RedisStore compress", () => {
  for (const codec of codecs) {
    it.live(`${codec}: a large value is stored compressed behind a JSON header, and reads back`, () =>
      Effect.gen(function* () {
        const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
        const redis = yield* rawClient(server.get().port)
        const id = `${codec}-${runId()}`
        const value = doc(8_000)
        const read = yield* onStore(
          io,
          { compress: { codec, minBytes: 1024 } },
          Effect.andThen(Cachet.set(Docs, { id }, value), Cachet.get(Docs, { id }))
        )
        assert.deepStrictEqual(read, Option.some(value))
        const raw = (yield* Effect.promise(() => redis.getBuffer(`z:doc:${id}`)))!
        const newline = raw.indexOf(10)
        assert.isAbove(newline, 0)
        const header = JSON.parse(raw.subarray(0, newline).toString("utf8"))
        assert.match(raw.subarray(0, newline).toString("utf8"), /^\{"o":\d+,"v":1,"z":/, "o first, for the scripts")
        assert.strictEqual(header.z, tagOf[codec])
        assert.isFalse("d" in header)
        assert.isBelow(raw.length, JSON.stringify(value).length / 3, "text compresses")
      })
    )
  }

  it.live("a value under minBytes stays plain JSON", () =>
    Effect.gen(function* () {
      const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
      const redis = yield* rawClient(server.get().port)
      const id = `small-${runId()}`
      yield* onStore(io, { compress: { minBytes: 1024 } }, Cachet.set(Docs, { id }, doc(500)))
      const raw = (yield* Effect.promise(() => redis.get(`z:doc:${id}`)))!
      assert.deepStrictEqual(JSON.parse(raw).d, doc(500))
      assert.notInclude(raw, '"z"')
    })
  )

  it.live("a rollout: stores with and without compress (or another codec) read each other's entries", () =>
    Effect.gen(function* () {
      const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
      const a = `a-${runId()}`
      const b = `b-${runId()}`
      const value = doc(4_000, 3)
      yield* onStore(io, { compress: { codec: "gzip" } }, Cachet.set(Docs, { id: a }, value))
      yield* onStore(io, {}, Cachet.set(Docs, { id: b }, value))
      const plainReader = yield* onStore(io, {}, Effect.all([Cachet.get(Docs, { id: a }), Cachet.stats]))
      assert.deepStrictEqual(plainReader[0], Option.some(value))
      assert.strictEqual(plainReader[1].decodeErrors, 0)
      const brotliReader = yield* onStore(
        io,
        { compress: { codec: "brotli" } },
        Effect.all([Cachet.get(Docs, { id: a }), Cachet.get(Docs, { id: b })])
      )
      assert.deepStrictEqual(brotliReader, [Option.some(value), Option.some(value)])
    })
  )

  it.live("compressed entries keep their order: a load that started before one is fenced, a delete counts it", () =>
    Effect.gen(function* () {
      const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
      const key = `doc:fence-${runId()}`
      const codec: EntryCodec = {
        keyspace: "doc",
        encode: Docs.encode,
        decode: Docs.decode,
        onCorrupt: () => assert.fail("nothing is corrupt here")
      }
      const now = Date.now()
      const entry = { value: doc(3_000), createdAt: now, freshUntil: now + 60_000, staleUntil: now + 60_000, tags: [] }
      const [order, fenced, deleted] = yield* onStore(
        io,
        { compress: { codec: "brotli" } },
        Effect.gen(function* () {
          const store = yield* CacheStore
          const order = yield* store.setOrdered!(key, entry, codec, undefined)
          const fenced = yield* store.setOrdered!(key, entry, codec, order! - 1)
          return [order, fenced, yield* store.delete(key)] as const
        })
      )
      assert.isNumber(order)
      assert.isUndefined(fenced, "the script read the compressed entry's order")
      assert.isTrue(deleted, "the delete script saw an entry, not a tombstone")
    })
  )

  it.live(
    "corrupt compressed bytes: never a crash, a counted miss, deleted (fast-check)",
    () =>
      Effect.gen(function* () {
        const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
        const redis = yield* rawClient(server.get().port)
        const now = Date.now()
        const body = Buffer.from(JSON.stringify({ body: "hello ".repeat(300) }))
        const header = (z: string) =>
          Buffer.from(`{"o":1,"v":1,"z":"${z}","c":${now},"f":${now + 600_000},"s":${now + 600_000},"t":[]}\n`)
        const packed = {
          br: zlib.brotliCompressSync(body),
          gz: zlib.gzipSync(body),
          zs: zlib.zstdCompressSync(body)
        }
        const tag = fc.constantFrom("br", "gz", "zs")
        // A valid compressed entry with one byte of its body changed, or cut.
        const mutated = fc
          .tuple(tag, fc.nat({ max: 200 }), fc.integer({ min: 0, max: 255 }), fc.boolean())
          .map(([z, at, byte, cut]) => {
            const bytes = Buffer.from(packed[z])
            const i = at % bytes.length
            if (cut) return Buffer.concat([header(z), bytes.subarray(0, i)])
            bytes[i] = bytes[i] === byte ? (byte + 1) % 256 : byte
            return Buffer.concat([header(z), bytes])
          })
        const garbage = fc
          .tuple(fc.constantFrom("br", "gz", "zs", "xx", ""), fc.uint8Array({ maxLength: 64 }))
          .map(([z, bytes]) => Buffer.concat([header(z), Buffer.from(bytes)]))
        // Bodies that inflate to valid JSON that is not the keyspace's value.
        const wrongData = fc
          .jsonValue({ maxDepth: 2 })
          .map((v) => Buffer.concat([header("br"), zlib.brotliCompressSync(Buffer.from(String(JSON.stringify(v))))]))
        let corrupt = 0
        let readable = 0
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.oneof(mutated, garbage, wrongData), fc.nat(), async (raw, n) => {
              const id = `c${n}-${runId()}`
              await redis.set(`z:doc:${id}`, raw)
              const [exit, stats] = await Effect.runPromise(
                onStore(
                  io,
                  { compress: { codec: "gzip" } },
                  Effect.all([Effect.exit(Cachet.get(Docs, { id })), Cachet.stats])
                )
              )
              assert.isTrue(Exit.isSuccess(exit), "a read never fails")
              const left = await redis.exists(`z:doc:${id}`)
              if (stats.decodeErrors === 1) {
                corrupt++
                assert.isTrue(Exit.isSuccess(exit) && Option.isNone(exit.value), "a miss")
                assert.strictEqual(left, 0, "deleted")
              } else {
                readable++
                assert.strictEqual(stats.decodeErrors, 0)
              }
            }),
            { numRuns: 200 }
          )
        )
        console.log(`compressed corruption: 200 runs, ${corrupt} unreadable (counted, deleted), ${readable} readable`)
        assert.isAbove(corrupt, 150)
      }),
    60_000
  )

  it.live("bytes that would inflate past maxEntryBytes are refused: a counted miss", () =>
    Effect.gen(function* () {
      const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
      const redis = yield* rawClient(server.get().port)
      const now = Date.now()
      const id = `bomb-${runId()}`
      // 2 MB of JSON in a few KB of brotli.
      const bomb = zlib.brotliCompressSync(Buffer.from(JSON.stringify({ body: "a".repeat(2_000_000) })))
      assert.isBelow(bomb.length, 10_000)
      const header = `{"o":1,"v":1,"z":"br","c":${now},"f":${now + 600_000},"s":${now + 600_000},"t":[]}\n`
      yield* Effect.promise(() => redis.set(`z:doc:${id}`, Buffer.concat([Buffer.from(header), bomb])))
      const [read, stats] = yield* onStore(
        io,
        { maxEntryBytes: 1024 * 1024 },
        Effect.all([Cachet.get(Docs, { id }), Cachet.stats])
      )
      assert.isTrue(Option.isNone(read))
      assert.strictEqual(stats.decodeErrors, 1)
    })
  )

  it("invalid compress options fail at the call, naming the option", () => {
    const make = (compress: RedisStore.CompressOptions) => () =>
      RedisStore.layer({ url: "redis://x", prefix: "p", compress })
    assert.throws(
      make({ codec: "lz4" as never }),
      /option "compress.codec" must be "brotli", "gzip" or "zstd", got lz4/
    )
    assert.throws(make({ minBytes: -1 }), /option "compress.minBytes" must be a non-negative integer, got -1/)
    assert.throws(make({ codec: "gzip", level: 12 }), /option "compress.level" must be an integer from 1 to 9/)
    assert.throws(make({ codec: "brotli", level: 1.5 }), /option "compress.level" must be an integer from 0 to 11/)
  })
})
