/**
 * Where the tail of a Redis `getMany` of 100 goes: cachet's `Cachet.getMany`
 * against raw ioredis `MGET` + `JSON.parse`, in one process, on our own
 * redis-server, in interleaved rounds (order reversed every round). Every
 * call's start and end are recorded, and every garbage collection V8 reports
 * (`PerformanceObserver`, entry type `gc`: its kind, start and duration on
 * the same timeline); a call's GC time is the overlap of the two.
 *
 *   node scripts/node24.mjs --expose-gc bench/getmany-tail.ts [--rounds 20] [--calls 300]
 *
 * Prints, per contender: calls/s, p50, p99, the share of all call time
 * spent in GC, and for the slow calls (above raw's p95) their count, their
 * share of the contender's time, and how much of their time was GC (by
 * kind), event-loop delay outside GC, or neither.
 */
import { constants, PerformanceObserver } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { Effect, Layer, ManagedRuntime } from "effect"
import { Redis } from "ioredis"
import { Cachet } from "../src/index.ts"
import { RedisStore } from "../src/redis/index.ts"
import { idSequence, keyOf, makeUser, type User, Users } from "./lib/fixtures.ts"
import { startRedis } from "./lib/redis.ts"
import { table } from "./lib/stats.ts"

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "20" },
    calls: { type: "string", default: "300" },
    // With `node --cpu-prof`: writes the slow calls' windows (monotonic µs,
    // the profile's clock) to this file, for `bench/slow-samples.ts`.
    windows: { type: "string" }
  }
})
const ROUNDS = Number(values.rounds)
const CALLS = Number(values.calls)
const KEYS = 1_000
const MANY = 100

interface Gc {
  readonly kind: string
  readonly start: number
  readonly end: number
}
const gcs: Array<Gc> = []
const kinds: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb"
}
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = kinds[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? "other"
    gcs.push({ kind, start: e.startTime, end: e.startTime + e.duration })
  }
}).observe({ entryTypes: ["gc"] })

const redis = await startRedis()
const raw = new Redis({ host: redis.host, port: redis.port })
const runtime = ManagedRuntime.make(
  Cachet.layer().pipe(Layer.provide(RedisStore.layer({ url: redis.url, prefix: "tail" })))
)
const run = Effect.runPromiseWith(await runtime.context())
// The same store without circuit breakers (RedisStore option `breaker: false`).
const runtimeNoBreaker = ManagedRuntime.make(
  Cachet.layer().pipe(Layer.provide(RedisStore.layer({ url: redis.url, prefix: "tail", breaker: false })))
)
const runNoBreaker = Effect.runPromiseWith(await runtimeNoBreaker.context())
const users = Array.from({ length: KEYS }, (_, i) => makeUser(i))
await run(Effect.forEach(users, (u) => Cachet.set(Users, { id: u.id }, u), { discard: true, concurrency: 50 }))
for (const u of users) await raw.set(`raw:${keyOf(u.id)}`, JSON.stringify(u))
const seq = idSequence(1 << 16, KEYS)
const idsAt = (i: number) => Array.from({ length: MANY }, (_, k) => seq[(i * MANY + k) & 0xffff]!)

type Call = readonly [start: number, end: number, monoStart: number, monoEnd: number]
const mono = () => Number(process.hrtime.bigint() / 1000n)
const contenders: Record<string, (i: number) => Promise<unknown>> = {
  "cachet Cachet.getMany": (i) =>
    run(
      Cachet.getMany(
        Users,
        idsAt(i).map((id) => ({ id }))
      )
    ),
  "cachet Cachet.getMany, breaker off": (i) =>
    runNoBreaker(
      Cachet.getMany(
        Users,
        idsAt(i).map((id) => ({ id }))
      )
    ),
  "ioredis MGET + JSON.parse": async (i) => {
    const texts = await raw.mget(idsAt(i).map((id) => `raw:${keyOf(id)}`))
    return texts.map((t) => (t === null ? undefined : (JSON.parse(t) as User)))
  }
}
const names = Object.keys(contenders)
const calls: Record<string, Array<Call>> = Object.fromEntries(names.map((n) => [n, []]))
let n = 0
for (let round = 0; round < ROUNDS + 2; round++) {
  const order = round % 2 === 0 ? names : [...names].reverse()
  for (const name of order) {
    for (let c = 0; c < CALLS; c++) {
      const start = performance.now()
      const monoStart = mono()
      await contenders[name]!(n++)
      // The first two rounds warm up.
      if (round >= 2) calls[name]!.push([start, performance.now(), monoStart, mono()])
    }
  }
}
// Let the observer deliver the last entries.
await new Promise((resolve) => setTimeout(resolve, 50))

const overlap = (a: number, b: number, c: number, d: number) => Math.max(0, Math.min(b, d) - Math.max(a, c))
const gcIn = (start: number, end: number, kind?: string) =>
  gcs.reduce((sum, g) => (kind === undefined || g.kind === kind ? sum + overlap(start, end, g.start, g.end) : sum), 0)
const quantile = (xs: ReadonlyArray<number>, q: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!
const durations = (name: string) => calls[name]!.map(([s, e]) => e - s)
const slowBar = quantile(durations("ioredis MGET + JSON.parse"), 0.95)
const pct = (x: number, of: number) => `${((100 * x) / of).toFixed(1)}%`
const ms = (x: number) => `${x.toFixed(2)} ms`

const rows = names.map((name) => {
  const all = calls[name]!
  const ds = durations(name)
  const total = ds.reduce((a, b) => a + b, 0)
  const slow = all.filter(([s, e]) => e - s > slowBar)
  const slowTotal = slow.reduce((sum, [s, e]) => sum + e - s, 0)
  const slowGc = slow.reduce((sum, [s, e]) => sum + gcIn(s, e), 0)
  const byKind = ["minor", "major", "incremental"]
    .map(
      (k) =>
        `${k} ${pct(
          slow.reduce((sum, [s, e]) => sum + gcIn(s, e, k), 0),
          slowTotal || 1
        )}`
    )
    .join(", ")
  return [
    name,
    `${((1000 * all.length) / total).toFixed(0)}`,
    ms(quantile(ds, 0.5)),
    ms(quantile(ds, 0.99)),
    pct(
      all.reduce((sum, [s, e]) => sum + gcIn(s, e), 0),
      total
    ),
    `${slow.length} (${pct(slowTotal, total)} of time)`,
    `${pct(slowGc, slowTotal || 1)} (${byKind})`
  ]
})
console.log(
  `getMany of ${MANY}, ${ROUNDS} rounds of ${CALLS} calls each, interleaved; slow: above raw's p95 (${ms(slowBar)}); GCs seen: ${gcs.length}`
)
console.log(
  table(["contender", "calls/s", "p50", "p99", "GC share of time", "slow calls", "slow calls' time in GC"], rows)
)
if (values.windows !== undefined) {
  const { writeFileSync } = await import("node:fs")
  const windows = Object.fromEntries(
    names.map((name) => [name, calls[name]!.filter(([s, e]) => e - s > slowBar).map(([, , a, b]) => [a, b])])
  )
  writeFileSync(values.windows, JSON.stringify(windows))
}
await runtime.dispose()
await runtimeNoBreaker.dispose()
raw.disconnect()
await redis.close()
