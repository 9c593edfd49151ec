import { spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
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

// README blocks fenced as ```ts runnable are whole programs: they are
// type-checked here by the project's tsc (TypeScript 7 has no in-process
// compiler API), as files of the package (so `import ... from "cachet"`
// resolves to src/), in a directory removed afterwards.
const runnableBlocks = (markdown: string): Array<{ readonly line: number; readonly code: string }> => {
  const blocks: Array<{ line: number; code: string }> = []
  const pattern = /^```ts runnable\n([\s\S]*?)^```$/gm
  for (const match of markdown.matchAll(pattern)) {
    blocks.push({ line: markdown.slice(0, match.index).split("\n").length, code: match[1]! })
  }
  return blocks
}

describe("README examples", () => {
  it("every ```ts runnable block type-checks and runs", { timeout: 120_000 }, () => {
    const blocks = runnableBlocks(readFileSync("README.md", "utf8"))
    assert.isAbove(blocks.length, 0)
    const dir = mkdtempSync(join("test", ".readme-"))
    try {
      for (const block of blocks) writeFileSync(join(dir, `line_${block.line}.ts`), block.code)
      writeFileSync(
        join(dir, "tsconfig.json"),
        JSON.stringify({
          extends: "../../tsconfig.json",
          include: ["*.ts"],
          compilerOptions: { noUnusedLocals: false }
        })
      )
      const result = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "--noEmit", "-p", dir], {
        encoding: "utf8"
      })
      assert.strictEqual(`${result.stdout}${result.stderr}`.trim(), "")
      assert.strictEqual(result.status, 0)
      // And they run as written (node strips the types), in real time.
      for (const block of blocks) {
        const run = spawnSync(process.execPath, [join(dir, `line_${block.line}.ts`)], {
          encoding: "utf8",
          timeout: 30_000
        })
        assert.strictEqual(run.status, 0, `README line ${block.line}: ${run.stderr}`)
        assert.notStrictEqual(run.stdout.trim(), "", `README line ${block.line} printed nothing`)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
