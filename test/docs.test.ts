import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"

// Docs are product: every public export (src/*.ts and the entry points'
// modules, not src/**/internal) has a JSDoc block with a summary, an example
// and @since.
const publicModules = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return e.name === "internal" ? [] : publicModules(path)
    return e.name.endsWith(".ts") && e.name !== "index.ts" ? [path] : []
  })

const exportPattern = /^export (?:declare )?(?:const|function|class|interface|type|abstract class) ([A-Za-z0-9_$]+)/

const undocumented = (file: string): Array<string> => {
  const lines = readFileSync(file, "utf8").split("\n")
  const problems: Array<string> = []
  lines.forEach((line, i) => {
    const match = exportPattern.exec(line)
    if (!match) return
    // Find the JSDoc block that ends right above the export.
    let end = i - 1
    while (end >= 0 && lines[end]!.trim() === "") end--
    if (end < 0 || !lines[end]!.trim().endsWith("*/")) {
      problems.push(`${match[1]}: no JSDoc`)
      return
    }
    let start = end
    while (start >= 0 && !lines[start]!.includes("/**")) start--
    const doc = lines.slice(start, end + 1).join("\n")
    const summary = doc
      .replace(/\/\*\*|\*\//g, "")
      .split("\n")
      .map((l) => l.replace(/^\s*\* ?/, "").trim())
      .find((l) => l.length > 0)
    const isTypeOnlyAlias = /^export type \w+ = [\w.]+(<.*>)?$/.test(line.trim()) && doc.includes("@since")
    if (!summary || summary.startsWith("@")) {
      if (!isTypeOnlyAlias) problems.push(`${match[1]}: no summary`)
    }
    if (!doc.includes("@since")) problems.push(`${match[1]}: no @since`)
    if (!isTypeOnlyAlias && !/@example|\*\*Example\*\*/.test(doc) && !/^export type /.test(line.trim())) {
      problems.push(`${match[1]}: no example`)
    }
  })
  return problems
}

describe("public API docs", () => {
  for (const file of publicModules("src")) {
    it(`${file}: every export has a summary, an example and @since`, () => {
      assert.deepStrictEqual(undocumented(file), [])
    })
  }
})
