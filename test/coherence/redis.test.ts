/**
 * Issue #10 over a real harness Redis: several runtimes (each with its own
 * connection and, where it matters, its own skewed clock) share one store.
 * Real time (`it.live`): the store orders writes and invalidations on the
 * server's clock, which no TestClock moves.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, type Context, Deferred, Effect, Fiber, Layer, Schema, type Scope } from "effect"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as TieredStore from "../../src/redis/TieredStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { runId, sharedCluster, sharedServer, sleepReal } from "../redis/helpers.ts"
import { type Instance, instance, on as onTiered, statsOf, subscribed } from "../tiered/helpers.ts"
import { check, describe as explain } from "./checker.ts"
import { faultTolerant, Items, runWorkload, skewed } from "./workload.ts"

const server = sharedServer()
const cluster = sharedCluster()

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

  it.live("the history checker on standalone Redis: 3 instances (clocks -5 s, 0, +5 s): 0 violations", () =>
    Effect.gen(function* () {
      const prefix = `hist-${runId()}`
      yield* history("standalone Redis", 0, (offset) => runtime(prefix, offset))
    }).pipe(Effect.scoped)
  )

  it.live("the history checker on a 3-master Redis Cluster, clocks -5 s, 0, +5 s: 0 violations", () =>
    Effect.gen(function* () {
      const prefix = `hist-c-${runId()}`
      yield* history("Redis Cluster", 0, (offset) =>
        Effect.clockWith((base) =>
          Layer.build(
            Cachet.layer().pipe(
              Layer.provide(RedisStore.layer({ cluster: cluster.get().startupNodes, prefix })),
              Layer.provide(Layer.succeed(Clock.Clock, skewed(base, offset)))
            )
          )
        )
      )
    }).pipe(Effect.scoped)
  )

  it.live("the history checker across a SIGSTOP of Redis (1.5 s) and SIGCONT: no violation past the replay bound", () =>
    Effect.gen(function* () {
      const paused = yield* RedisServer.start()
      const prefix = `hist-f-${runId()}`
      // During the pause every read goes to the loader (fresh); an
      // invalidation is journalled and reaches the store when it answers
      // again: the bound is how long that replay may take (breaker openFor
      // plus journalRetry plus a command), not 0.
      const bound = 1_000
      const fault = Effect.gen(function* () {
        yield* sleepReal(150)
        yield* paused.pause
        yield* sleepReal(1_500)
        yield* paused.resume
      })
      yield* Effect.forkChild(fault)
      yield* history("standalone Redis, SIGSTOP 1.5 s", bound, (offset) => faultTolerant(paused.url, prefix, offset), {
        journaled: true
      })
    }).pipe(Effect.scoped)
  )

  it.live("the history checker across a SIGKILL of Redis and a restart (empty, no persistence): 0 violations", () =>
    Effect.gen(function* () {
      const crashed = yield* RedisServer.start()
      const prefix = `hist-k-${runId()}`
      const fault = Effect.gen(function* () {
        yield* sleepReal(150)
        yield* crashed.kill
        yield* sleepReal(800)
        yield* crashed.restart
      })
      yield* Effect.forkChild(fault)
      yield* history(
        "standalone Redis, SIGKILL + restart",
        1_000,
        (offset) => faultTolerant(crashed.url, prefix, offset),
        { journaled: true }
      )
    }).pipe(Effect.scoped)
  )

  it.live(
    "the history checker on TieredStore with its bus while every pub/sub connection is killed twice: 0 violations past the reconnect bound",
    () =>
      Effect.gen(function* () {
        const prefix = `hist-p-${runId()}`
        const fault = Effect.gen(function* () {
          for (const at of [200, 400]) {
            yield* sleepReal(at === 200 ? 200 : 300)
            yield* server.get().command("CLIENT", "KILL", "TYPE", "pubsub")
          }
        })
        yield* Effect.forkChild(fault)
        // A message lost to the kill: every L1 is reset once its subscription
        // is confirmed again (about 100-200 ms), at most l1MaxTtl.
        const instances = yield* history("TieredStore, bus on, CLIENT KILL TYPE pubsub x2", 300, (offset) =>
          Effect.clockWith((base) =>
            Effect.tap(
              Layer.build(
                Cachet.layer().pipe(
                  Layer.provideMerge(
                    TieredStore.layer({ l2: { url: server.get().url, prefix }, bus: true, l1MaxTtl: "300 millis" })
                  ),
                  Layer.provide(Layer.succeed(Clock.Clock, skewed(base, offset)))
                )
              ),
              (ctx) => subscribed(ctx)
            )
          )
        )
        // The kills happened during the run: every instance reset its L1.
        for (const ctx of instances) assert.isAtLeast((yield* statsOf(ctx as Instance)).l1Clears, 1)
      }).pipe(Effect.scoped)
  )

  for (const bus of [true, false]) {
    it.live(
      `the history checker on TieredStore (bus ${bus ? "on" : "off"}), clocks -5 s, 0, +5 s: 0 violations past the bound`,
      () =>
        Effect.gen(function* () {
          const prefix = `hist-t-${runId()}`
          const l1MaxTtl = 300
          // With the bus: its delivery time (2-15 ms measured; 100 ms allowed).
          // Without: an L1 copy lives at most l1MaxTtl.
          const bound = bus ? 100 : l1MaxTtl
          yield* history(`TieredStore, bus ${bus ? "on" : "off"}`, bound, (offset) =>
            Effect.clockWith((base) =>
              Effect.tap(
                Layer.build(
                  Cachet.layer().pipe(
                    Layer.provideMerge(
                      TieredStore.layer({ l2: { url: server.get().url, prefix }, bus, l1MaxTtl: `${l1MaxTtl} millis` })
                    ),
                    Layer.provide(Layer.succeed(Clock.Clock, skewed(base, offset)))
                  )
                ),
                (ctx) => (bus ? subscribed(ctx) : Effect.void)
              )
            )
          )
        }).pipe(Effect.scoped)
    )
  }
})

/**
 * Runs 3 instances (clocks -5 s, 0, +5 s) through a random workload of slow
 * loads, explicit writes and invalidations (of a key, of its tag, of the tag
 * of all), records the history and checks it with `bound` ms of allowed
 * staleness.
 */
const history = <E, C extends Cachet.Cachet>(
  label: string,
  bound: number,
  make: (offset: number) => Effect.Effect<Context.Context<C>, E, Scope.Scope>,
  options?: { readonly journaled?: boolean }
) =>
  Effect.gen(function* () {
    const clients = [
      { name: "skew-5s", ctx: yield* make(-5_000) },
      { name: "true", ctx: yield* make(0) },
      { name: "skew+5s", ctx: yield* make(5_000) }
    ]
    const run = <A, E2>(ctx: Context.Context<C>, effect: Effect.Effect<A, E2, Cachet.Cachet>) =>
      Effect.provide(effect, ctx)
    // Each client runs 120 operations one after another; the three run concurrently.
    const ops = yield* runWorkload(
      clients.map((c) => ({ name: c.name, ctx: c.ctx as unknown as Context.Context<Cachet.Cachet> })),
      { ops: 120 }
    )
    const report = check(ops, bound)
    const fences = yield* Effect.forEach(clients, (c) =>
      run(
        c.ctx,
        Effect.map(Cachet.stats, (s) => s.fencedWrites)
      )
    )
    console.log(
      `coherence (${label}, skew ±5 s, bound ${bound} ms): ${report.operations} operations, ${report.reads} reads, ${report.writes} writes, ${report.violations.length} violations, ${fences.reduce((n, m) => n + m, 0)} fenced writes`
    )
    for (const v of report.violations.slice(0, 3)) console.log(explain(v))
    if (options?.journaled) {
      const journaled = yield* Effect.forEach(clients, (c) =>
        run(
          c.ctx,
          Effect.map(Cachet.stats, (s) => s.journaled)
        )
      )
      console.log(`  invalidations journalled during the fault: ${journaled.reduce((n, m) => n + m, 0)}`)
      assert.isAbove(
        journaled.reduce((n, m) => n + m, 0),
        0,
        "the fault happened during the run"
      )
    }
    assert.strictEqual(report.operations, 360)
    assert.deepStrictEqual(report.violations.slice(0, 3).map(explain), [])
    return clients.map((c) => c.ctx)
  })
