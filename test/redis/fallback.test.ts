/**
 * RedisStore's last-known-good fallback (issue 13, item 9), against a real
 * harness redis-server paused with SIGSTOP: while it is stalled, entries
 * read before the pause are served from the copy (counted in fallbackHits)
 * inside their stale window only; keys never read, keys this process
 * invalidated, and entries past their stale window go to the loader.
 *
 * The timeline (fresh, stale, gone) runs on TestClock; the store's command
 * timeout is a real timer, so the longest call is measured in real time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { CacheStore } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as CacheStoreSuite from "../../src/testing/CacheStoreSuite.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { eventually, runId, sharedServer } from "./helpers.ts"

const shared = sharedServer()

const COMMAND_TIMEOUT = 300
/** Scheduling slack on a loaded 2-core machine. */
const MARGIN = 250
const KEYS = 10

const Items = Keyspace.make({
  name: "item",
  key: "{id}",
  value: Schema.String,
  ttl: "1 minute",
  staleFor: "1 minute",
  tags: () => ["items"]
})

const stack = (url: string, fallback: RedisStore.FallbackOptions | undefined) =>
  Cachet.layer().pipe(
    Layer.provideMerge(
      RedisStore.layerClient({
        prefix: "fb",
        commandTimeout: COMMAND_TIMEOUT,
        breaker: { failures: 3, openFor: "1 second" },
        fallback
      })
    ),
    Layer.provide(IoRedis.layer({ url, commandTimeout: COMMAND_TIMEOUT }))
  )

/** The loader's calls, and a read through cacheAside that times itself (real time). */
const makeSource = () => {
  const state = { loads: 0, longest: 0 }
  const read = (id: number) =>
    Effect.gen(function* () {
      const started = performance.now()
      const value = yield* Effect.sync(() => {
        state.loads++
        return `source ${id}`
      }).pipe(Strategy.cacheAside(Items, { id }))
      state.longest = Math.max(state.longest, performance.now() - started)
      return value
    })
  return { state, read }
}

describe.skipIf(!requireRedis())("RedisStore fallback (last-known-good) under SIGSTOP", () => {
  // With Redis up, the wrapped store is a store like any other.
  CacheStoreSuite.suite(
    "redis with fallback",
    Layer.unwrap(
      Effect.sync(() =>
        RedisStore.layer({ url: shared.get().url, prefix: `fb-conf-${runId()}`, fallback: { capacity: 1_000 } })
      )
    )
  )

  it.effect(
    "serves recently read entries while Redis is stalled, inside their stale window only",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        yield* Effect.gen(function* () {
          const source = makeSource()
          const store = yield* CacheStore
          for (let id = 1; id <= KEYS; id++) yield* source.read(id)
          for (let id = 1; id <= KEYS; id++) yield* source.read(id)
          assert.strictEqual(source.state.loads, KEYS, "the second round hit Redis")
          assert.strictEqual((yield* store.info)!.entries, KEYS, "the copy holds what was read")

          yield* server.pause
          source.state.longest = 0
          for (let id = 1; id <= KEYS; id++) assert.strictEqual(yield* source.read(id), `source ${id}`)
          const served = (yield* Cachet.stats).store!
          console.log(
            `fallback under SIGSTOP: ${served.fallbackHits} of ${KEYS} reads served, ${source.state.loads - KEYS} loads, longest call ${Math.round(source.state.longest)} ms`
          )
          assert.strictEqual(served.fallbackHits, KEYS)
          const metric = (yield* Metric.snapshot).find((m) => m.id === "cachet_store_fallback_hits_total")
          assert.strictEqual((metric?.state as { count: number } | undefined)?.count, KEYS)
          assert.strictEqual(source.state.loads, KEYS, "no read went to the loader")
          assert.isAtMost(source.state.longest, COMMAND_TIMEOUT + MARGIN)

          // Never read: nothing to fall back on, the loader answers.
          yield* source.read(KEYS + 1)
          assert.strictEqual(source.state.loads, KEYS + 1)
          // Invalidated by this process: its copy is gone too.
          yield* Cachet.invalidate(Items, { id: 1 })
          yield* source.read(1)
          assert.strictEqual(source.state.loads, KEYS + 2)

          // Stale (past the ttl, inside staleFor): served as stale by SWR.
          yield* TestClock.adjust("90 seconds")
          const stale = yield* Effect.sync(() => "new").pipe(Strategy.staleWhileRevalidate(Items, { id: 2 }))
          assert.strictEqual(stale, "source 2")
          assert.isAtLeast((yield* Cachet.stats).staleHits, 1)
          // Gone (past staleUntil): never served, the loader answers.
          yield* TestClock.adjust("31 seconds")
          const hitsBefore = (yield* Cachet.stats).store!.fallbackHits!
          const loadsBefore = source.state.loads
          for (let id = 3; id <= KEYS; id++) yield* source.read(id)
          assert.strictEqual((yield* Cachet.stats).store!.fallbackHits, hitsBefore, "nothing served past staleUntil")
          assert.strictEqual(source.state.loads, loadsBefore + KEYS - 2)

          // Redis answers again: reads go to it; the copy is not read.
          yield* server.resume
          yield* eventually(
            Effect.gen(function* () {
              yield* TestClock.adjust("1100 millis")
              return (yield* Effect.exit(store.ping))._tag === "Success"
            }),
            10_000,
            "Redis answers after resume",
            100
          )
          const after = (yield* Cachet.stats).store!.fallbackHits!
          yield* Cachet.set(Items, { id: 5 }, "written")
          assert.deepStrictEqual(yield* Cachet.get(Items, { id: 5 }), Option.some("written"))
          assert.strictEqual((yield* Cachet.stats).store!.fallbackHits, after)
        }).pipe(Effect.provide(stack(server.url, { capacity: 100 })))
      }),
    60_000
  )

  it.effect(
    "without the fallback every read during the stall goes to the loader",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        yield* Effect.gen(function* () {
          const source = makeSource()
          for (let id = 1; id <= KEYS; id++) yield* source.read(id)
          yield* server.pause
          for (let id = 1; id <= KEYS; id++) yield* source.read(id)
          console.log(`no fallback under SIGSTOP: ${source.state.loads - KEYS} of ${KEYS} reads loaded`)
          assert.strictEqual(source.state.loads, 2 * KEYS)
          assert.isUndefined((yield* Cachet.stats).store)
          yield* server.resume
        }).pipe(Effect.provide(stack(server.url, undefined)))
      }),
    60_000
  )

  it("a bad fallback option throws at the call, naming it", () => {
    assert.throws(() => RedisStore.layerClient({ prefix: "x", fallback: { capacity: 0 } }), /"fallback.capacity"/)
    assert.throws(() => RedisStore.layerClient({ prefix: "x", fallback: { maxBytes: -1 } }), /"fallback.maxBytes"/)
  })
})
