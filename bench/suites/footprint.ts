/**
 * Memory per entry (see bench/footprint.ts for the method): each contender in
 * its own `node --expose-gc` child process.
 */
import { ENTRIES, measureAll } from "../footprint.ts"
import type { Row } from "../lib/measure.ts"
import { bytesColumn, countColumn } from "../lib/report.ts"
import type { Suite } from "../lib/suite.ts"

export const footprintSuite: Suite = {
  id: "footprint",
  title: "Memory footprint per entry",
  run: async () => {
    const rows = measureAll().map(
      (r): Row =>
        typeof r === "string"
          ? { name: r.split(":")[0] ?? r, metrics: {}, error: r }
          : { name: r.contender, metrics: { overhead: r.overhead, valueBytes: r.valueBytes, held: r.held } }
    )
    return [
      {
        id: "footprint",
        title: "Memory: bytes per entry",
        workload: `${ENTRIES.toLocaleString("en")} entries of a ~1 KB object under keys user:<i>; heapUsed after gc, values held in a plain array subtracted; one process per contender`,
        columns: [
          bytesColumn("overhead", "structure/entry"),
          bytesColumn("valueBytes", "value/entry"),
          countColumn("held", "entries held")
        ],
        rows,
        ratioOf: "overhead",
        baseline: "cachet memory store",
        notes: [
          "structure/entry includes the key string, the entry node and the map slot; value/entry is the ~1 KB object itself (shared, not copied)",
          "BentoCache with serialize: false (values kept as objects); effect Cache keyed by the same strings"
        ]
      }
    ]
  }
}
