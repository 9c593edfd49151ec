/**
 * `npm run soak`: a bounded load run over Redis with server restarts.
 *
 *   node --expose-gc bench/soak.ts [--seconds 60] [--rate 500] [--restart-every 15]
 *                                  [--down-ms 1000] [--keys 5000] [--loader-ms 2] [--strict]
 *   node --expose-gc bench/soak.ts --coherence [--seconds 60] [--fault-every 20] [--coherence-store redis|cluster|tiered]
 *     (the coherence history checker over a long run with faults: bench/coherence.ts)
 *   node --expose-gc bench/soak.ts --cluster [--seconds 60] [--kill-every 30] [--full-coverage]
 *     (a 3+3 Redis Cluster whose masters are killed in turn: bench/cluster.ts)
 *
 * - Our own redis-server (ephemeral loopback port, no persistence); every
 *   `--restart-every` seconds it is SIGKILLed, stays down `--down-ms`, and is
 *   started again on the same port, empty.
 * - Open-loop load at a constant arrival rate: request i is due at
 *   start + i / rate whatever happened to the earlier ones, and its latency is
 *   measured from that due time (so a stall is charged to every request it
 *   delays). Each request is `Strategy.cacheAside` over `--keys` uniform keys
 *   with a loader that takes `--loader-ms`; each is its own
 *   `Effect.runPromiseWith(context)`.
 * - Before the clock starts, every key is read once (Redis and the decode
 *   cache hold the key set: the run measures the steady state).
 * - Every second: heapUsed after a full gc (`--expose-gc`); the heap slope is
 *   the least-squares slope of those samples (MB/min), after the first 20% of
 *   the run (warm-up).
 * - Open handles: `process.getActiveResourcesInfo()` before anything starts
 *   and after everything is closed.
 *
 * The last lines state PASS or FAIL against the bounds printed with them.
 */
import { parseArgs } from "node:util"
import { Effect, Layer, ManagedRuntime } from "effect"
import { Cachet, Strategy } from "../src/index.ts"
import { makeUser, type User, Users } from "./lib/fixtures.ts"
import { redisUnavailable, startRedis } from "./lib/redis.ts"
import { formatMs, quantileSorted, slope } from "./lib/stats.ts"

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    rate: { type: "string", default: "500" },
    "restart-every": { type: "string", default: "15" },
    "down-ms": { type: "string", default: "1000" },
    keys: { type: "string", default: "5000" },
    "loader-ms": { type: "string", default: "2" },
    strict: { type: "boolean", default: false },
    coherence: { type: "boolean", default: false },
    "fault-every": { type: "string", default: "20" },
    "coherence-store": { type: "string", default: "redis" },
    cluster: { type: "boolean", default: false },
    "kill-every": { type: "string", default: "30" },
    "full-coverage": { type: "boolean", default: false }
  }
})

// `--coherence`: the coherence history checker over a long run instead (bench/coherence.ts).
if (values.coherence === true) {
  const { runCoherenceSoak } = await import("./coherence.ts")
  const store = values["coherence-store"]
  if (store !== "redis" && store !== "cluster" && store !== "tiered")
    throw new Error(`soak: --coherence-store must be redis, cluster or tiered, got ${store}`)
  const ok = await runCoherenceSoak(Number(values.seconds), Number(values["fault-every"]), store)
  process.exit(ok ? 0 : 1)
}

// `--cluster`: failovers of a 3+3 Redis Cluster instead (bench/cluster.ts).
if (values.cluster === true) {
  const { runClusterSoak } = await import("./cluster.ts")
  const ok = await runClusterSoak(
    Number(values.seconds),
    Number(values["kill-every"]),
    values["full-coverage"] === true
  )
  process.exit(ok ? 0 : 1)
}

const num = (name: keyof typeof values): number => {
  const n = Number(values[name])
  if (!Number.isFinite(n) || n <= 0) throw new Error(`soak: --${name} must be a positive number, got ${values[name]}`)
  return n
}
const seconds = num("seconds")
const rate = num("rate")
const restartEvery = num("restart-every")
const downMs = num("down-ms")
const keys = Math.round(num("keys"))
const loaderMs = num("loader-ms")
const strict = values.strict === true

/** The bounds a run must meet. */
const BOUNDS = {
  failed: 0,
  unfinished: 0,
  p99Ms: 100,
  heapSlopeMBPerMin: 2,
  restarts: Math.max(1, Math.floor(seconds / restartEvery) - 1)
}

const gc = (globalThis as { gc?: () => void }).gc
const handles = (): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1)
  return counts
}
const describeHandles = (h: Map<string, number>) => [...h].map(([k, v]) => `${k}×${v}`).join(", ") || "none"
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const unavailable = redisUnavailable()
if (unavailable !== undefined) {
  console.log(`soak: cannot run: ${unavailable}`)
  console.log("RESULT: FAIL (no redis-server)")
  process.exit(1)
}

// Touch stdout/stderr first: their handles are created on first use, and the
// warnings cachet logs during the run would otherwise look like new handles.
void process.stdout.writableLength
void process.stderr.writableLength
const handlesBefore = handles()
// SOAK_DEBUG_HANDLES=1: where every timer still pending at the end was created.
const timerStacks = new Map<number, string>()
if (process.env.SOAK_DEBUG_HANDLES) {
  const { createHook } = await import("node:async_hooks")
  createHook({
    init: (id, type) => {
      if (type === "Timeout") timerStacks.set(id, new Error().stack?.split("\n").slice(2, 14).join("\n") ?? "")
    },
    destroy: (id) => {
      timerStacks.delete(id)
    }
  }).enable()
}
const redis = await startRedis()
const { RedisStore } = await import("../src/redis/index.ts")
const runtime = ManagedRuntime.make(
  Cachet.layer().pipe(Layer.provide(RedisStore.layer({ url: redis.url, prefix: "soak" })))
)
const context = await runtime.context()
const run = Effect.runPromiseWith(context)

const users: ReadonlyArray<User> = Array.from({ length: keys }, (_, i) => makeUser(i))
let loads = 0
const findUser = (id: number) =>
  Effect.sleep(loaderMs).pipe(
    Effect.map(() => {
      loads++
      return users[id]!
    })
  )
const request = (id: number) =>
  strict
    ? findUser(id).pipe(Strategy.cacheAside(Users, { id }, { onStoreError: "fail" }))
    : findUser(id).pipe(Strategy.cacheAside(Users, { id }))

console.log(
  `soak: ${seconds} s at ${rate} req/s over ${keys} keys (loader ${loaderMs} ms), ${strict ? "strict" : "degrade"} mode; redis-server on ${redis.url}, SIGKILL + ${downMs} ms down + restart every ${restartEvery} s`
)

// Warm-up, before the clock starts: every key read once, so that Redis and
// the RedisStore's decode cache (bounded: 50,000 entries, 64 MB by default)
// hold the key set. Without it the heap slope measured the decode cache
// filling up (5,000 keys of ~1 KB decoded: ~8 MB over the first ~90 s of
// uniform reads at 500/s), not a leak: 12-13 MB/min over 45 s, against
// 1.8 MB/min with 500 keys, on the same code.
const warmStart = performance.now()
await run(Effect.forEach(users, (_, id) => request(id), { concurrency: 50, discard: true }))
const warmLoads = loads
console.log(
  `warm-up: ${keys} keys read once in ${Math.round(performance.now() - warmStart)} ms (${warmLoads} loader runs)`
)

const total = Math.floor(seconds * rate)
const latencies = new Float64Array(total).fill(Number.POSITIVE_INFINITY)
let issued = 0
let completed = 0
let failed = 0
const failures = new Map<string, number>()
const start = performance.now()
const dueAt = (i: number) => start + (i * 1000) / rate

// Arrivals: a 2 ms tick issues every request that is due.
const arrivals = setInterval(() => {
  const now = performance.now()
  while (issued < total && dueAt(issued) <= now) {
    const i = issued++
    const due = dueAt(i)
    run(request(Math.floor(Math.random() * keys))).then(
      () => {
        latencies[i] = performance.now() - due
        completed++
      },
      (error: unknown) => {
        latencies[i] = performance.now() - due
        completed++
        failed++
        const tag = (error as { _tag?: string })?._tag ?? (error instanceof Error ? error.name : String(error))
        failures.set(tag, (failures.get(tag) ?? 0) + 1)
      }
    )
  }
  if (issued >= total) clearInterval(arrivals)
}, 2)

// Restarts.
let restarts = 0
let restartError: string | undefined
const restarter = (async () => {
  let next = start + restartEvery * 1000
  while (next + downMs < start + seconds * 1000) {
    await sleep(Math.max(0, next - performance.now()))
    try {
      await redis.kill()
      await sleep(downMs)
      await redis.restart()
      restarts++
      console.log(
        `  t=${((performance.now() - start) / 1000).toFixed(1)} s: redis-server killed and restarted (#${restarts})`
      )
    } catch (error) {
      restartError = error instanceof Error ? error.message : String(error)
      return
    }
    next += restartEvery * 1000
  }
})()

// Heap samples, once a second, after a full collection when exposed.
const heapTimes: Array<number> = []
const heapMB: Array<number> = []
let lastCompleted = 0
let lastFailed = 0
let lastErrors = 0
const timeline: Array<string> = []
const sampler = setInterval(() => {
  const storeErrors = Effect.runSync(Effect.map(Effect.provideContext(Cachet.stats, context), (s) => s.storeErrors))
  timeline.push(
    `${Math.round((performance.now() - start) / 1000)}s:${completed - lastCompleted}/${failed - lastFailed}/${storeErrors - lastErrors}`
  )
  lastCompleted = completed
  lastFailed = failed
  lastErrors = storeErrors
  gc?.()
  heapTimes.push((performance.now() - start) / 60_000)
  heapMB.push(process.memoryUsage().heapUsed / 2 ** 20)
}, 1_000)

await sleep(seconds * 1000)
clearInterval(arrivals)
await restarter
// Let the last requests finish (bounded).
const drainDeadline = performance.now() + 10_000
while (completed < issued && performance.now() < drainDeadline) await sleep(20)
clearInterval(sampler)
const handlesDuring = handles()
const stats = await run(Cachet.stats)
await runtime.dispose()
await redis.close()
await sleep(200)
const handlesAfter = handles()
if (process.env.SOAK_DEBUG_HANDLES) {
  for (const stack of timerStacks.values()) console.log(`pending timer created at:\n${stack}`)
  const active = (process as unknown as { _getActiveHandles: () => Array<unknown> })._getActiveHandles()
  for (const h of active) {
    const t = h as Record<string, unknown> & { constructor: { name: string } }
    console.log(
      "handle",
      t.constructor.name,
      JSON.stringify({
        idle: t._idleTimeout,
        timeout: t.timeout,
        destroyed: t.destroyed,
        remote: `${String(t._peername ? JSON.stringify(t._peername) : "")}`,
        pending: t.pending,
        connecting: t.connecting
      })
    )
  }
}

// -- report -----------------------------------------------------------------
const done = latencies.slice(0, issued).sort()
const p50 = quantileSorted(done, 0.5)
const p99 = quantileSorted(done, 0.99)
const max = done[done.length - 1] ?? Number.NaN
const skip = Math.max(5, Math.floor(heapTimes.length * 0.2))
const heapSlope = slope(heapTimes.slice(skip), heapMB.slice(skip))
const leaked = [...handlesAfter].filter(([k, v]) => v > (handlesBefore.get(k) ?? 0))
const unfinished = issued - completed

console.log("\nsoak results")
console.log(
  `  requests: ${issued} issued (${total} planned), ${completed} completed, ${failed} failed, ${unfinished} unfinished`
)
if (failures.size > 0) console.log(`  failures by kind: ${[...failures].map(([k, v]) => `${k}×${v}`).join(", ")}`)
console.log(`  latency from due time: p50 ${formatMs(p50)}, p99 ${formatMs(p99)}, max ${formatMs(max)}`)
console.log(
  `  cache: ${stats.hits} hits, ${stats.misses} misses, ${stats.loads} loads (${loads - warmLoads} loader runs after the warm-up's ${warmLoads}), ${stats.storeErrors} store errors degraded to the loader`
)
console.log(`  per second (completed/failed/store errors): ${timeline.join(" ")}`)
console.log(`  redis restarts: ${restarts}${restartError === undefined ? "" : ` (restart failed: ${restartError})`}`)
console.log(
  `  heap: ${heapMB.length} samples ${gc === undefined ? "(no --expose-gc: without a gc before each sample)" : "after gc"}, ${heapMB[skip]?.toFixed(1) ?? "-"} -> ${heapMB[heapMB.length - 1]?.toFixed(1) ?? "-"} MB, slope ${heapSlope.toFixed(2)} MB/min (after the first ${skip} s)`
)
console.log(`  handles before: ${describeHandles(handlesBefore)}`)
console.log(`  handles while running: ${describeHandles(handlesDuring)}`)
console.log(`  handles after close: ${describeHandles(handlesAfter)}`)
if (leaked.length > 0 && !process.env.SOAK_DEBUG_HANDLES) {
  console.log("  (run with SOAK_DEBUG_HANDLES=1 to print where the timers still pending were created)")
}

const checks: Array<[string, boolean]> = [
  [
    `failed requests = ${BOUNDS.failed}${strict ? " (strict mode: failures expected)" : ""}`,
    strict || failed <= BOUNDS.failed
  ],
  [`unfinished requests = ${BOUNDS.unfinished}`, unfinished <= BOUNDS.unfinished],
  [`p99 latency <= ${BOUNDS.p99Ms} ms`, p99 <= BOUNDS.p99Ms],
  [
    `heap slope <= ${BOUNDS.heapSlopeMBPerMin} MB/min`,
    Number.isFinite(heapSlope) && heapSlope <= BOUNDS.heapSlopeMBPerMin
  ],
  [`redis restarts >= ${BOUNDS.restarts}`, restarts >= BOUNDS.restarts && restartError === undefined],
  ["no handles left open beyond those before the run", leaked.length === 0]
]
console.log("\nbounds")
for (const [label, ok] of checks) console.log(`  ${ok ? "PASS" : "FAIL"}  ${label}`)
const pass = checks.every(([, ok]) => ok)
console.log(`RESULT: ${pass ? "PASS" : "FAIL"}`)
process.exit(pass ? 0 : 1)
