// Checks the direction of imports inside src/: no import circle, and no store
// importing the runtime, the strategies or http. Plain ESM, no dependencies.
//
//   node scripts/check-imports.mjs [root]     (root defaults to src)
//
// Reads every `import ... from "./x.ts"` / `export ... from "./x.ts"` (type-only
// imports too: a circle of types is still a circle for a reader). Exits 1 with
// one line per problem.
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"

/** Layers that a store (memory store, Redis stores and their internals) must not import. */
const storeFiles = [/^internal\/memoryStore\.ts$/, /^redis\/[^/]*Store[^/]*\.ts$/, /^redis\/internal\//]
const aboveStores = [
  [/^internal\/runtime(\/|\.ts$)/, "the runtime"],
  [/^Cachet\.ts$/, "the runtime"],
  [/^internal\/strategy\.ts$/, "the strategies"],
  [/^internal\/durableWriteBehind\.ts$/, "the strategies"],
  [/^Strategy\.ts$/, "the strategies"],
  [/^http\//, "http"]
]
/** Further downward rules: [importer, imported, why]. */
const rules = [
  [
    /^(internal|redis|testing)\//,
    /^(Cachet|Strategy)\.ts$/,
    "machinery imports a public facade (Cachet.ts and Strategy.ts are for users, http and index.ts)"
  ],
  [
    /^internal\/runtime(\/|\.ts$)/,
    /^(internal\/strategy\.ts|internal\/durableWriteBehind\.ts|Strategy\.ts|Cachet\.ts|http\/)/,
    "the runtime imports a layer above it"
  ],
  [
    /^(Keyspace\.ts|CacheStore\.ts|CacheError\.ts|internal\/store\.ts)$/,
    /^(internal\/runtime\/|internal\/strategy\.ts|Cachet\.ts|Strategy\.ts|http\/|redis\/)/,
    "the keyspace or store interface imports a layer above it"
  ]
]

const specifier = /^\s*(?:import|export)\s(?:[^"';]*?\sfrom\s)?["'](\.{1,2}\/[^"']+)["']/gm

const listFiles = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return listFiles(path)
    return e.name.endsWith(".ts") ? [path] : []
  })

/** The import graph of `root`: file (relative, `/`-separated) -> files it imports. */
export const graphOf = (root) => {
  const abs = resolve(root)
  const rel = (p) => relative(abs, p).split(sep).join("/")
  const graph = new Map()
  for (const file of listFiles(abs)) {
    const text = readFileSync(file, "utf8")
    const targets = new Set()
    for (const match of text.matchAll(specifier)) {
      const target = resolve(dirname(file), match[1])
      if (target.startsWith(abs + sep)) targets.add(rel(target))
    }
    graph.set(rel(file), [...targets].sort())
  }
  return graph
}

/** Every import circle (strongly connected component of two or more files, or a file importing itself). */
export const circlesOf = (graph) => {
  let index = 0
  const indices = new Map()
  const low = new Map()
  const stack = []
  const onStack = new Set()
  const circles = []
  const visit = (v) => {
    indices.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), indices.get(w)))
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component = []
      let w
      do {
        w = stack.pop()
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(component.sort())
    }
  }
  for (const v of [...graph.keys()].sort()) if (!indices.has(v)) visit(v)
  return circles
}

/** Every problem in `root`, one line each. */
export const check = (root) => {
  const graph = graphOf(root)
  const problems = []
  for (const circle of circlesOf(graph)) problems.push(`import circle: ${circle.join(" <-> ")}`)
  for (const [from, targets] of graph) {
    const isStore = storeFiles.some((p) => p.test(from))
    for (const to of targets) {
      if (isStore) {
        for (const [pattern, what] of aboveStores) {
          if (pattern.test(to)) problems.push(`a store imports ${what}: ${from} -> ${to}`)
        }
      }
      for (const [importer, imported, why] of rules) {
        if (importer.test(from) && imported.test(to)) problems.push(`${why}: ${from} -> ${to}`)
      }
    }
  }
  return problems
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..", "src")
  const problems = check(root)
  for (const p of problems) console.error(p)
  if (problems.length > 0) {
    console.error(`check-imports: ${problems.length} problem(s) in ${root}`)
    process.exit(1)
  }
  console.log(`check-imports: ${graphOf(root).size} files, no circle, no upward import`)
}
