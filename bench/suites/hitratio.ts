/**
 * Hit ratios on real access traces (issue 15): each trace of
 * `../shared/traces` replayed at a ladder of sizes through OPT (offline
 * Bélády with bypass), lru-cache, an S3-FIFO reference, a static W-TinyLFU
 * (1% window, no adaptation: the issue's baseline), cachet's policy driven
 * directly, and the cachet memory store itself with default options (its
 * seed fixed, so that the two cachet rows must agree to the last hit).
 */
import { join } from "node:path"
import { Effect, Result } from "effect"
import type { EntryCodec, StoredEntry } from "../../src/CacheStore.ts"
import { makeMemory } from "../../src/CacheStore.ts"
import type { Row } from "../lib/measure.ts"
import type { Column, ScenarioResult } from "../lib/report.ts"
import type { Suite } from "../lib/suite.ts"
import { keyNames, loadTrace, lruCache, opt, s3fifo, type Trace, tinyLfu } from "../lib/traces.ts"

/** The README's sizes of each trace, and one more between them. */
export const LADDER: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
  ["web07", [1000, 2500, 5000]],
  ["web12", [1000, 2500, 5000]],
  ["orm-busy", [1000, 5000, 10000]],
  ["orm-night", [2000, 5000, 10000]]
]

/** The seed of the cachet rows: any seed will do, a fixed one makes runs repeatable. */
const SEED = 1

/** Within this many points of the best of LRU and S3-FIFO, or better. */
export const TOLERANCE = 1
/** The most the mean gap to OPT may be, in points. */
export const MAX_MEAN_GAP = 6

const codec: EntryCodec = {
  keyspace: "bench",
  encode: (v) => Result.succeed(v),
  decode: (d) => Result.succeed(d),
  onCorrupt: () => {}
}
const forever: StoredEntry = { value: true, createdAt: 0, freshUntil: 8.64e15, staleUntil: 8.64e15, tags: [] }

/** The real memory store: `getUnsafe` on each request, `set` on a miss. */
const viaStore = (trace: Trace, names: ReadonlyArray<string>, capacity: number): number => {
  const store = Effect.runSync(makeMemory({ capacity, seed: SEED }))
  const getUnsafe = store.getUnsafe!
  const { ids } = trace
  let hits = 0
  for (let i = 0; i < ids.length; i++) {
    const key = names[ids[i]!]!
    if (getUnsafe(key, 0) !== undefined) hits++
    else Effect.runSync(store.set(key, forever, codec))
  }
  return (100 * hits) / ids.length
}

const pct = (key: string, label: string): Column => ({ key, label, format: (v) => v.toFixed(2) })

export const hitratioSuite: Suite = {
  id: "hitratio",
  title: "Hit ratio on real traces (issue 15)",
  run: async () => {
    const dir = join(import.meta.dirname, "..", "..", "..", "shared", "traces")
    const rows: Array<Row> = []
    const notes: Array<string> = []
    for (const [name, sizes] of LADDER) {
      const trace = loadTrace(dir, name)
      if (trace === undefined) {
        notes.push(`${name}: ${join(dir, `${name}.trace.xz`)} not found, skipped`)
        continue
      }
      const names = keyNames(trace)
      for (const capacity of sizes) {
        const t0 = Date.now()
        const o = opt(trace, capacity)
        const lru = lruCache(trace, capacity)
        const s3 = s3fifo(trace, capacity)
        const stat = tinyLfu(trace, names, { capacity, seed: SEED, window: 0.01, adaptive: false })
        const policy = tinyLfu(trace, names, { capacity, seed: SEED })
        const store = viaStore(trace, names, capacity)
        const best = Math.max(lru, s3)
        rows.push({
          name: `${name} @${capacity}`,
          metrics: {
            requests: trace.ids.length,
            opt: o,
            lru,
            s3,
            static: stat,
            policy,
            store,
            gap: o - store,
            pass: store >= best - TOLERANCE ? 1 : 0
          }
        })
        console.log(`   ${name} @${capacity}: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      }
    }
    const gaps = rows.map((r) => r.metrics.gap!)
    const lruGaps = rows.map((r) => r.metrics.opt! - r.metrics.lru!)
    const s3Gaps = rows.map((r) => r.metrics.opt! - r.metrics.s3!)
    const staticGaps = rows.map((r) => r.metrics.opt! - r.metrics.static!)
    const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
    if (rows.length > 0) {
      rows.push({
        name: "mean gap to OPT",
        metrics: {
          lru: mean(lruGaps),
          s3: mean(s3Gaps),
          static: mean(staticGaps),
          gap: mean(gaps),
          pass: mean(gaps) <= MAX_MEAN_GAP ? 1 : 0
        }
      })
    }
    notes.push(
      "hit ratio in % of requests; a miss inserts the key (OPT may bypass it); gap = OPT - cachet store",
      `result: PASS when cachet is within ${TOLERANCE} point of the best of LRU and S3-FIFO or better (last row: mean gap <= ${MAX_MEAN_GAP})`,
      "W-TinyLFU static: 1% window, no adaptation; cachet policy: the policy module driven directly; cachet store: CacheStore.makeMemory({ capacity, seed })",
      "last row: each column's mean gap to OPT over the rows above"
    )
    const result: ScenarioResult = {
      id: "hitratio",
      title: "Hit ratio (%) on real traces",
      workload: "cache2k traces (web07, web12, orm-busy, orm-night), each request a get, a miss a set",
      columns: [
        pct("opt", "OPT"),
        pct("lru", "lru-cache"),
        pct("s3", "S3-FIFO"),
        pct("static", "W-TinyLFU static"),
        pct("policy", "cachet policy"),
        pct("store", "cachet store"),
        pct("gap", "gap to OPT"),
        { key: "pass", label: "result", format: (v) => (v === 1 ? "PASS" : "MISS") }
      ],
      rows,
      notes,
      skipped: rows.length === 0 ? `no traces in ${dir}` : undefined
    }
    return [result]
  }
}
