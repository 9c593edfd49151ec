/**
 * The store conformance suite: the behaviour every `CacheStore` must have,
 * as vitest tests. Our memory and Redis stores pass it; a store you write
 * should too.
 *
 * **Details**
 *
 * Each test builds a fresh store from the layer under Effect's `TestClock`, so
 * expiry is checked at exact times: a store must read time from Effect's
 * `Clock` (a remote store may keep its own server-side expiry as a backstop,
 * but must also check `staleUntil` on read). Tests use keys unique to the run,
 * so a shared backend (one Redis for the whole suite) is fine.
 *
 * This module imports `@effect/vitest`: load it from test files only.
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import type { CacheDecodeError } from "../CacheError.ts"
import { CacheStore, type EntryCodec, type StoredEntry } from "../CacheStore.ts"
import * as Keyspace from "../Keyspace.ts"

class Profile extends Schema.Class<Profile>("cachet/testing/Profile")({
  id: Schema.Number,
  name: Schema.String,
  joined: Schema.Date,
  tags: Schema.Array(Schema.String)
}) {}

class NotFound extends Schema.TaggedError<NotFound>("cachet/testing/NotFound")("NotFound", { id: Schema.Number }) {}

/**
 * Options of {@link suite}.
 *
 * - `timeout`: per test, in milliseconds. Default 10,000.
 *
 * @example
 * ```ts
 * import type { CacheStoreSuite } from "cachet/testing"
 * const options: CacheStoreSuite.Options = { timeout: 20_000 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly timeout?: number | undefined
}

/**
 * Registers the conformance tests for the store built by `layer`.
 *
 * @example
 * ```ts
 * import { CacheStore } from "cachet"
 * import { CacheStoreSuite } from "cachet/testing"
 *
 * CacheStoreSuite.suite("memory", CacheStore.layerMemory({ capacity: 1000 }))
 * ```
 *
 * @since 0.1.0
 * @category suites
 */
export const suite = <E>(name: string, layer: Layer.Layer<CacheStore, E>, options?: Options): void => {
  const timeout = options?.timeout ?? 10_000
  // Unique per run, so runs against a shared backend never see each other.
  const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`
  let counter = 0
  const fresh = (label: string) => `conf${run}${++counter}-${label}`

  const keyspace = Keyspace.make({
    name: "conformance",
    key: "p:{id}",
    value: Profile,
    ttl: "1 minute",
    negative: { ttl: "5 seconds", error: NotFound }
  })
  const makeCodec = () => {
    const corrupt: Array<CacheDecodeError> = []
    const codec: EntryCodec = {
      keyspace: keyspace.name,
      encode: keyspace.encode,
      decode: keyspace.decode,
      onCorrupt: (e) => void corrupt.push(e)
    }
    return { codec, corrupt }
  }
  const profile = (id: number, name = `user ${id}`) =>
    new Profile({ id, name, joined: new Date(1_700_000_000_000 + id), tags: ["a", "b"] })
  const entryAt = (now: number, value: unknown, ttl = 60_000, stale = 0, tags: ReadonlyArray<string> = []) =>
    ({ value, createdAt: now, freshUntil: now + ttl, staleUntil: now + ttl + stale, tags }) satisfies StoredEntry

  const test = (
    title: string,
    body: (store: CacheStore["Service"], now: number) => Effect.Effect<void, unknown, never>
  ) =>
    it.effect(
      title,
      () =>
        Effect.gen(function* () {
          // A realistic epoch: stores may compare against server time.
          yield* TestClock.setTime(Date.now())
          const store = yield* CacheStore
          const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
          yield* body(store, now)
        }).pipe(Effect.provide(layer)),
      timeout
    )

  describe(`CacheStore conformance: ${name}`, () => {
    test("a missing key reads as undefined", (store) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        assert.isUndefined(yield* store.get(`${fresh("missing")}:1`, codec))
      }))

    test("set then get returns the value, times and tags", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const key = `${fresh("rt")}:1`
        const entry = entryAt(now, profile(1), 60_000, 30_000, ["users", "org:7"])
        yield* store.set(key, entry, codec)
        const read = yield* store.get(key, codec)
        assert.isDefined(read)
        assert.deepStrictEqual(read!.value, profile(1))
        assert.strictEqual(read!.createdAt, entry.createdAt)
        assert.strictEqual(read!.freshUntil, entry.freshUntil)
        assert.strictEqual(read!.staleUntil, entry.staleUntil)
        assert.deepStrictEqual([...read!.tags], ["users", "org:7"])
        assert.isNotTrue(read!.negative)
      }))

    test("a write replaces the previous entry", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const key = `${fresh("over")}:1`
        yield* store.set(key, entryAt(now, profile(1, "old")), codec)
        yield* store.set(key, entryAt(now, profile(1, "new")), codec)
        const read = yield* store.get(key, codec)
        assert.strictEqual((read!.value as Profile).name, "new")
      }))

    test("an entry expires exactly at staleUntil, on Effect's Clock", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const key = `${fresh("exp")}:1`
        yield* store.set(key, entryAt(now, profile(1), 1_000, 500), codec)
        yield* TestClock.adjust(1_499)
        assert.isDefined(yield* store.get(key, codec), "still inside its stale window")
        yield* TestClock.adjust(1)
        assert.isUndefined(yield* store.get(key, codec), "gone at staleUntil")
      }))

    test("an entry written already expired is not readable", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const key = `${fresh("past")}:1`
        yield* store.set(
          key,
          { value: profile(1), createdAt: now - 10, freshUntil: now - 5, staleUntil: now, tags: [] },
          codec
        )
        assert.isUndefined(yield* store.get(key, codec))
      }))

    test("negative entries keep their flag and error", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const key = `${fresh("neg")}:1`
        yield* store.set(key, { ...entryAt(now, new NotFound({ id: 3 }), 5_000), negative: true }, codec)
        const read = yield* store.get(key, codec)
        assert.isTrue(read?.negative === true)
        assert.deepStrictEqual(read!.value, new NotFound({ id: 3 }))
      }))

    test("getMany is aligned with its keys", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const prefix = fresh("many")
        const keys = Array.from({ length: 20 }, (_, i) => `${prefix}:${i}`)
        yield* store.setMany(
          keys.filter((_, i) => i % 2 === 0).map((k, i) => [k, entryAt(now, profile(i * 2))] as const),
          codec
        )
        const read = yield* store.getMany(keys, codec)
        assert.strictEqual(read.length, keys.length)
        read.forEach((entry, i) => {
          if (i % 2 === 0) assert.strictEqual((entry?.value as Profile | undefined)?.id, i)
          else assert.isUndefined(entry)
        })
        assert.deepStrictEqual(yield* store.getMany([], codec), [])
      }))

    test("delete and deleteMany report what existed", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const prefix = fresh("del")
        yield* store.set(`${prefix}:1`, entryAt(now, profile(1)), codec)
        yield* store.set(`${prefix}:2`, entryAt(now, profile(2)), codec)
        yield* store.set(`${prefix}:3`, entryAt(now, profile(3)), codec)
        assert.isTrue(yield* store.delete(`${prefix}:1`))
        assert.isFalse(yield* store.delete(`${prefix}:1`))
        assert.strictEqual(yield* store.deleteMany([`${prefix}:2`, `${prefix}:3`, `${prefix}:4`]), 2)
        assert.deepStrictEqual(yield* store.getMany([`${prefix}:1`, `${prefix}:2`, `${prefix}:3`], codec), [
          undefined,
          undefined,
          undefined
        ])
      }))

    test("deletePrefix deletes exactly the keys under the prefix", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const ns = fresh("pfx")
        const inside = [`${ns}:1`, `${ns}:a%3Ab`, `${ns}:%2A`, `${ns}:x:y`]
        const outside = [`${ns}2:1`, `${ns}x:1`, `${ns.slice(0, -1)}:1`]
        for (const k of [...inside, ...outside]) yield* store.set(k, entryAt(now, profile(1)), codec)
        const deleted = yield* store.deletePrefix(`${ns}:`)
        assert.strictEqual(deleted, inside.length)
        for (const k of inside) assert.isUndefined(yield* store.get(k, codec), k)
        for (const k of outside) assert.isDefined(yield* store.get(k, codec), k)
      }))

    test("deletePattern (where the store has it) deletes exactly the matching keys under the prefix", (store, now) =>
      Effect.gen(function* () {
        if (store.deletePattern === undefined) return
        const { codec } = makeCodec()
        const ns = fresh("pat")
        // Keys as the runtime stores them: escaped values (`a*b` is `a%2Ab`).
        const matching = [`${ns}:4`, `${ns}:41`, `${ns}:4%2Ab`, `${ns}:4%3Ax`]
        const inside = [`${ns}:5`, `${ns}:14`, `${ns}:x4`]
        const outside = [`${ns}2:4`, `${ns}x:41`, `${ns.slice(0, -1)}:4`]
        for (const k of [...matching, ...inside, ...outside]) yield* store.set(k, entryAt(now, profile(1)), codec)
        assert.strictEqual(yield* store.deletePattern(`${ns}:`, "4*"), matching.length)
        for (const k of matching) assert.isUndefined(yield* store.get(k, codec), k)
        for (const k of [...inside, ...outside]) assert.isDefined(yield* store.get(k, codec), k)
        yield* store.set(`${ns}:a%2Ab`, entryAt(now, profile(1)), codec)
        yield* store.set(`${ns}:axb`, entryAt(now, profile(1)), codec)
        assert.strictEqual(yield* store.deletePattern(`${ns}:`, "a\\*b"), 1, "an escaped * is the literal *")
        assert.isDefined(yield* store.get(`${ns}:axb`, codec))
      }))

    test("has (where the store has it): an entry yes; a deleted, expired or absent key no", (store, now) =>
      Effect.gen(function* () {
        if (store.has === undefined) return
        const { codec } = makeCodec()
        const ns = fresh("has")
        yield* store.set(`${ns}:1`, entryAt(now, profile(1)), codec)
        yield* store.set(`${ns}:2`, entryAt(now, profile(2)), codec)
        yield* store.delete(`${ns}:2`)
        yield* store.set(`${ns}:3`, { ...entryAt(now, profile(3)), freshUntil: now + 10, staleUntil: now + 10 }, codec)
        yield* TestClock.adjust(20)
        assert.deepStrictEqual(yield* store.has([`${ns}:1`, `${ns}:2`, `${ns}:4`]), [true, false, false])
        assert.isFalse((yield* store.has([`${ns}:3`]))[0], "expired")
      }))

    test("tag times: unset, recorded, never moved back, forgotten after retention", (store, now) =>
      Effect.gen(function* () {
        const tag = fresh("tag")
        const other = fresh("tag-other")
        assert.deepStrictEqual(yield* store.getTagTimes([tag, other]), [undefined, undefined])
        if (store.setOrdered === undefined) {
          yield* store.setTagTime(tag, now, 10_000)
          assert.deepStrictEqual(yield* store.getTagTimes([tag, other]), [now, undefined])
          yield* store.setTagTime(tag, now - 5, 10_000)
          assert.deepStrictEqual(yield* store.getTagTimes([tag]), [now], "a late, older invalidation does not win")
          yield* TestClock.adjust(10_001)
          assert.deepStrictEqual(yield* store.getTagTimes([tag]), [undefined])
          return
        }
        // A store that orders writes on its own clock records its own time
        // (a shared store's server time): recorded, never moved back, and
        // forgotten after the retention by that clock (real time: bounded
        // polling, the server's clock does not follow the TestClock; the
        // TestClock moves too, for copies kept in the process).
        yield* store.setTagTime(tag, now, 200)
        const [first, none] = yield* store.getTagTimes([tag, other])
        assert.isNumber(first)
        assert.isUndefined(none)
        yield* store.setTagTime(tag, 0, 200)
        const [second] = yield* store.getTagTimes([tag])
        assert.isAtLeast(second!, first!, "a late, older invalidation does not win")
        let gone = false
        for (let i = 0; i < 100 && !gone; i++) {
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
          yield* TestClock.adjust(20)
          gone = (yield* store.getTagTimes([tag]))[0] === undefined
        }
        assert.isTrue(gone, "forgotten after the retention")
      }))

    test("ordered writes: a load's write never undoes a later write, invalidation or clear", (store, now) =>
      Effect.gen(function* () {
        const setOrdered = store.setOrdered
        const time = store.time
        if (setOrdered === undefined || time === undefined) return
        const { codec } = makeCodec()
        const ns = fresh("fence")
        const key = `${ns}:1`
        // Real milliseconds between steps: the store's clock is the judge.
        const tick = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        // A load that started (read the store's clock) before an explicit write: refused.
        const before = yield* time(key)
        yield* tick
        assert.isNumber(yield* setOrdered(key, entryAt(now, profile(1, "v1")), codec, undefined))
        assert.isUndefined(yield* setOrdered(key, entryAt(now, profile(1, "old load")), codec, before))
        assert.strictEqual(((yield* store.get(key, codec))!.value as Profile).name, "v1")
        // An invalidation, then a load that started before it: refused.
        const beforeDelete = yield* time(key)
        yield* tick
        yield* store.delete(key)
        assert.isUndefined(yield* setOrdered(key, entryAt(now, profile(1, "old load")), codec, beforeDelete))
        assert.isUndefined(yield* store.get(key, codec))
        // A load that started after it: stored, ordered at its start.
        yield* tick
        const after = yield* time(key)
        assert.strictEqual(yield* setOrdered(key, entryAt(now, profile(1, "new load")), codec, after), after)
        const read = yield* store.get(key, codec)
        assert.strictEqual((read!.value as Profile).name, "new load")
        assert.strictEqual(read?.order, after)
        // A keyspace clear fences loads of keys it never saw.
        const other = `${ns}:2`
        const beforeClear = yield* time(other)
        yield* tick
        yield* store.deletePrefix(`${ns}:`)
        assert.isUndefined(yield* setOrdered(other, entryAt(now, profile(2)), codec, beforeClear))
        assert.isUndefined(yield* store.get(other, codec))
        // An explicit write always lands.
        assert.isNumber(yield* setOrdered(other, entryAt(now, profile(2, "explicit")), codec, undefined))
        assert.strictEqual(((yield* store.get(other, codec))!.value as Profile).name, "explicit")
      }))

    test("batched ordered writes: each key fenced by its own load start", (store, now) =>
      Effect.gen(function* () {
        const setOrderedMany = store.setOrderedMany
        const time = store.time
        if (setOrderedMany === undefined || time === undefined) return
        const { codec } = makeCodec()
        const ns = fresh("fencemany")
        const [k1, k2, k3] = [`${ns}:1`, `${ns}:2`, `${ns}:3`]
        const tick = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        const started = yield* time(k1)
        yield* tick
        // While the batch "loads": k1 is invalidated, k2 written explicitly.
        yield* store.delete(k1)
        yield* store.set(k2, entryAt(now, profile(2, "explicit")), codec)
        yield* tick
        const orders = yield* setOrderedMany(
          [
            [k1, entryAt(now, profile(1, "batch")), started],
            [k2, entryAt(now, profile(2, "batch")), started],
            [k3, entryAt(now, profile(3, "batch")), started]
          ],
          codec
        )
        assert.isUndefined(orders[0])
        assert.isUndefined(orders[1])
        assert.strictEqual(orders[2], started)
        const read = yield* store.getMany([k1, k2, k3], codec)
        assert.deepStrictEqual(
          read.map((e) => (e?.value as Profile | undefined)?.name),
          [undefined, "explicit", "batch"]
        )
        assert.strictEqual(read[2]?.order, started)
      }))

    test("compare-and-set writes (sliding expiry) land only over the entry they expect", (store, now) =>
      Effect.gen(function* () {
        const setOrdered = store.setOrdered
        if (setOrdered === undefined || store.time === undefined) return
        const { codec } = makeCodec()
        const key = `${fresh("cas")}:1`
        const order = (yield* setOrdered(key, entryAt(now, profile(1, "v1")), codec, undefined))!
        const longer = { ...entryAt(now, profile(1, "v1")), freshUntil: now + 120_000, staleUntil: now + 120_000 }
        assert.isUndefined(yield* setOrdered(key, longer, codec, undefined, order + 1), "another order: refused")
        assert.strictEqual(yield* setOrdered(key, longer, codec, undefined, order), order)
        const read = yield* store.get(key, codec)
        assert.strictEqual(read?.freshUntil, now + 120_000)
        assert.strictEqual(read?.order, order, "the entry keeps its order")
        yield* store.delete(key)
        assert.isUndefined(yield* setOrdered(key, longer, codec, undefined, order), "never over a tombstone")
        assert.isUndefined(yield* store.get(key, codec))
      }))

    test("keys with unicode and escapes round-trip separately", (store, now) =>
      Effect.gen(function* () {
        const { codec } = makeCodec()
        const ns = fresh("uni")
        const keys = [`${ns}:é`, `${ns}:%uD800`, `${ns}:%uDC00`, `${ns}:😀`, `${ns}:a b`]
        yield* Effect.forEach(keys, (k, i) => store.set(k, entryAt(now, profile(i)), codec), { discard: true })
        const read = yield* store.getMany(keys, codec)
        assert.deepStrictEqual(
          read.map((e) => (e?.value as Profile | undefined)?.id),
          [0, 1, 2, 3, 4]
        )
      }))

    test("ping answers", (store) => store.ping)
  })
}
