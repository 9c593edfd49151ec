/**
 * Issue #10's cases over a real harness Redis (the history checker runs are
 * in history.test.ts and faults.test.ts): several runtimes (each with its own
 * connection and, where it matters, its own skewed clock) share one store.
 * Real time (`it.live`): the store orders writes and invalidations on the
 * server's clock, which no TestClock moves.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, type Context, Deferred, Effect, Fiber, Layer, Schema } from "effect"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { requireRedis } from "../harness/redis.ts"
import { runId, sharedServer, sleepReal } from "../redis/helpers.ts"
import { instance, on as onTiered } from "../tiered/helpers.ts"
import { Items, skewed } from "./workload.ts"

const server = sharedServer()

type Runtime = Context.Context<Cachet.Cachet>

/** A runtime with its own RedisStore connection under `prefix`, its clock `offset` ms off. */
const runtime = (prefix: string, offset = 0) =>
  Effect.clockWith((base) =>
    Layer.build(
      Cachet.layer().pipe(
        Layer.provide(RedisStore.layer({ url: server.get().url, prefix })),
        Layer.provide(Layer.succeed(Clock.Clock, skewed(base, offset)))
      )
    )
  )

const on =
  (ctx: Runtime) =>
  <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet>): Effect.Effect<A, E> =>
    Effect.provide(effect, ctx)

const fenced = (ctx: Runtime) => on(ctx)(Effect.map(Cachet.stats, (s) => s.fencedWrites))

describe.skipIf(!requireRedis())("coherence over one Redis, several instances", () => {
  for (const variant of ["invalidate", "set", "writeThrough"] as const) {
    it.live(`case 1: a load that started before another instance's ${variant} does not store its older value`, () =>
      Effect.gen(function* () {
        const prefix = `coh-${runId()}`
        const a = yield* runtime(prefix)
        const b = yield* runtime(prefix)
        const source = { version: 1 }
        const started = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        // B: a slow load that reads version 1.
        const slow = Effect.gen(function* () {
          const read = source.version
          yield* Deferred.succeed(started, undefined)
          yield* Deferred.await(release)
          return read
        })
        const loading = yield* Effect.forkChild(on(b)(slow.pipe(Strategy.cacheAside(Items, { id: 1 }))))
        yield* Deferred.await(started)
        // A: the source moves to version 2, and A tells the cache.
        if (variant === "invalidate") {
          source.version = 2
          yield* on(a)(Cachet.invalidate(Items, { id: 1 }))
        } else if (variant === "set") {
          source.version = 2
          yield* on(a)(Cachet.set(Items, { id: 1 }, 2))
        } else {
          yield* on(a)(Effect.sync(() => (source.version = 2)).pipe(Strategy.writeThrough(Items, { id: 1 })))
        }
        yield* Deferred.succeed(release, undefined)
        assert.strictEqual(yield* Fiber.join(loading), 1, "B's caller gets what B loaded")
        // Every later read, on either instance, sees version 2 at least.
        const load = Effect.sync(() => source.version).pipe(Strategy.cacheAside(Items, { id: 1 }))
        assert.strictEqual(yield* on(a)(load), 2, "A reads its own write")
        assert.strictEqual(yield* on(b)(load), 2)
        assert.strictEqual(yield* fenced(b), 1, "B's write was refused and counted")
      }).pipe(Effect.scoped)
    )
  }

  for (const [loaderOffset, invalidatorOffset] of [
    [5_000, 0],
    [0, -5_000]
  ] as const) {
    it.live(
      `case 2: clocks ${loaderOffset} ms / ${invalidatorOffset} ms off: nothing read before invalidateTag is served after it`,
      () =>
        Effect.gen(function* () {
          const prefix = `skew-${runId()}`
          const loader = yield* runtime(prefix, loaderOffset)
          const invalidator = yield* runtime(prefix, invalidatorOffset)
          const source = { version: 1 }
          const load = Effect.sync(() => source.version).pipe(Strategy.cacheAside(Items, { id: 7 }))
          assert.strictEqual(yield* on(loader)(load), 1)
          assert.strictEqual(yield* on(loader)(load), 1, "cached")
          yield* sleepReal(2)
          source.version = 2
          yield* on(invalidator)(Cachet.invalidateTag("items"))
          assert.strictEqual(yield* on(loader)(load), 2)
          assert.strictEqual(yield* on(invalidator)(load), 2)
        }).pipe(Effect.scoped)
    )
  }

  it.live("case 4: TieredStore without a bus: lease polls read the L2, so the loader runs once", () =>
    Effect.gen(function* () {
      const Reports = Keyspace.make({
        name: "report",
        key: "{id}",
        value: Schema.Number,
        ttl: "1 second",
        staleFor: "1 minute",
        singleFlight: { scope: "cluster", lease: "2 seconds", wait: "3 seconds", pollInterval: "20 millis" }
      })
      const prefix = `lease-${runId()}`
      const options = { l2: { url: server.get().url, prefix }, bus: false } as const
      const a = yield* instance(options)
      const b = yield* instance(options)
      let runs = 0
      const loader = Effect.sync(() => ++runs).pipe(Effect.tap(() => sleepReal(300)))
      const read = (ctx: typeof a) => onTiered(ctx)(loader.pipe(Strategy.cacheAside(Reports, { id: 1 })))
      // Both L1s hold version 1, which then goes stale.
      yield* read(a)
      yield* read(b)
      assert.strictEqual(runs, 1)
      yield* sleepReal(1_100)
      const [x, y] = yield* Effect.all([read(a), read(b)], { concurrency: "unbounded" })
      assert.strictEqual(runs, 2, "one more load for both instances")
      assert.strictEqual(x, 2)
      assert.strictEqual(y, 2)
    }).pipe(Effect.scoped)
  )

  // Round trips, not commands: INFO commandstats counts a script's inner
  // calls too, so the hits are read without any script.
  it.live(
    "the fence adds no round trip to a hit: a hit is one GET; with tags, one MGET of the entry and its tag records",
    () =>
      Effect.gen(function* () {
        const a = yield* runtime(`rt-${runId()}`)
        const Plain = Keyspace.make({ name: "plain", key: "{id}", value: Schema.Number, ttl: "1 minute" })
        const hits = <P>(ks: Keyspace.Keyspace<P, number>, params: P) =>
          Effect.gen(function* () {
            const load = Effect.succeed(1).pipe(Strategy.cacheAside(ks, params))
            assert.strictEqual(yield* on(a)(load), 1, "the miss: a GET, then the fenced write (one EVALSHA)")
            const before = yield* commandCalls
            for (let i = 0; i < 200; i++) assert.strictEqual(yield* on(a)(load), 1)
            const after = yield* commandCalls
            return Object.fromEntries(
              Object.entries(after)
                .map(([name, calls]) => [name, calls - (before[name] ?? 0)] as const)
                .filter(([name, calls]) => calls > 0 && name !== "info")
            )
          })
        assert.deepStrictEqual(yield* hits(Plain, { id: 1 }), { get: 200 })
        // The tag records are read in the entry's own MGET once the decode
        // cache knows its tags: the first hit reads the entry (GET), then its
        // tags (MGET); each of the 199 others is one MGET of both.
        assert.deepStrictEqual(yield* hits(Items, { id: 3 }), { get: 1, mget: 200 })
      }).pipe(Effect.scoped)
  )
})

/** Calls per command so far on the shared server (INFO commandstats). */
const commandCalls = Effect.map(
  Effect.suspend(() => server.get().command("INFO", "commandstats")),
  (info) =>
    Object.fromEntries(
      [...info.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)].map((m) => [m[1]!, Number(m[2])] as const)
    ) as Record<string, number>
)
