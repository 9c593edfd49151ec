/**
 * `npm run bench`: cachet and its peers in one process, scenario by scenario,
 * then the targets of issue 7 with PASS/MISS.
 *
 * Options:
 *   --only a,b        run only these suites (memory, stampede, redis, compression, swr, footprint, hitratio)
 *   --rounds N        rounds per throughput scenario (default 3)
 *   --time MS         tinybench time budget per contender per round (default 400)
 *   --warmup MS       tinybench warm-up budget per contender per round (default 200)
 *   --quick           small budgets (1 round, 100 ms): validates the harness, figures are rough
 *   --json FILE       also write the results as JSON (default bench/results/latest.json)
 *   --markdown FILE   also write the tables as markdown (default bench/results/latest.md)
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"
import {
  describeMachine,
  machine,
  markdownScenario,
  printScenario,
  printTargets,
  type ScenarioResult,
  toJson
} from "./lib/report.ts"
import type { Suite, SuiteOptions } from "./lib/suite.ts"
import { compressionSuite } from "./suites/compression.ts"
import { footprintSuite } from "./suites/footprint.ts"
import { hitratioSuite } from "./suites/hitratio.ts"
import { memorySuite } from "./suites/memory.ts"
import { redisSuite } from "./suites/redis.ts"
import { stampedeSuite } from "./suites/stampede.ts"
import { swrSuite } from "./suites/swr.ts"
import { targets } from "./targets.ts"

const suites: ReadonlyArray<Suite> = [
  memorySuite,
  stampedeSuite,
  redisSuite,
  compressionSuite,
  swrSuite,
  footprintSuite,
  hitratioSuite
]

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    rounds: { type: "string" },
    time: { type: "string" },
    warmup: { type: "string" },
    quick: { type: "boolean", default: false },
    json: { type: "string" },
    markdown: { type: "string" }
  }
})

const quick = values.quick === true
const positive = (name: string, raw: string | undefined, fallback: number): number => {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`bench: --${name} must be a positive number, got ${raw}`)
  return n
}
const options: SuiteOptions = {
  quick,
  rounds: Math.round(positive("rounds", values.rounds, quick ? 1 : 3)),
  timeMs: positive("time", values.time, quick ? 100 : 400),
  warmupMs: positive("warmup", values.warmup, quick ? 50 : 200),
  minBatches: quick ? 3 : 5
}
const only = values.only?.split(",").map((s) => s.trim())
if (only !== undefined) {
  const unknown = only.filter((id) => !suites.some((s) => s.id === id))
  if (unknown.length > 0) {
    throw new Error(`bench: unknown suite(s) ${unknown.join(", ")}; known: ${suites.map((s) => s.id).join(", ")}`)
  }
}
const selected = suites.filter((s) => only === undefined || only.includes(s.id))

const m = machine()
const started = Date.now()
console.log("# cachet benchmarks")
console.log(`machine: ${describeMachine(m)}`)
console.log(
  `method: ${options.rounds} round(s) per scenario, tinybench time ${options.timeMs} ms + warm-up ${options.warmupMs} ms per contender per round; gc ${typeof (globalThis as { gc?: unknown }).gc === "function" ? "between contenders" : "not exposed (run with --expose-gc)"}`
)
console.log("ratios: contender / cachet (below 1.00× means slower than cachet)")

const results = new Map<string, ScenarioResult>()
for (const suite of selected) {
  const t0 = Date.now()
  console.log(`\n# ${suite.title}`)
  let scenarios: ReadonlyArray<ScenarioResult>
  try {
    scenarios = await suite.run(options)
  } catch (error) {
    console.log(`   suite failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
    process.exitCode = 1
    continue
  }
  for (const scenario of scenarios) {
    results.set(scenario.id, scenario)
    printScenario(scenario)
  }
  console.log(`   (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
}

const outcomes = printTargets(targets, results)
const elapsed = (Date.now() - started) / 1000
console.log(`\nfinished in ${elapsed.toFixed(0)} s`)

const resultsDir = path.join(import.meta.dirname, "results")
const jsonFile = values.json ?? path.join(resultsDir, "latest.json")
const mdFile = values.markdown ?? path.join(resultsDir, "latest.md")
fs.mkdirSync(path.dirname(jsonFile), { recursive: true })
fs.mkdirSync(path.dirname(mdFile), { recursive: true })
fs.writeFileSync(
  jsonFile,
  toJson({
    date: new Date(started).toISOString(),
    machine: m,
    options,
    scenarios: [...results.values()].map((s) => ({
      id: s.id,
      title: s.title,
      workload: s.workload,
      skipped: s.skipped,
      rows: s.rows
    })),
    targets: outcomes.map(({ target, outcome }) => ({ id: target.id, description: target.description, ...outcome }))
  })
)
const md = [
  `Run of ${new Date(started).toISOString()} on ${describeMachine(m)}.`,
  `${options.rounds} round(s), ${options.timeMs} ms + ${options.warmupMs} ms warm-up per contender per round.`,
  "",
  ...[...results.values()].map(markdownScenario),
  "**Targets**",
  "",
  "| target | measured | result |",
  "|---|---|---|",
  ...outcomes.map(({ target, outcome }) => `| ${target.description} | ${outcome.measured} | ${outcome.status} |`),
  ""
].join("\n")
fs.writeFileSync(mdFile, md)
console.log(`results: ${path.relative(process.cwd(), jsonFile)}, ${path.relative(process.cwd(), mdFile)}`)
