/**
 * Profiles the memory hit path (the in-fiber scenario):
 *
 *   node bench/profile.ts [--seconds 5] [--scenario hit|cached|runpromise|miss|stampede|redis-hit|redis-getmany] [--top 25]
 *                         [--no-breaker] [--autopipelining]   (redis-hit: RedisStore options)
 *
 * `hit`: `findUser(id).pipe(Strategy.cacheAside(Users, { id }))` in one fiber;
 * `cached`: the same through `Cachet.cached(Users, (p) => findUser(p.id), Strategy.cacheAside)`;
 * `stampede`: rounds of 1,000 concurrent misses of one fresh key, 1 ms loader.
 *
 * re-runs itself under `node --cpu-prof`, then prints the top self-time frames
 * (all code, and cachet's own `src/` frames). The .cpuprofile is kept in
 * bench/results/ for Chrome DevTools / speedscope.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { Effect, ManagedRuntime } from "effect"
import { Cachet, Strategy } from "../src/index.ts"
import { idSequence, makeUser, Users } from "./lib/fixtures.ts"
import { table } from "./lib/stats.ts"

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    scenario: { type: "string", default: "hit" },
    top: { type: "string", default: "25" },
    child: { type: "boolean", default: false },
    "no-breaker": { type: "boolean", default: false },
    autopipelining: { type: "boolean", default: false }
  }
})
const seconds = Number(values.seconds)
const scenario = values.scenario ?? "hit"

const KEYS = 1_000
const users = Array.from({ length: KEYS }, (_, i) => makeUser(i))
const seq = idSequence(1 << 16, KEYS)
const findUser = (id: number) => Effect.sync(() => users[id % KEYS]!)

/** Redis hits, 100 in flight, on our own redis-server. */
const redisWorkload = async (): Promise<number> => {
  const { startRedis } = await import("./lib/redis.ts")
  const { RedisStore } = await import("../src/redis/index.ts")
  const { Layer } = await import("effect")
  const redis = await startRedis()
  const runtime = ManagedRuntime.make(
    Cachet.layer().pipe(
      Layer.provide(
        RedisStore.layer({
          url: redis.url,
          prefix: "profile",
          ...(values["no-breaker"] ? { breaker: false } : {}),
          ...(values.autopipelining ? { redisOptions: { enableAutoPipelining: true } } : {})
        })
      )
    )
  )
  const run = Effect.runPromiseWith(await runtime.context())
  const get = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))
  await run(Effect.forEach(users, (u) => Cachet.set(Users, { id: u.id }, u), { discard: true, concurrency: 50 }))
  const deadline = performance.now() + seconds * 1000
  let ops = 0
  const N = 2_000
  while (performance.now() < deadline) {
    if (scenario === "redis-getmany") {
      // getMany of 100 keys, sequential calls; ops counts keys read.
      await run(
        Cachet.getMany(
          Users,
          Array.from({ length: 100 }, (_, i) => ({ id: seq[(ops + i) & 0xffff]! }))
        )
      )
      ops += 100
      continue
    }
    await run(
      Effect.forEach(
        Array.from({ length: N }, (_, i) => seq[(ops + i) & 0xffff]!),
        (id) => get(id),
        { concurrency: 100, discard: true }
      )
    )
    ops += N
  }
  await runtime.dispose()
  await redis.close()
  return ops
}

const workload = async (): Promise<number> => {
  if (scenario === "redis-hit" || scenario === "redis-getmany") return redisWorkload()
  const runtime = ManagedRuntime.make(Cachet.layerMemory({ capacity: 10_000 }))
  const run = Effect.runPromiseWith(await runtime.context())
  const get = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))
  const cachedUser = Cachet.cached(Users, (p: { readonly id: number }) => findUser(p.id), Strategy.cacheAside)
  await run(Effect.forEach(users, (u) => get(u.id), { discard: true }))
  const deadline = performance.now() + seconds * 1000
  let ops = 0
  let fresh = 1_000_000
  const N = 5_000
  while (performance.now() < deadline) {
    if (scenario === "runpromise") {
      for (let i = 0; i < N; i++) await run(get(seq[(ops + i) & 0xffff]!))
    } else if (scenario === "cached") {
      await run(
        Effect.gen(function* () {
          for (let i = 0; i < N; i++) yield* cachedUser({ id: seq[(ops + i) & 0xffff]! })
        })
      )
    } else if (scenario === "stampede") {
      // ops counts requests: 1,000 per round, 5 rounds per pass.
      for (let round = 0; round < 5; round++) {
        const id = fresh++
        const loader = Effect.sleep(1).pipe(Effect.as(users[id % KEYS]!))
        await run(
          Effect.forEach(
            Array.from({ length: 1_000 }, () => id),
            (i) => loader.pipe(Strategy.cacheAside(Users, { id: i })),
            { concurrency: "unbounded", discard: true }
          )
        )
      }
    } else if (scenario === "miss") {
      await run(
        Effect.gen(function* () {
          for (let i = 0; i < N; i++) yield* get(fresh++)
        })
      )
    } else {
      await run(
        Effect.gen(function* () {
          for (let i = 0; i < N; i++) yield* get(seq[(ops + i) & 0xffff]!)
        })
      )
    }
    ops += N
  }
  await runtime.dispose()
  return ops
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
    readonly columnNumber: number
  }
  readonly children?: ReadonlyArray<number>
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** Self time per frame (function + location), in µs, from a .cpuprofile. */
export const selfTimes = (profile: CpuProfile): Array<{ frame: string; url: string; micros: number }> => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const totals = new Map<string, { frame: string; url: string; micros: number }>()
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)
    if (node === undefined) continue
    const f = node.callFrame
    const file = f.url.replace(/^file:\/\//, "")
    const rel = file.startsWith(process.cwd()) ? path.relative(process.cwd(), file) : file
    const frame = `${f.functionName || "(anonymous)"} ${rel === "" ? "" : `${rel}:${f.lineNumber + 1}`}`
    const entry = totals.get(frame) ?? { frame, url: rel, micros: 0 }
    entry.micros += profile.timeDeltas[i] ?? 0
    totals.set(frame, entry)
  }
  return [...totals.values()].sort((a, b) => b.micros - a.micros)
}

if (values.child) {
  const ops = await workload()
  console.log(JSON.stringify({ ops }))
} else {
  const dir = path.join(import.meta.dirname, "results")
  fs.mkdirSync(dir, { recursive: true })
  const name = `profile-${scenario}.cpuprofile`
  for (const f of fs.readdirSync(dir)) if (f.startsWith(`profile-${scenario}`)) fs.rmSync(path.join(dir, f))
  const out = execFileSync(
    process.execPath,
    [
      "--cpu-prof",
      `--cpu-prof-dir=${dir}`,
      `--cpu-prof-name=${name}`,
      "--cpu-prof-interval=100",
      import.meta.filename,
      "--child",
      "--seconds",
      String(seconds),
      "--scenario",
      scenario,
      ...(values["no-breaker"] ? ["--no-breaker"] : []),
      ...(values.autopipelining ? ["--autopipelining"] : [])
    ],
    { encoding: "utf8" }
  )
  const { ops } = JSON.parse(out.trim().split("\n").pop() ?? "{}") as { ops: number }
  const profile = JSON.parse(fs.readFileSync(path.join(dir, name), "utf8")) as CpuProfile
  const frames = selfTimes(profile)
  const total = frames.reduce((n, f) => n + f.micros, 0)
  const top = Number(values.top)
  const show = (list: typeof frames) =>
    table(
      ["frame", "self ms", "self %"],
      list
        .slice(0, top)
        .map((f) => [f.frame, (f.micros / 1000).toFixed(0), `${((f.micros / total) * 100).toFixed(1)}%`])
    )
  console.log(
    `scenario ${scenario}: ${ops} ops in ${seconds} s (${(ops / seconds / 1e6).toFixed(2)}M ops/s under the profiler)`
  )
  console.log(`\nTop self time, all frames:\n${show(frames)}`)
  const own = frames.filter((f) => f.url.startsWith("src/"))
  const ownTotal = own.reduce((n, f) => n + f.micros, 0)
  console.log(
    `\nTop self time in cachet's src/ (${((ownTotal / total) * 100).toFixed(1)}% of all samples):\n${show(own)}`
  )
  const effect = frames.filter((f) => f.url.includes("node_modules/effect/"))
  const effectTotal = effect.reduce((n, f) => n + f.micros, 0)
  console.log(`\neffect's own code: ${((effectTotal / total) * 100).toFixed(1)}% of all samples`)
  console.log(`\nprofile: ${path.relative(process.cwd(), path.join(dir, name))}`)
}
