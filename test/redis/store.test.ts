/**
 * RedisStore on a standalone server: the conformance suite, then what is
 * specific to Redis (layout, escaping, size limit, unreadable entries, error
 * translation, configuration).
 *
 * One harness server for the file. Tests run under `it.effect` (TestClock):
 * store time comes from the Clock, I/O bounds from real timers.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Queue, Schema } from "effect"
import { Redis as EffectRedis } from "effect/persistence"
import { TestClock } from "effect/testing"
import { type CacheDecodeError, CacheStoreError, CacheValueTooLarge } from "../../src/CacheError.ts"
import { CacheStore, type EntryCodec, type StoredEntry } from "../../src/CacheStore.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as CacheStoreSuite from "../../src/testing/CacheStoreSuite.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { rawClient, runId, sharedServer } from "./helpers.ts"

const server = sharedServer()

/** The store with its own connection to the file's server (built lazily: the server starts in beforeAll). */
const storeLayer = (options: Partial<RedisStore.Options> = {}): Layer.Layer<CacheStore> =>
  Layer.unwrap(Effect.sync(() => RedisStore.layer({ url: server.get().url, prefix: "t", ...options })))

const Items = Keyspace.make({
  name: "item",
  key: "item:{id}",
  value: Schema.Struct({ id: Schema.Number, name: Schema.String }),
  ttl: "1 minute"
})

const counting = (keyspace: Keyspace.Any = Items) => {
  const corrupt: Array<CacheDecodeError> = []
  const codec: EntryCodec = {
    keyspace: keyspace.name,
    encode: keyspace.encode,
    decode: keyspace.decode,
    onCorrupt: (e) => void corrupt.push(e)
  }
  return { codec, corrupt }
}

const entryAt = (now: number, value: unknown, ttl = 60_000, tags: ReadonlyArray<string> = []): StoredEntry => ({
  value,
  createdAt: now,
  freshUntil: now + ttl,
  staleUntil: now + ttl,
  tags
})

/** Calls of a command so far, from INFO commandstats. */
const commandCalls = (name: string) =>
  Effect.map(
    Effect.suspend(() => server.get().command("INFO", "commandstats")),
    (info) => {
      const match = new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)
      return match === null ? 0 : Number(match[1])
    }
  )

describe.skipIf(!requireRedis())("RedisStore (standalone)", () => {
  CacheStoreSuite.suite("redis standalone", storeLayer({ prefix: `conf-${runId()}` }))

  describe("layout", () => {
    it.effect("an entry is a JSON envelope under <prefix>:<key> with a PX TTL of staleUntil - now", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const store = yield* CacheStore
        const { codec } = counting()
        const now = Date.now()
        yield* store.set("item:item:1", entryAt(now, { id: 1, name: "a" }, 30_000, ["users", "org:7"]), codec)
        const raw = yield* server.get().command("GET", "layout:item:item:1")
        const { o, ...rest } = JSON.parse(raw)
        assert.deepStrictEqual(rest, {
          v: 1,
          c: now,
          f: now + 30_000,
          s: now + 30_000,
          t: ["users", "org:7"],
          d: { id: 1, name: "a" }
        })
        // The order time is the server's TIME at the write, and comes first
        // (the write script reads it with one anchored match).
        assert.match(raw, /^\{"o":\d+,"v":1,/)
        assert.isAtMost(Math.abs(o - now), 5_000)
        const pttl = Number(yield* server.get().command("PTTL", "layout:item:item:1"))
        assert.isAbove(pttl, 29_000)
        assert.isAtMost(pttl, 30_000)
      }).pipe(Effect.provide(storeLayer({ prefix: "layout" })))
    )

    it.effect("a negative entry carries n:1", () =>
      Effect.gen(function* () {
        class Missing extends Schema.TaggedError<Missing>()("Missing", { id: Schema.Number }) {}
        const Lookups = Keyspace.make({
          name: "lookup",
          key: "{id}",
          value: Schema.String,
          ttl: "1 minute",
          negative: { ttl: "5 seconds", error: Missing }
        })
        yield* TestClock.setTime(Date.now())
        const store = yield* CacheStore
        const { codec } = counting(Lookups)
        const now = Date.now()
        yield* store.set("lookup:9", { ...entryAt(now, new Missing({ id: 9 }), 5_000), negative: true }, codec)
        const parsed = JSON.parse(yield* server.get().command("GET", "neg:lookup:9"))
        assert.strictEqual(parsed.n, 1)
        assert.deepStrictEqual(parsed.d, { _tag: "Missing", id: 9 })
        const read = yield* store.get("lookup:9", codec)
        assert.isTrue(read?.negative)
        assert.deepStrictEqual(read?.value, new Missing({ id: 9 }))
      }).pipe(Effect.provide(storeLayer({ prefix: "neg" })))
    )

    it.effect("the prefix is escaped: ':', glob characters and braces never reach a key unescaped", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const store = yield* CacheStore
        const { codec } = counting()
        yield* store.set("item:item:1", entryAt(Date.now(), { id: 1, name: "a" }), codec)
        yield* store.setTagTime("t", Date.now(), 60_000)
        const keys = (yield* server.get().command("KEYS", "a%3Ab*")).split("\n").sort()
        assert.deepStrictEqual(keys, ["a%3Ab%2A%5Bc%5D%3F%7Bx%7D:item:item:1", "a%3Ab%2A%5Bc%5D%3F%7Bx%7D:~tag:t"])
      }).pipe(Effect.provide(storeLayer({ prefix: "a:b*[c]?{x}" })))
    )

    it.effect("tag times are <prefix>:~tag:<tag> = <time>:<expiresAt> on the server's clock; never moved back", () =>
      Effect.gen(function* () {
        // This process's clock is 1 hour behind: the record is the server's time.
        const now = Date.now()
        yield* TestClock.setTime(now - 3_600_000)
        const store = yield* CacheStore
        yield* store.setTagTime("org:7", now - 3_600_000, 60_000)
        const [time, expiresAt] = String(yield* server.get().command("GET", "tags:~tag:org:7"))
          .split(":")
          .map(Number)
        assert.isAtMost(Math.abs(time! - now), 5_000)
        assert.strictEqual(expiresAt, time! + 60_000)
        assert.deepStrictEqual(yield* store.getTagTimes(["org:7", "org:8"]), [time, undefined])
        yield* store.setTagTime("org:7", 0, 600_000)
        const [again] = (yield* store.getTagTimes(["org:7"])) as Array<number>
        assert.isAtLeast(again!, time!, "never moved back")
        const pttl = Number(yield* server.get().command("PTTL", "tags:~tag:org:7"))
        assert.isAbove(pttl, 59_000)
      }).pipe(Effect.provide(storeLayer({ prefix: "tags" })))
    )

    it.effect("an invalidation leaves a tombstone {o, v, x} for tombstoneRetention; it reads as absent", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const store = yield* CacheStore
        const { codec } = counting()
        const now = Date.now()
        yield* store.set("item:item:1", entryAt(now, { id: 1, name: "a" }), codec)
        assert.isTrue(yield* store.delete("item:item:1"))
        const raw = String(yield* server.get().command("GET", "tomb:item:item:1"))
        assert.match(raw, /^\{"o":\d+,"v":1,"x":1\}$/)
        const pttl = Number(yield* server.get().command("PTTL", "tomb:item:item:1"))
        assert.isAbove(pttl, 110_000)
        assert.isAtMost(pttl, 120_000)
        assert.isUndefined(yield* store.get("item:item:1", codec))
        assert.deepStrictEqual(yield* store.getMany(["item:item:1"], codec), [undefined])
        assert.isFalse(yield* store.delete("item:item:1"), "a tombstone is not an entry")
      }).pipe(Effect.provide(storeLayer({ prefix: "tomb" })))
    )

    it.effect("getMany and setMany over thousands of keys (chunked MGET, pipelined SET)", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const store = yield* CacheStore
        const { codec } = counting()
        const now = Date.now()
        const keys = Array.from({ length: 2_500 }, (_, i) => `item:item:${i}`)
        yield* store.setMany(
          keys.filter((_, i) => i % 3 !== 0).map((k, i) => [k, entryAt(now, { id: i, name: k })]),
          codec
        )
        const read = yield* store.getMany(keys, codec)
        assert.strictEqual(read.length, keys.length)
        assert.strictEqual(read.filter((e) => e !== undefined).length, keys.filter((_, i) => i % 3 !== 0).length)
        read.forEach((e, i) => {
          assert.strictEqual(e === undefined, i % 3 === 0)
        })
        assert.strictEqual(yield* store.deleteMany(keys), keys.filter((_, i) => i % 3 !== 0).length)
      }).pipe(Effect.provide(storeLayer({ prefix: "bulk" })))
    )
  })

  describe("maxEntryBytes", () => {
    it.effect("an entry over the limit fails with CacheValueTooLarge before any command is sent", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const store = yield* CacheStore
        const { codec } = counting()
        const now = Date.now()
        const setsBefore = yield* commandCalls("set")
        const error = yield* Effect.flip(
          store.set("item:item:big", entryAt(now, { id: 1, name: "é".repeat(600) }), codec)
        )
        assert.instanceOf(error, CacheValueTooLarge)
        if (error instanceof CacheValueTooLarge) {
          assert.strictEqual(error.maxBytes, 1_000)
          assert.isAbove(error.bytes, 1_200, "measured in UTF-8 bytes, envelope included")
          assert.strictEqual(error.key, "item:item:big")
        }
        // setMany checks every entry before sending anything.
        const many = yield* Effect.flip(
          store.setMany(
            [
              ["item:item:small", entryAt(now, { id: 2, name: "ok" })],
              ["item:item:big", entryAt(now, { id: 1, name: "x".repeat(2_000) })]
            ],
            codec
          )
        )
        assert.instanceOf(many, CacheValueTooLarge)
        assert.strictEqual(yield* commandCalls("set"), setsBefore)
        assert.strictEqual(yield* server.get().command("EXISTS", "size:item:item:small", "size:item:item:big"), "0")
        // Under the limit it is stored.
        yield* store.set("item:item:ok", entryAt(now, { id: 3, name: "x".repeat(900) }), codec)
        assert.isDefined(yield* store.get("item:item:ok", codec))
      }).pipe(Effect.provide(storeLayer({ prefix: "size", maxEntryBytes: 1_000 })))
    )

    it.effect("the default limit is 1 MiB", () =>
      Effect.gen(function* () {
        const store = yield* CacheStore
        const { codec } = counting()
        const error = yield* Effect.flip(
          store.set("item:item:1", entryAt(0, { id: 1, name: "x".repeat(1024 * 1024) }), codec)
        )
        assert.instanceOf(error, CacheValueTooLarge)
        if (error instanceof CacheValueTooLarge) assert.strictEqual(error.maxBytes, 1024 * 1024)
      }).pipe(Effect.provide(storeLayer({ prefix: "size-default" })))
    )
  })

  describe("unreadable entries", () => {
    const now = Date.now()
    const valid = (d: unknown, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ v: 1, c: now, f: now + 600_000, s: now + 600_000, t: [], ...extra, d })
    const cases: ReadonlyArray<readonly [string, string | Buffer]> = [
      ["bytes that are not UTF-8", Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0x7d])],
      ["not JSON", "{not json"],
      ["an empty string", ""],
      ["JSON null", "null"],
      ["a JSON array", "[1,2,3]"],
      ["a JSON string", '"hello"'],
      ["another envelope version", valid({ id: 1, name: "a" }).replace('"v":1', '"v":2')],
      ["no version", JSON.stringify({ c: now, f: now, s: now + 1e6, t: [], d: 1 })],
      ["missing data", JSON.stringify({ v: 1, c: now, f: now, s: now + 600_000, t: [] })],
      ["missing tags", JSON.stringify({ v: 1, c: now, f: now, s: now + 600_000, d: { id: 1, name: "a" } })],
      ["a time that is a string", valid({ id: 1, name: "a" }, { s: "later" })],
      ["tags that are not strings", valid({ id: 1, name: "a" }, { t: [1] })],
      ["an unknown field", valid({ id: 1, name: "a" }, { q: 1 })],
      ["a bad tombstone flag", valid({ id: 1, name: "a" }, { x: 2 })],
      ["a bad order time", `{"o":"soon",${valid({ id: 1, name: "a" }).slice(1)}`],
      ["a bad negative flag", valid({ id: 1, name: "a" }, { n: true })],
      ["a negative entry where negative caching is off", valid({ _tag: "X" }, { n: 1 })],
      ["data the Schema rejects", valid({ id: "one", name: 2 })],
      ["a __proto__ key at the top", `{"__proto__":{"polluted":true},${valid({ id: 1, name: "a" }).slice(1)}`],
      ["a nested __proto__ key", valid({ id: 1, name: "a" }).replace('"d":{', '"d":{"__proto__":{"polluted":true},')],
      [
        "an escaped __proto__ key",
        valid({ id: 1, name: "a" }).replace('"d":{', '"d":{"\\u005f_proto__":{"polluted":true},')
      ]
    ]

    for (const [title, raw] of cases) {
      it.effect(`${title}: a miss, reported once, deleted (get and getMany)`, () =>
        Effect.gen(function* () {
          yield* TestClock.setTime(now)
          const store = yield* CacheStore
          const redis = yield* rawClient(server.get().port)
          const { codec, corrupt } = counting()
          const id = runId()
          yield* Effect.promise(() => redis.set(`bad:item:item:${id}`, raw))
          assert.isUndefined(yield* store.get(`item:item:${id}`, codec))
          assert.strictEqual(corrupt.length, 1)
          assert.strictEqual(corrupt[0]?.key, `item:item:${id}`)
          assert.strictEqual(yield* Effect.promise(() => redis.exists(`bad:item:item:${id}`)), 0, "deleted")

          // getMany: the same, with valid neighbours untouched.
          yield* Effect.promise(() => redis.set(`bad:item:item:${id}`, raw))
          yield* store.set(`item:item:${id}-ok`, entryAt(now, { id: 2, name: "b" }), codec)
          const read = yield* store.getMany([`item:item:${id}-ok`, `item:item:${id}`, `item:item:${id}-none`], codec)
          assert.deepStrictEqual(
            read.map((e) => e?.value),
            [{ id: 2, name: "b" }, undefined, undefined]
          )
          assert.strictEqual(corrupt.length, 2)
          assert.strictEqual(yield* Effect.promise(() => redis.exists(`bad:item:item:${id}`)), 0, "deleted")
          assert.strictEqual(yield* Effect.promise(() => redis.exists(`bad:item:item:${id}-ok`)), 1, "kept")
          assert.isUndefined(({} as Record<string, unknown>).polluted, "no prototype pollution")
        }).pipe(Effect.provide(storeLayer({ prefix: "bad" })))
      )
    }

    it.effect("an entry past staleUntil on the Clock reads as a miss, not as corrupt, and stays", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(now)
        const store = yield* CacheStore
        const { codec, corrupt } = counting()
        yield* store.set("item:item:old", entryAt(now, { id: 1, name: "a" }, 1_000), codec)
        yield* TestClock.adjust(1_000)
        assert.isUndefined(yield* store.get("item:item:old", codec))
        assert.strictEqual(corrupt.length, 0)
        assert.strictEqual(yield* server.get().command("EXISTS", "old:item:item:old"), "1")
      }).pipe(Effect.provide(storeLayer({ prefix: "old" })))
    )
  })

  describe("errors", () => {
    it.effect("an error reply is a Protocol error and does not open the circuit", () =>
      Effect.gen(function* () {
        const store = yield* CacheStore
        const { codec } = counting()
        yield* server.get().command("RPUSH", "proto:item:item:list", "x")
        for (let i = 0; i < 8; i++) {
          const error = yield* Effect.flip(store.get("item:item:list", codec))
          assert.instanceOf(error, CacheStoreError)
          assert.strictEqual(error.reason, "Protocol")
          assert.strictEqual(error.op, "get")
          assert.strictEqual(error.store, "redis")
          assert.match(error.message, /WRONGTYPE/)
        }
        yield* store.ping
      }).pipe(Effect.provide(storeLayer({ prefix: "proto", breaker: { failures: 2 } })))
    )

    it.live("no server: Unavailable at once, then CircuitOpen after `failures` (real time: connection refusals)", () =>
      Effect.gen(function* () {
        const dead = yield* RedisServer.start()
        yield* dead.kill
        const reasons = yield* Effect.gen(function* () {
          const store = yield* CacheStore
          const { codec } = counting()
          const out: Array<string> = []
          for (let i = 0; i < 6; i++) {
            const started = performance.now()
            const error = yield* Effect.flip(store.get("item:item:1", codec))
            assert.isBelow(performance.now() - started, 600, "bounded by commandTimeout")
            out.push(error.reason)
          }
          return out
        }).pipe(
          Effect.provide(
            RedisStore.layer({ url: dead.url, prefix: "dead", breaker: { failures: 3, openFor: "1 minute" } })
          )
        )
        assert.deepStrictEqual(reasons.slice(0, 3), ["Unavailable", "Unavailable", "Unavailable"])
        assert.deepStrictEqual(reasons.slice(3), ["CircuitOpen", "CircuitOpen", "CircuitOpen"])
      })
    )
  })

  describe("options and configuration", () => {
    it("invalid options throw at the call, naming the option", () => {
      assert.throws(() => RedisStore.layer({ prefix: "", url: "redis://x:1" }), /"prefix"/)
      assert.throws(() => RedisStore.layer({ prefix: "p" }), /exactly one of/)
      assert.throws(() => RedisStore.layer({ prefix: "p", url: "redis://x:1", cluster: ["x:1"] }), /exactly one of/)
      assert.throws(() => RedisStore.layer({ prefix: "p", url: "redis://x:1", maxEntryBytes: 0 }), /"maxEntryBytes"/)
      assert.throws(
        () => RedisStore.layer({ prefix: "p", url: "redis://x:1", commandTimeout: "soon" as never }),
        /"commandTimeout"/
      )
      assert.throws(
        () => RedisStore.layer({ prefix: "p", url: "redis://x:1", breaker: { failures: 0 } }),
        /"breaker.failures"/
      )
      assert.throws(() => RedisStore.layer({ prefix: "p", cluster: ["no-port"] }), /host:port/)
      assert.throws(() => IoRedis.layer({ url: "http://x" }), /redis:\/\//)
      assert.throws(() => IoRedis.layer({}), /exactly one of/)
    })

    it.effect("IoRedis.config reads REDIS_URL or REDIS_CLUSTER_NODES, exactly one", () =>
      Effect.gen(function* () {
        const read = (env: Record<string, string>) => Effect.exit(IoRedis.config.parse(ConfigProvider.fromUnknown(env)))
        const url = yield* read({ REDIS_URL: "redis://cache:6379", REDIS_COMMAND_TIMEOUT: "250 millis" })
        assert.isTrue(Exit.isSuccess(url))
        if (Exit.isSuccess(url)) {
          assert.strictEqual(url.value.url, "redis://cache:6379")
          assert.isDefined(url.value.commandTimeout)
        }
        const cluster = yield* read({
          REDIS_CLUSTER_NODES: "10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002",
          REDIS_PASSWORD: "s3cret"
        })
        assert.isTrue(Exit.isSuccess(cluster))
        if (Exit.isSuccess(cluster)) {
          assert.deepStrictEqual(cluster.value.cluster, [
            { host: "10.0.0.1", port: 7000 },
            { host: "10.0.0.2", port: 7001 },
            { host: "::1", port: 7002 }
          ])
          assert.strictEqual(cluster.value.redisOptions?.password, "s3cret")
        }
        assert.isTrue(Exit.isFailure(yield* read({})))
        assert.isTrue(Exit.isFailure(yield* read({ REDIS_URL: "redis://a:1", REDIS_CLUSTER_NODES: "b:2" })))
        assert.isTrue(Exit.isFailure(yield* read({ REDIS_CLUSTER_NODES: "b" })))
      })
    )

    it.effect("IoRedis.layerConfig builds the client from configuration", () =>
      Effect.gen(function* () {
        const io = yield* IoRedis.IoRedis
        assert.strictEqual(io.commandTimeout, 250)
        const redis = yield* EffectRedis.Redis
        assert.strictEqual(yield* redis.send<string>("PING"), "PONG")
      }).pipe(
        Effect.provide(
          Layer.unwrap(
            Effect.sync(() =>
              IoRedis.layerConfig().pipe(
                Layer.provide(
                  ConfigProvider.layer(
                    ConfigProvider.fromUnknown({ REDIS_URL: server.get().url, REDIS_COMMAND_TIMEOUT: "250 millis" })
                  )
                )
              )
            )
          )
        )
      )
    )

    it.effect("RedisStore.layerConfig builds the store from configuration", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.now())
        const store = yield* CacheStore
        const { codec } = counting()
        yield* store.set("item:item:1", entryAt(Date.now(), { id: 1, name: "cfg" }), codec)
        assert.strictEqual(yield* server.get().command("EXISTS", "from-config:item:item:1"), "1")
      }).pipe(
        Effect.provide(
          Layer.unwrap(
            Effect.sync(() =>
              RedisStore.layerConfig().pipe(
                Layer.provide(
                  ConfigProvider.layer(
                    ConfigProvider.fromUnknown({ REDIS_URL: server.get().url, CACHET_REDIS_PREFIX: "from-config" })
                  )
                )
              )
            )
          )
        )
      )
    )
  })

  describe("IoRedis: effect's generic Redis service on the same client", () => {
    it.live("send, eval, subscribe and reserve work, and close with the layer (real time: pub/sub delivery)", () =>
      Effect.gen(function* () {
        const redis = yield* EffectRedis.Redis
        assert.strictEqual(yield* redis.send<string>("SET", "generic:k", "v"), "OK")
        assert.strictEqual(yield* redis.send<string>("GET", "generic:k"), "v")
        const script = EffectRedis.script((key: string) => [key], {
          numberOfKeys: 1,
          lua: "return redis.call('GET', KEYS[1])"
        }).withReturnType<string>()
        assert.strictEqual(yield* redis.eval(script)("generic:k"), "v")

        const messages = yield* Effect.scoped(
          Effect.gen(function* () {
            const queue = yield* redis.subscribe("generic:channel")
            // Publish until the subscription is live (SUBSCRIBE is asynchronous).
            for (let i = 0; i < 100; i++) {
              const receivers = yield* redis.send<number>("PUBLISH", "generic:channel", "hello")
              if (receivers > 0) break
              yield* Effect.sleep(20)
            }
            return yield* Queue.take(queue)
          })
        )
        assert.deepStrictEqual(messages, { channel: "generic:channel", message: "hello" })

        const popped = yield* Effect.scoped(
          Effect.gen(function* () {
            const connection = yield* redis.reserve
            yield* redis.send("RPUSH", "generic:list", "a")
            return yield* connection.send<[string, string]>("BLPOP", "generic:list", "1")
          })
        )
        assert.deepStrictEqual(popped, ["generic:list", "a"])

        const io = yield* IoRedis.IoRedis
        assert.isFalse(io.isCluster)
        assert.strictEqual(io.commandTimeout, 500)
      }).pipe(Effect.provide(Layer.unwrap(Effect.sync(() => IoRedis.layer({ url: server.get().url })))))
    )
  })
})
