/**
 * The CPU profile of the slow calls `bench/getmany-tail.ts` found: reads a
 * `.cpuprofile` (node --cpu-prof) and the windows file it wrote, and prints
 * per contender where the samples inside its slow calls went, by self time
 * (GC, idle, and the top frames).
 *
 *   node scripts/node24.mjs --expose-gc --cpu-prof --cpu-prof-dir=/tmp/prof bench/getmany-tail.ts --windows /tmp/w.json
 *   node scripts/node24.mjs bench/slow-samples.ts /tmp/prof/<file>.cpuprofile /tmp/w.json [--top 12]
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { table } from "./lib/stats.ts"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "12" } }
})
const [profileFile, windowsFile] = positionals
if (profileFile === undefined || windowsFile === undefined)
  throw new Error("usage: slow-samples.ts <cpuprofile> <windows.json>")
const profile = JSON.parse(readFileSync(profileFile, "utf8")) as Profile
const windows = JSON.parse(readFileSync(windowsFile, "utf8")) as Record<
  string,
  ReadonlyArray<readonly [number, number]>
>
const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]))
const label = (id: number) => {
  const f = frames.get(id)!
  const file = f.url.replace(/^.*\/(node_modules|src|bench)\//, "$1/")
  return f.functionName === ""
    ? `(anonymous) ${file}:${f.lineNumber + 1}`
    : `${f.functionName} ${file}:${f.lineNumber + 1}`
}

// Sample i covers [t_i, t_i + delta_{i+1}).
const times: Array<number> = []
let t = profile.startTime
for (const d of profile.timeDeltas) {
  t += d
  times.push(t)
}
for (const [name, spans] of Object.entries(windows)) {
  const sorted = [...spans].sort((a, b) => a[0] - b[0])
  const self = new Map<string, number>()
  let total = 0
  let w = 0
  for (let i = 0; i < profile.samples.length - 1; i++) {
    const at = times[i]!
    while (w < sorted.length && sorted[w]![1] < at) w++
    if (w >= sorted.length) break
    if (at < sorted[w]![0]) continue
    const dt = times[i + 1]! - at
    const key = label(profile.samples[i]!)
    self.set(key, (self.get(key) ?? 0) + dt)
    total += dt
  }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))
  console.log(`\n${name}: ${sorted.length} slow calls, ${(total / 1000).toFixed(1)} ms of samples inside them`)
  console.log(
    table(
      ["frame", "self ms", "share"],
      top.map(([k, v]) => [k, (v / 1000).toFixed(1), `${((100 * v) / total).toFixed(1)}%`])
    )
  )
}
