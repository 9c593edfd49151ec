/**
 * Where the memory hit's time goes, contender by contender, in one process:
 * cachet's cacheAside (data-last, through `pipe`, and data-first) and
 * `Cachet.cached`, effect's `Cache.get` and the floors of `bench/hit-ab.ts`
 * run in alternating windows, each window under its own CPU profile (an
 * inspector session, started and stopped around the window), and every
 * sample is charged to a category by the code it was in:
 *
 * - `cachet`: this repository's `src/`;
 * - `effect`: `node_modules/effect/` (the fiber's run loop, `pipe`,
 *   `Effect.sync`, `withFiber`, and for `Cache.get` its `MutableHashMap`);
 * - `caller`: the bench's own frames (the loop, `findUser`, the body building
 *   the read): what application code pays around any cache;
 * - `gc`, `native` (builtins and V8 frames without a script) and `node`.
 *
 * Rounds alternate: an unprofiled one (its wall time per hit, and effect's
 * time over the contender's in the same round, are the figures to quote) and
 * a profiled one (100 µs sampling; its samples are split by category).
 * Reported per contender: the unprofiled wall ns per hit and ratio, the
 * profiled wall and the ns per hit of each category; then cachet minus
 * effect per category: the split of the gap that `npm run bench`'s fiber and
 * runPromise rows show; the top frames of cacheAside and Cache.get; and
 * cachet's hottest source lines (the profile's line ticks; inlined callees
 * are charged to the caller's line).
 *
 *   node scripts/node24.mjs --expose-gc bench/hit-split.ts [fiber|promise] [--windows 10] [--window-ms 300] [--keys 1000]
 *
 * Windows are long (300 ms of one contender, like the suite's 400 ms budget)
 * so that each contender runs with its own data warm in the CPU caches, as in
 * the suite; the order reverses every other round. `--keys`: how many hot keys
 * (1,000 as in the suite; the caches hold at least twice as many).
 */
import { Session } from "node:inspector/promises"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { Cache, Effect, ManagedRuntime } from "effect"
import { Cachet, Strategy } from "../src/index.ts"
import { idSequence, makeUser, Users } from "./lib/fixtures.ts"
import { table } from "./lib/stats.ts"

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    keys: { type: "string", default: "1000" },
    windows: { type: "string", default: "10" },
    "window-ms": { type: "string", default: "300" }
  }
})
const mode = positionals[0] ?? "fiber"
if (mode !== "fiber" && mode !== "promise") throw new Error("usage: bench/hit-split.ts [fiber|promise]")
const windows = Number(values.windows)
const windowMs = Number(values["window-ms"])

const KEYS = Number(values.keys)
// Every key stays cached: the caches hold at least twice as many.
const CAPACITY = Math.max(10_000, 2 * KEYS)
const users = Array.from({ length: KEYS }, (_, i) => makeUser(i))
const seq = idSequence(1 << 16, KEYS)
const findUser = (id: number) => Effect.sync(() => users[id % KEYS]!)

const runtime = ManagedRuntime.make(Cachet.layerMemory({ capacity: CAPACITY }))
const run = Effect.runPromiseWith(await runtime.context())
const get = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))
const cached = Cachet.cached(Users, (p: { readonly id: number }) => findUser(p.id), Strategy.cacheAside)
const cache = await Effect.runPromise(
  Cache.make({ capacity: CAPACITY, lookup: (id: number) => findUser(id), timeToLive: 3_600_000 })
)
await run(Effect.forEach(users, (u) => get(u.id), { discard: true }))
await Effect.runPromise(Effect.forEach(users, (u) => Cache.get(cache, u.id), { discard: true }))
const keys = new Map(users.map((u) => [u.id, `user:${u.id}`]))
const map = new Map(users.map((u) => [`user:${u.id}`, u]))
let sink: unknown

type Body = (id: number) => Effect.Effect<unknown, unknown, any>
const N = mode === "fiber" ? 5_000 : 2_000
/** One batch of N hits; returns ms. */
const batchOf = (body: Body) =>
  mode === "fiber"
    ? (off: number) =>
        run(
          Effect.gen(function* () {
            const s = performance.now()
            for (let i = 0; i < N; i++) yield* body(seq[(off + i) & 0xffff]!)
            return performance.now() - s
          })
        )
    : async (off: number) => {
        const s = performance.now()
        for (let i = 0; i < N; i++) await run(body(seq[(off + i) & 0xffff]!))
        return performance.now() - s
      }

const contenders: ReadonlyArray<{ name: string; body: Body }> = [
  { name: "cachet cacheAside", body: get },
  { name: "cachet data-first", body: (id) => Strategy.cacheAside(findUser(id), Users, { id }) },
  { name: "cachet Cachet.cached", body: (id) => cached({ id }) },
  {
    // Cachet.cached's hit inside the caller's `findUser(id).pipe(...)`.
    name: "caller's form, cached",
    body: (id) =>
      findUser(id).pipe((self) => {
        sink = self
        return cached({ id })
      })
  },
  { name: "effect Cache.get", body: (id) => Cache.get(cache, id) },
  { name: "floor withFiber+succeed", body: (id) => Effect.withFiber(() => Effect.succeed(users[id])) },
  {
    name: "floor +{id} Map Date",
    body: (id) => {
      const p = { id }
      return Effect.withFiber(() => {
        const k = keys.get(p.id)
        const n = Date.now()
        return Effect.succeed(k === undefined || n < 0 ? undefined : map.get(k))
      })
    }
  }
]

interface Node {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
  readonly positionTicks?: ReadonlyArray<{ readonly line: number; readonly ticks: number }>
}
interface Profile {
  readonly nodes: ReadonlyArray<Node>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}
const CATEGORIES = ["cachet", "effect", "caller", "gc", "native", "node"] as const
type Category = (typeof CATEGORIES)[number]
const root = path.resolve(import.meta.dirname, "..")
const categoryOf = (frame: Node["callFrame"]): Category => {
  const url = frame.url.replace(/^file:\/\//, "")
  if (frame.functionName === "(garbage collector)") return "gc"
  if (url.includes("/node_modules/effect/")) return "effect"
  if (url.startsWith(path.join(root, "src"))) return "cachet"
  if (url.startsWith(path.join(root, "bench"))) return "caller"
  if (url.startsWith("node:")) return "node"
  return "native"
}

interface Tally {
  /** Hits of the profiled rounds, and their wall time under the profiler. */
  ops: number
  profiledMs: number
  /** Hits and wall time of the unprofiled rounds, and each round's ns per hit. */
  wallOps: number
  wallMs: number
  readonly rounds: Array<number>
  readonly micros: Record<Category, number>
  readonly frames: Map<string, number>
  /** cachet's source lines: samples per file:line (the profile's position ticks). */
  readonly lines: Map<string, number>
}
const tallies = new Map<string, Tally>(
  contenders.map((c) => [
    c.name,
    {
      ops: 0,
      profiledMs: 0,
      wallOps: 0,
      wallMs: 0,
      rounds: [],
      micros: Object.fromEntries(CATEGORIES.map((k) => [k, 0])) as Record<Category, number>,
      frames: new Map(),
      lines: new Map()
    }
  ])
)

const session = new Session()
session.connect()
await session.post("Profiler.enable")
await session.post("Profiler.setSamplingInterval", { interval: 100 })
const gc = (globalThis as { gc?: () => void }).gc
let off = 0
// Rounds alternate: one unprofiled (its wall time is the figure to quote),
// one profiled (its samples are split by category).
for (let round = -1; round < 2 * windows; round++) {
  const order = round % 4 < 2 ? contenders : [...contenders].reverse()
  const profiled = round >= 0 && round % 2 === 1
  for (const c of order) {
    const batch = batchOf(c.body)
    gc?.()
    if (profiled) await session.post("Profiler.start")
    const start = performance.now()
    let ops = 0
    let wall = 0
    while (performance.now() - start < windowMs) {
      wall += await batch(off)
      off = (off + N) & 0xffff
      ops += N
    }
    if (round < 0) continue
    const tally = tallies.get(c.name)!
    if (!profiled) {
      tally.wallOps += ops
      tally.wallMs += wall
      tally.rounds.push((wall * 1e6) / ops)
      continue
    }
    const { profile } = (await session.post("Profiler.stop")) as unknown as { profile: Profile }
    tally.ops += ops
    tally.profiledMs += wall
    const byId = new Map(profile.nodes.map((n) => [n.id, n]))
    for (let i = 0; i < profile.samples.length; i++) {
      const node = byId.get(profile.samples[i]!)
      if (node === undefined) continue
      const f = node.callFrame
      // The profiler's own frames (its stop, after the window) and the VM's idle time are no hit's.
      if (f.functionName === "(idle)" || f.functionName === "(program)" || f.functionName === "(root)") continue
      if (f.url === "node:inspector") continue
      const micros = profile.timeDeltas[i] ?? 0
      tally.micros[categoryOf(f)] += micros
      const url = f.url.replace(/^file:\/\//, "")
      const frame = `${f.functionName || "(anonymous)"} ${url.startsWith(root) ? path.relative(root, url) : url.replace(/.*node_modules\//, "")}:${f.lineNumber + 1}`
      tally.frames.set(frame, (tally.frames.get(frame) ?? 0) + micros)
    }
    // Line ticks count samples (of ~the sampling interval each) per source line.
    for (const node of profile.nodes) {
      if (categoryOf(node.callFrame) !== "cachet" || node.positionTicks === undefined) continue
      const file = path.relative(root, node.callFrame.url.replace(/^file:\/\//, ""))
      for (const { line, ticks } of node.positionTicks) {
        const at = `${file}:${line}`
        tally.lines.set(at, (tally.lines.get(at) ?? 0) + ticks * 100)
      }
    }
  }
}
session.disconnect()
await runtime.dispose()
if (sink === 0) console.log(sink)

const ns = (micros: number, ops: number) => (micros * 1000) / ops
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const effectRounds = tallies.get("effect Cache.get")!.rounds
console.log(
  `${mode}, ${KEYS} keys: ${windows} unprofiled and ${windows} profiled rounds, each contender ${windowMs} ms a round (order reversed every other pair).\n` +
    "wall: median ns per hit of the unprofiled rounds; vs effect: median over those rounds of effect's time / the contender's in the same round;\n" +
    "then ns per hit of the profiled rounds (100 µs sampling): wall under the profiler and CPU samples by category"
)
console.log(
  table(
    ["contender", "wall", "vs effect", "profiled", ...CATEGORIES],
    contenders.map((c) => {
      const t = tallies.get(c.name)!
      return [
        c.name,
        median(t.rounds).toFixed(0),
        `${median(t.rounds.map((x, i) => effectRounds[i]! / x)).toFixed(2)}x`,
        ns(t.profiledMs * 1000, t.ops).toFixed(0),
        ...CATEGORIES.map((k) => ns(t.micros[k], t.ops).toFixed(0))
      ]
    })
  )
)
const diff = (a: string, b: string) => {
  const ta = tallies.get(a)!
  const tb = tallies.get(b)!
  console.log(
    `\n${a} minus ${b}, ns per hit: wall ${(median(ta.rounds) - median(tb.rounds)).toFixed(0)}; profiled ${(ns(ta.profiledMs * 1000, ta.ops) - ns(tb.profiledMs * 1000, tb.ops)).toFixed(0)}: ` +
      CATEGORIES.map((k) => `${k} ${(ns(ta.micros[k], ta.ops) - ns(tb.micros[k], tb.ops)).toFixed(0)}`).join(", ")
  )
}
diff("cachet cacheAside", "effect Cache.get")
diff("cachet data-first", "effect Cache.get")
diff("cachet Cachet.cached", "effect Cache.get")
diff("cachet cacheAside", "cachet Cachet.cached")
for (const name of ["cachet cacheAside", "effect Cache.get"]) {
  const t = tallies.get(name)!
  const top = [...t.frames].sort((x, y) => y[1] - x[1]).slice(0, 14)
  console.log(`\ntop frames of ${name} (ns per hit):`)
  console.log(
    table(
      ["frame", "ns"],
      top.map(([f, m]) => [f, ns(m, t.ops).toFixed(1)])
    )
  )
}
const lines = tallies.get("cachet cacheAside")!
console.log("\nhot lines of cachet's src/ in cachet cacheAside (ns per hit, from line ticks):")
console.log(
  table(
    ["line", "ns"],
    [...lines.lines]
      .sort((x, y) => y[1] - x[1])
      .slice(0, 16)
      .map(([l, m]) => [l, ns(m, lines.ops).toFixed(1)])
  )
)
