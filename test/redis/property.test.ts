/**
 * Property tests (fast-check) against a real server (one harness server for
 * the file): arbitrary prefixes, keyspace names, key parameters and JSON
 * values round-trip and never collide; arbitrary bytes in place of an entry
 * never crash a read, are counted and deleted.
 *
 * Under `it.live`: each property run builds runtimes on a shared client and
 * talks to Redis in real time; no virtual time is involved.
 */
import { assert, describe, it } from "@effect/vitest"
import { type Context, Effect, Exit, Layer, Option, Schema } from "effect"
import fc from "fast-check"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import { requireRedis } from "../harness/redis.ts"
import { rawClient, sharedServer } from "./helpers.ts"

const server = sharedServer()

const keyspaceName = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,15}$/)
// Short and long (hashed past maxKeyBytes), with every character class.
const param = fc.oneof(
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.constantFrom("", ":", "*", "?", "[a]", "{x}", "%3A", "%", "\\", "#", "a:b", "\u0000", "\uD800"),
  fc.string({ unit: "binary", minLength: 200, maxLength: 260 })
)
const prefix = fc.oneof(
  fc.string({ unit: "binary", minLength: 1, maxLength: 10 }),
  fc.constantFrom("a", "a:b", "a%3Ab", "*", "[x]?", "{t}", "~tag", "a:~tag")
)

/** Runs `effect` on a fresh Cachet runtime over a store with `prefix`, on the shared client. */
const onRuntime = <A, E>(
  io: Context.Context<IoRedis.IoRedis>,
  storePrefix: string,
  effect: Effect.Effect<A, E, Cachet.Cachet>
): Promise<A> =>
  Effect.runPromise(
    effect.pipe(
      Effect.provide(Cachet.layer().pipe(Layer.provide(RedisStore.layerClient({ prefix: storePrefix })))),
      Effect.provide(io)
    )
  )

const hasProtoKey = (u: unknown): boolean =>
  typeof u === "object" && u !== null && (Object.hasOwn(u, "__proto__") || Object.values(u).some(hasProtoKey))

describe.skipIf(!requireRedis())("RedisStore properties", () => {
  it.live(
    "distinct (prefix, keyspace, key) never collide, and JSON values round-trip",
    () =>
      Effect.gen(function* () {
        const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
        const redis = yield* rawClient(server.get().port)
        const writes = fc.array(
          fc.record({
            prefix,
            keyspace: keyspaceName,
            id: param,
            value: fc.oneof(
              { weight: 9, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
              {
                weight: 1,
                arbitrary: fc.constantFrom(
                  JSON.parse('{"__proto__":{"x":1}}'),
                  JSON.parse('[{"a":{"__proto__":null}}]')
                )
              }
            )
          }),
          { minLength: 1, maxLength: 8 }
        )
        let refused = 0
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(writes, async (writes) => {
              await redis.flushall()
              // The last write per (prefix, keyspace, id) wins.
              const expected = new Map<string, { prefix: string; keyspace: string; id: string; value: unknown }>()
              const byPrefix = new Map<string, Array<(typeof writes)[number]>>()
              for (const w of writes) {
                byPrefix.set(w.prefix, [...(byPrefix.get(w.prefix) ?? []), w])
              }
              for (const [storePrefix, group] of byPrefix) {
                const keyspaces = new Map<string, ReturnType<typeof makeKeyspace>>()
                const keyspaceOf = (name: string) => {
                  let ks = keyspaces.get(name)
                  if (ks === undefined) keyspaces.set(name, (ks = makeKeyspace(name)))
                  return ks
                }
                const read = await onRuntime(
                  io,
                  storePrefix,
                  Effect.gen(function* () {
                    for (const w of group) {
                      const exit = yield* Effect.exit(Cachet.set(keyspaceOf(w.keyspace), { id: w.id }, w.value))
                      const triple = JSON.stringify([w.prefix, w.keyspace, w.id])
                      if (hasProtoKey(w.value)) {
                        // Unreadable back, so refused on write (and a previous value stays).
                        assert.isTrue(Exit.isFailure(exit))
                        refused++
                        continue
                      }
                      assert.isTrue(Exit.isSuccess(exit))
                      expected.set(triple, { prefix: w.prefix, keyspace: w.keyspace, id: w.id, value: w.value })
                    }
                    const out: Array<readonly [string, unknown]> = []
                    for (const e of expected.values()) {
                      if (e.prefix !== storePrefix) continue
                      const got = yield* Cachet.get(keyspaceOf(e.keyspace), { id: e.id })
                      out.push([JSON.stringify([e.prefix, e.keyspace, e.id]), Option.getOrUndefined(got)])
                    }
                    return out
                  })
                )
                for (const [triple, got] of read) {
                  // JSON equality: what JSON can carry (-0 reads as 0).
                  assert.strictEqual(JSON.stringify(got), JSON.stringify(expected.get(triple)?.value), triple)
                }
              }
              // One Redis key per distinct triple: nothing shared, nothing extra.
              assert.strictEqual(await redis.dbsize(), expected.size)
            }),
            { numRuns: 120 }
          )
        )
        console.log(`round-trip property: 120 runs, ${refused} values with a __proto__ key refused on write`)
      }),
    60_000
  )

  it.live(
    "arbitrary bytes in place of an entry: never a crash, counted once, deleted",
    () =>
      Effect.gen(function* () {
        const io = yield* Layer.build(IoRedis.layer({ url: server.get().url }))
        const redis = yield* rawClient(server.get().port)
        const Items = makeKeyspace("item")
        const now = Date.now()
        const valid = JSON.stringify({ v: 1, c: now, f: now + 600_000, s: now + 600_000, t: ["x"], d: { a: [1, "b"] } })
        const garbage = fc.oneof(
          fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
          fc.string({ unit: "binary", maxLength: 64 }).map((s) => Buffer.from(s, "utf8")),
          fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(String(JSON.stringify(v))))
        )
        // Valid envelopes with one byte changed, or cut short: maybe still readable.
        const digit = fc.integer({ min: 0x30, max: 0x39 })
        const mutated = fc
          .tuple(fc.nat({ max: valid.length - 1 }), fc.oneof(fc.integer({ min: 0, max: 255 }), digit), fc.boolean())
          .map(([at, byte, cut]) => {
            const bytes = Buffer.from(valid)
            if (cut) return bytes.subarray(0, at)
            bytes[at] = byte
            return bytes
          })
        let corrupt = 0
        let readable = 0
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.oneof(garbage, mutated), fc.string({ maxLength: 8 }), async (raw, id) => {
              const key = `p:item:${encodeURIComponent(id).replace(/[%*?[\]{}\\#:]/g, "_")}`
              const param = key.slice("p:item:".length)
              await redis.set(key, raw)
              const [exit, stats] = await onRuntime(
                io,
                "p",
                Effect.all([Effect.exit(Cachet.get(Items, { id: param })), Cachet.stats])
              )
              assert.isTrue(Exit.isSuccess(exit), "a read never fails")
              const left = await redis.exists(key)
              if (stats.decodeErrors === 1) {
                corrupt++
                assert.strictEqual(left, 0, "a corrupt entry is deleted")
                assert.isTrue(Exit.isSuccess(exit) && Option.isNone(exit.value))
              } else {
                readable++
                assert.strictEqual(stats.decodeErrors, 0)
                assert.strictEqual(left, 1, "a readable entry stays")
              }
              assert.isUndefined(({} as Record<string, unknown>).polluted)
            }),
            { numRuns: 300 }
          )
        )
        console.log(
          `corruption property: 300 runs, ${corrupt} unreadable (counted and deleted), ${readable} still readable`
        )
        assert.isAbove(corrupt, 150)
        assert.isAbove(readable, 0, "mutations that keep a valid envelope are read")
      }),
    60_000
  )
})

function makeKeyspace(name: string) {
  return Keyspace.make({ name, key: "{id}", value: Schema.Json, ttl: "1 hour" })
}
