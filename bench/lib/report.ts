/**
 * Scenario results, their tables (console and markdown), and the targets of
 * issue 7 with PASS/MISS.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import type { Row } from "./measure.ts"
import { formatBytes, formatMs, formatOps, formatRatio, markdownTable, table } from "./stats.ts"

/** How a metric is shown. */
export interface Column {
  readonly key: string
  readonly label: string
  readonly format: (value: number, row: Row) => string
}

export interface ScenarioResult {
  readonly id: string
  readonly title: string
  /** One-line description of the workload. */
  readonly workload: string
  readonly columns: ReadonlyArray<Column>
  readonly rows: ReadonlyArray<Row>
  /** The metric each row is compared to the baseline row on (contender / baseline). */
  readonly ratioOf?: string | undefined
  /** The row every ratio is relative to (cachet). */
  readonly baseline?: string | undefined
  readonly notes: ReadonlyArray<string>
  /** Set when the whole scenario did not run. */
  readonly skipped?: string | undefined
}

/** The standard columns of a throughput scenario. */
/** Scenarios that could not run here, each saying why. */
export const skippedScenarios = (ids: ReadonlyArray<string>, reason: string): Array<ScenarioResult> =>
  ids.map((id) => ({ id, title: id, workload: "", columns: [], rows: [], notes: [], skipped: reason }))

export const throughputColumns: ReadonlyArray<Column> = [
  { key: "ops", label: "ops/s", format: (v) => formatOps(v) },
  {
    key: "p50",
    label: "p50",
    format: (v, row) => `${formatMs(v)}${row.metrics.perRequest === 1 ? "" : "*"}`
  },
  {
    key: "p99",
    label: "p99",
    format: (v, row) => `${formatMs(v)}${row.metrics.perRequest === 1 ? "" : "*"}`
  },
  { key: "spread", label: "noise", format: (v) => `±${((v * 100) / 2).toFixed(1)}%` }
]

export const bytesColumn = (key: string, label: string): Column => ({ key, label, format: (v) => formatBytes(v) })
export const msColumn = (key: string, label: string): Column => ({ key, label, format: (v) => formatMs(v) })
export const countColumn = (key: string, label: string): Column => ({
  key,
  label,
  format: (v) => (Number.isFinite(v) ? String(Math.round(v)) : "-")
})
export const opsColumn = (key: string, label: string): Column => ({ key, label, format: (v) => formatOps(v) })

const ratioOf = (scenario: ScenarioResult, row: Row): number => {
  if (scenario.ratioOf === undefined || scenario.baseline === undefined) return Number.NaN
  const base = scenario.rows.find((r) => r.name === scenario.baseline)
  const a = row.metrics[scenario.ratioOf]
  const b = base?.metrics[scenario.ratioOf]
  return a === undefined || b === undefined ? Number.NaN : a / b
}

const cells = (scenario: ScenarioResult, row: Row): Array<string> => {
  if (row.skipped !== undefined) return [row.name, ...scenario.columns.map(() => "-"), `skipped: ${row.skipped}`]
  if (row.error !== undefined) return [row.name, ...scenario.columns.map(() => "-"), `error: ${row.error}`]
  const values = scenario.columns.map((c) => {
    const v = row.metrics[c.key]
    return v === undefined ? "-" : c.format(v, row)
  })
  const ratio = scenario.ratioOf === undefined ? [] : [formatRatio(ratioOf(scenario, row))]
  return [row.name, ...values, ...ratio]
}

const header = (scenario: ScenarioResult): Array<string> => [
  "contender",
  ...scenario.columns.map((c) => c.label),
  ...(scenario.ratioOf === undefined ? [] : ["vs cachet"])
]

/** The console rendering of a scenario. */
export const printScenario = (scenario: ScenarioResult): void => {
  console.log(`\n## ${scenario.title}`)
  console.log(`   ${scenario.workload}`)
  if (scenario.skipped !== undefined) {
    console.log(`   SKIPPED: ${scenario.skipped}`)
    return
  }
  const rows = scenario.rows.map((r) => cells(scenario, r))
  // Rows with a skip/error note carry one more cell than the header.
  const width = Math.max(header(scenario).length, ...rows.map((r) => r.length))
  const head = [...header(scenario)]
  while (head.length < width) head.push("")
  console.log(
    table(
      head,
      rows.map((r) => [...r, ...Array.from({ length: width - r.length }, () => "")])
    )
      .split("\n")
      .map((l) => `   ${l}`)
      .join("\n")
  )
  for (const note of scenario.notes) console.log(`   note: ${note}`)
}

export const markdownScenario = (scenario: ScenarioResult): string => {
  const title = `**${scenario.title}**: ${scenario.workload}`
  if (scenario.skipped !== undefined) return `${title}\n\nSkipped: ${scenario.skipped}\n`
  const rows = scenario.rows.map((r) => {
    const c = cells(scenario, r)
    const width = header(scenario).length
    return c.length > width ? [...c.slice(0, width - 1), c.slice(width - 1).join(" ")] : c
  })
  const notes = scenario.notes.map((n) => `- ${n}`).join("\n")
  return `${title}\n\n${markdownTable(header(scenario), rows)}\n${notes === "" ? "" : `\n${notes}\n`}`
}

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

export interface Target {
  readonly id: string
  readonly description: string
  /** The measured figure, or a reason it could not be measured. */
  readonly evaluate: (results: ReadonlyMap<string, ScenarioResult>) => TargetOutcome
}

export type TargetOutcome =
  | { readonly status: "PASS" | "MISS"; readonly measured: string }
  | { readonly status: "SKIP"; readonly measured: string }

/** A metric of one row of one scenario, if it was measured. */
export const metric = (
  results: ReadonlyMap<string, ScenarioResult>,
  scenario: string,
  row: string,
  key: string
): number | undefined => {
  const result = results.get(scenario)
  if (result === undefined || result.skipped !== undefined) return undefined
  const r = result.rows.find((x) => x.name === row)
  if (r === undefined || r.skipped !== undefined || r.error !== undefined) return undefined
  return r.metrics[key]
}

/** Target: cachet's metric / peer's metric >= min (throughput-style). */
export const ratioTarget = (
  id: string,
  description: string,
  scenario: string,
  cachet: string,
  peer: string,
  min: number,
  key = "ops"
): Target => ({
  id,
  description,
  evaluate: (results) => {
    const a = metric(results, scenario, cachet, key)
    const b = metric(results, scenario, peer, key)
    if (a === undefined || b === undefined) return { status: "SKIP", measured: "not measured" }
    const ratio = a / b
    return {
      status: ratio >= min ? "PASS" : "MISS",
      measured: `${formatRatio(ratio)} (${formatOps(a)} vs ${formatOps(b)} ops/s)`
    }
  }
})

export const printTargets = (targets: ReadonlyArray<Target>, results: ReadonlyMap<string, ScenarioResult>) => {
  const outcomes = targets.map((t) => ({ target: t, outcome: t.evaluate(results) }))
  console.log("\n## Targets (issues 7, 12, 15)")
  console.log(
    table(
      ["target", "measured", "result"],
      outcomes.map(({ target, outcome }) => [target.description, outcome.measured, outcome.status])
    )
      .split("\n")
      .map((l) => `   ${l}`)
      .join("\n")
  )
  return outcomes
}

// ---------------------------------------------------------------------------
// Machine
// ---------------------------------------------------------------------------

export interface Machine {
  readonly cpu: string
  readonly nproc: number
  readonly node: string
  readonly platform: string
  readonly memoryGiB: number
  readonly loadAverage: ReadonlyArray<number>
}

export const machine = (): Machine => {
  let cpu = os.cpus()[0]?.model ?? "unknown"
  try {
    const info = fs.readFileSync("/proc/cpuinfo", "utf8")
    const match = /^model name\s*:\s*(.+)$/m.exec(info)
    if (match?.[1] !== undefined) cpu = match[1].trim()
  } catch {
    // not Linux
  }
  return {
    cpu,
    nproc: os.availableParallelism(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100)
  }
}

export const describeMachine = (m: Machine): string =>
  `${m.nproc} CPU(s) (nproc), ${m.cpu}, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}; load average at start ${m.loadAverage.join(" ")}`

/**
 * JSON as biome formats it (so `biome check bench` passes on the results
 * files): objects expanded, arrays on one line when they fit in 120 columns.
 */
export const toJson = (value: unknown): string => {
  const WIDTH = 120
  const go = (v: unknown, indent: string, prefix: number): string => {
    if (v === undefined) return "null"
    if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null"
    const inner = `${indent}  `
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]"
      const items = v.map((x) => go(x, inner, 0))
      const inline = `[${items.join(", ")}]`
      if (!inline.includes("\n") && indent.length + prefix + inline.length + 1 <= WIDTH) return inline
      return `[\n${v.map((x) => `${inner}${go(x, inner, 0)}`).join(",\n")}\n${indent}]`
    }
    const entries = Object.entries(v).filter(([, x]) => x !== undefined)
    if (entries.length === 0) return "{}"
    return `{\n${entries
      .map(([k, x]) => {
        const key = `${JSON.stringify(k)}: `
        return `${inner}${key}${go(x, inner, key.length)}`
      })
      .join(",\n")}\n${indent}}`
  }
  return `${go(value, "", 0)}\n`
}
