/**
 * RedisStore under real faults, on harness servers of its own: a hung server
 * (SIGSTOP), a crashed one (SIGKILL, then restart), and a boot while Redis is
 * down.
 *
 * These tests run under `it.live`: they measure wall-clock latencies against
 * the configured command timeout, and the breaker's open time is real time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Logger, References, Schema } from "effect"
import { CacheStore } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { eventually, rawClient, sleepReal } from "./helpers.ts"

const COMMAND_TIMEOUT = 500
/** Scheduling slack on a loaded 2-core machine. */
const MARGIN = 250
const KEYS = 20

const Numbers = Keyspace.make({ name: "n", key: "{id}", value: Schema.Number, ttl: "1 minute" })

/** Log lines of the layer (its circuit transitions among them). */
const capturingLogs = (lines: Array<string>) =>
  Layer.mergeAll(
    Logger.layer([
      Logger.make((o) => {
        lines.push(Array.isArray(o.message) ? o.message.map(String).join(" ") : String(o.message))
      })
    ]),
    Layer.succeed(References.MinimumLogLevel, "Debug")
  )

/** Cachet on a RedisStore, exposing the IoRedis client and the store too. */
const stack = (url: string, prefix: string, logs: Array<string>) =>
  Cachet.layer().pipe(
    Layer.provideMerge(
      RedisStore.layerClient({
        prefix,
        commandTimeout: COMMAND_TIMEOUT,
        breaker: { failures: 5, openFor: "100 millis" }
      })
    ),
    Layer.provideMerge(IoRedis.layer({ url, commandTimeout: COMMAND_TIMEOUT })),
    Layer.provide(capturingLogs(logs))
  )

interface Load {
  readonly source: Map<number, number>
  readonly acked: Map<number, number>
  readonly calls: Array<{ readonly at: number; readonly ms: number; readonly kind: "read" | "write" }>
  failures: number
  loaderCalls: Array<number>
  stop: boolean
}

const newLoad = (): Load => ({
  source: new Map(),
  acked: new Map(),
  calls: [],
  failures: 0,
  loaderCalls: [],
  stop: false
})

/**
 * A worker: cache-aside reads (the loader returns the source's current
 * version) and writes (a new version, through `Cachet.set`; strict, so that
 * an acknowledged write is known), at a few ms apart.
 */
const worker = (load: Load, strictWrites: boolean) =>
  Effect.gen(function* () {
    while (!load.stop) {
      const id = Math.floor(Math.random() * KEYS)
      const at = performance.now()
      if (Math.random() < 0.3) {
        const version = (load.source.get(id) ?? 0) + 1
        load.source.set(id, version)
        const exit = yield* Effect.exit(
          strictWrites
            ? Cachet.set(Numbers, { id }, version, { onStoreError: "fail" })
            : Cachet.set(Numbers, { id }, version)
        )
        if (Exit.isSuccess(exit)) load.acked.set(id, Math.max(load.acked.get(id) ?? 0, version))
        else if (!strictWrites) load.failures++
        load.calls.push({ at, ms: performance.now() - at, kind: "write" })
      } else {
        const loader = Effect.sync(() => {
          load.loaderCalls.push(performance.now())
          return load.source.get(id) ?? 0
        })
        const exit = yield* Effect.exit(loader.pipe(Strategy.cacheAside(Numbers, { id })))
        if (Exit.isFailure(exit) || typeof exit.value !== "number") load.failures++
        load.calls.push({ at, ms: performance.now() - at, kind: "read" })
      }
      yield* sleepReal(1 + Math.random() * 4)
    }
  })

const maxOf = (xs: ReadonlyArray<number>) => xs.reduce((m, x) => Math.max(m, x), 0)

describe.skipIf(!requireRedis())("RedisStore under faults", () => {
  it.live(
    "SIGSTOP under load: every call within commandTimeout + margin, bounded queue, no stale value after resume",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const logs: Array<string> = []
        const context = yield* Layer.build(stack(server.url, "stop", logs))
        const { client } = Context.get(context, IoRedis.IoRedis)
        const store = Context.get(context, CacheStore)
        const queues = client as unknown as { commandQueue: { length: number }; offlineQueue: { length: number } }
        const load = newLoad()
        const workers = yield* Effect.forEach(
          Array.from({ length: 50 }, () => worker(load, true)),
          // Sequentially: forked from this fiber, so they live as long as the test.
          (w) => Effect.forkChild(Effect.provide(w, context))
        )
        let maxQueued = 0
        let maxOffline = 0
        let sampling = false
        const sampler = yield* Effect.forkChild(
          Effect.forever(
            Effect.andThen(
              Effect.sync(() => {
                if (!sampling) return
                maxQueued = Math.max(maxQueued, queues.commandQueue.length)
                maxOffline = Math.max(maxOffline, queues.offlineQueue.length)
              }),
              sleepReal(10)
            )
          )
        )

        yield* sleepReal(1_000)
        const warmCalls = load.calls.length
        const pausedAt = performance.now()
        sampling = true
        yield* server.pause
        yield* sleepReal(3_000)
        yield* server.resume
        const resumedAt = performance.now()
        // The store answers again once the connection drains and the breaker probes.
        const recoveryMs = yield* eventually(
          Effect.map(Effect.exit(store.ping), Exit.isSuccess),
          5_000,
          "store answers"
        )
        sampling = false
        yield* sleepReal(500)
        load.stop = true
        yield* Fiber.joinAll(workers)
        yield* Fiber.interrupt(sampler)

        // Every command sent so far is answered before this one (one connection, FIFO).
        yield* store.ping
        const redis = yield* rawClient(server.port)
        const stale: Array<string> = []
        for (const [id, version] of load.acked) {
          const raw = yield* Effect.promise(() => redis.get(`stop:n:${id}`))
          if (raw === null) continue
          const held = JSON.parse(raw).d as number
          if (held < version) stale.push(`n:${id} holds ${held}, last acknowledged ${version}`)
        }

        const during = load.calls.filter((c) => c.at >= pausedAt && c.at < resumedAt)
        const loadsDuring = load.loaderCalls.filter((t) => t >= pausedAt && t < resumedAt).length
        const maxLatency = maxOf(load.calls.map((c) => c.ms))
        const maxDuring = maxOf(during.map((c) => c.ms))
        console.log(
          `SIGSTOP 3 s, 50 fibers: ${load.calls.length} calls (${warmCalls} before the pause, ${during.length} during),` +
            ` max latency ${maxLatency.toFixed(0)} ms (during the pause ${maxDuring.toFixed(0)} ms), loader answered ${loadsDuring} during,` +
            ` max ioredis command queue ${maxQueued}, offline queue ${maxOffline}, recovered ${recoveryMs.toFixed(0)} ms after resume,` +
            ` ${load.acked.size} keys checked`
        )
        assert.isAbove(warmCalls, 100, "load ran before the pause")
        assert.strictEqual(load.failures, 0, "cache-aside reads never fail")
        // Issue #13's bound: no caller waits more than commandTimeout + 100 ms.
        assert.isAtMost(maxLatency, COMMAND_TIMEOUT + 100, "every call returns within commandTimeout + 100 ms")
        assert.isAbove(during.length, 500, "calls kept being answered during the pause")
        assert.isAbove(loadsDuring, 100, "answered by the loader")
        assert.isAtMost(maxQueued, 60, "at most one pending command per fiber (plus probes)")
        assert.strictEqual(maxOffline, 0)
        assert.isTrue(
          logs.some((l) => l.includes("circuit opened")),
          "the circuit opened"
        )
        assert.isTrue(
          logs.some((l) => l.includes("circuit closed")),
          "and closed again"
        )
        assert.deepStrictEqual(stale, [], "no key older than its last acknowledged write")
      }),
    30_000
  )

  it.live(
    "SIGKILL then restart: no failed request, the circuit opens and probes, writes reach Redis again within seconds",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const logs: Array<string> = []
        const context = yield* Layer.build(stack(server.url, "kill", logs))
        const store = Context.get(context, CacheStore)
        const load = newLoad()
        const workers = yield* Effect.forEach(
          Array.from({ length: 20 }, () => worker(load, false)),
          // Sequentially: forked from this fiber, so they live as long as the test.
          (w) => Effect.forkChild(Effect.provide(w, context))
        )
        const reasons: Record<string, number> = {}
        const monitor = yield* Effect.forkChild(
          Effect.forever(
            Effect.andThen(
              Effect.tap(Effect.exit(store.ping), (exit) =>
                Effect.sync(() => {
                  const reason = Exit.isSuccess(exit)
                    ? "ok"
                    : exit.cause.reasons[0]?._tag === "Fail"
                      ? (exit.cause.reasons[0].error as { reason: string }).reason
                      : "defect"
                  reasons[reason] = (reasons[reason] ?? 0) + 1
                })
              ),
              sleepReal(50)
            )
          )
        )

        yield* sleepReal(500)
        yield* server.kill
        yield* sleepReal(2_000)
        const reasonsWhileDown = { ...reasons }
        yield* server.restart
        let version = 0
        const backMs = yield* eventually(
          Effect.gen(function* () {
            yield* Effect.provide(Cachet.set(Numbers, { id: 999 }, ++version), context)
            return (yield* server.command("GET", "kill:n:999")) !== ""
          }),
          8_000,
          "a write reaches Redis after the restart",
          50
        )
        yield* sleepReal(500)
        load.stop = true
        yield* Fiber.joinAll(workers)
        yield* Fiber.interrupt(monitor)

        const opened = logs.filter((l) => l.includes("circuit opened")).length
        const reopened = logs.filter((l) => l.includes("circuit reopened")).length
        const probes = logs.filter((l) => l.includes("half-open")).length
        console.log(
          `SIGKILL 2 s: ${load.calls.length} calls, ${load.failures} failed, max latency ${maxOf(
            load.calls.map((c) => c.ms)
          ).toFixed(
            0
          )} ms; ping outcomes while down ${JSON.stringify(reasonsWhileDown)}, in all ${JSON.stringify(reasons)};` +
            ` circuit opened ${opened}x, reopened ${reopened}x, probed ${probes}x; writes reached Redis ${backMs.toFixed(0)} ms after the restart`
        )
        assert.strictEqual(load.failures, 0, "degrade mode: no request fails")
        assert.isBelow(maxOf(load.calls.map((c) => c.ms)), COMMAND_TIMEOUT + MARGIN)
        assert.isAbove(reasonsWhileDown.CircuitOpen ?? 0, 5, "the open circuit rejected calls")
        assert.isAtLeast(opened, 1, "opened")
        assert.isAtLeast(reopened, 2, "reopened after failed background probes")
        assert.isAtLeast(probes, 2, "probed while down")
        assert.isTrue(
          logs.some((l) => l.includes("circuit closed")),
          "closed after the restart"
        )
        assert.isBelow(backMs, 5_000, "writes reach Redis within a few seconds of the restart")
      }),
    30_000
  )

  it.live(
    "boot with Redis down: the layer builds at once, the loader answers, the store is used once Redis is back",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        yield* server.kill
        const startedAt = performance.now()
        const context = yield* Layer.build(
          Cachet.layer().pipe(Layer.provideMerge(RedisStore.layer({ url: server.url, prefix: "boot" })))
        )
        const buildMs = performance.now() - startedAt

        let loads = 0
        const read = (id: number) =>
          Effect.provide(
            Effect.sync(() => {
              loads++
              return id * 10
            }).pipe(Strategy.cacheAside(Numbers, { id })),
            context
          )
        const latencies: Array<number> = []
        for (let id = 0; id < 20; id++) {
          const at = performance.now()
          assert.strictEqual(yield* read(id), id * 10)
          latencies.push(performance.now() - at)
        }
        assert.strictEqual(loads, 20, "answered by the loader")

        yield* server.restart
        const restartedAt = performance.now()
        yield* eventually(
          Effect.gen(function* () {
            yield* Effect.provide(Cachet.set(Numbers, { id: 1 }, 42), context)
            return (yield* server.command("GET", "boot:n:1")) !== ""
          }),
          8_000,
          "the store is written once Redis is back",
          50
        )
        const backMs = performance.now() - restartedAt
        const before = loads
        assert.strictEqual(yield* read(1), 42, "served from Redis")
        assert.strictEqual(loads, before, "without the loader")
        console.log(
          `boot with Redis down: layer built in ${buildMs.toFixed(1)} ms, 20 reads by the loader (max ${maxOf(
            latencies
          ).toFixed(1)} ms each), store used again ${backMs.toFixed(0)} ms after the restart`
        )
        assert.isBelow(buildMs, 1_000)
        assert.isBelow(maxOf(latencies), COMMAND_TIMEOUT + MARGIN)
      }),
    30_000
  )
})
