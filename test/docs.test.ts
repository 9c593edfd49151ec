import { execFile } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { requireRedis } from "./harness/redis.ts"
import { sharedServer } from "./redis/helpers.ts"

const run = promisify(execFile)

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

// README examples: a ```ts block right after `<!-- docs:compile -->` must
// type-check as written (against the package itself: `import ... from
// "cachet"`); one after `<!-- docs:run -->` must also run, exit 0. They are
// written under the repository (so that "cachet" resolves to this package)
// and removed after.
const readmeBlocks = (): Array<{ readonly code: string; readonly run: boolean; readonly line: number }> => {
  const lines = readFileSync("README.md", "utf8").split("\n")
  const blocks: Array<{ code: string; run: boolean; line: number }> = []
  lines.forEach((line, i) => {
    const marker = /^<!-- docs:(compile|run) -->$/.exec(line.trim())
    if (!marker) return
    let start = i + 1
    while (lines[start]?.trim() === "") start++
    if (lines[start] !== "```ts") throw new Error(`README.md:${i + 1}: a docs marker must precede a \`\`\`ts block`)
    const end = lines.indexOf("```", start + 1)
    blocks.push({ code: lines.slice(start + 1, end).join("\n"), run: marker[1] === "run", line: start + 1 })
  })
  return blocks
}

describe("README examples", () => {
  it("every marked block type-checks, and the runnable ones run", { timeout: 180_000 }, async () => {
    const { execFile } = await import("node:child_process")
    const { mkdirSync, rmSync, writeFileSync } = await import("node:fs")
    const { promisify } = await import("node:util")
    const run = promisify(execFile)
    const blocks = readmeBlocks()
    assert.isAtLeast(blocks.length, 6, "the README's marked examples")
    const dir = ".docs-check"
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir)
    try {
      const files = blocks.map((block) => {
        const file = join(dir, `readme-${block.line}.ts`)
        writeFileSync(file, `${block.code}\nexport {}\n`)
        return { ...block, file }
      })
      writeFileSync(
        join(dir, "tsconfig.json"),
        JSON.stringify({
          extends: "../tsconfig.json",
          // Examples declare what they show, not all of it used.
          compilerOptions: { noUnusedLocals: false, noUnusedParameters: false },
          include: ["*.ts"]
        })
      )
      const tsc = await run(process.execPath, [
        "node_modules/typescript/bin/tsc",
        "-p",
        join(dir, "tsconfig.json")
      ]).then(
        () => "",
        (error: { stdout?: string }) => error.stdout ?? String(error)
      )
      assert.strictEqual(tsc, "", "README examples type-check (file names carry the README line)")
      for (const block of files.filter((b) => b.run)) {
        await run(process.execPath, [block.file], { timeout: 30_000 }).catch((error: { stderr?: string }) => {
          throw new Error(`README.md:${block.line}: the example failed: ${error.stderr ?? String(error)}`)
        })
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

// README examples marked `<!-- example: <file> -->` are the files as written
// (which `tsc -p .` compiles, examples/ included), and the suite runs them.
describe("README examples shown as files", () => {
  const readme = readFileSync("README.md", "utf8")
  const marked = [...readme.matchAll(/<!-- example: (\S+) -->\n```ts\n([\s\S]*?)\n```/g)].map((m) => ({
    file: m[1]!,
    block: m[2]!
  }))

  it("the marked examples are there", () => {
    assert.deepStrictEqual(marked.map((m) => m.file).sort(), [
      "examples/readme/compression.ts",
      "examples/readme/observability.ts"
    ])
  })

  for (const { file, block } of marked) {
    it(`${file} is shown exactly as the file`, () => {
      assert.strictEqual(block.trim(), readFileSync(file, "utf8").trim())
    })
  }

  it("the observability example runs as written", { timeout: 30_000 }, async () => {
    const { stdout } = await run(process.execPath, ["examples/readme/observability.ts"])
    assert.strictEqual(
      stdout.trim(),
      [
        "spans: GET /products/:id, cachet.load, cachet.store.set, GET /products/:id",
        "load: miss",
        "events: Miss, Load, Set, Hit",
        "health: ok, store memory, journal 0"
      ].join("\n")
    )
  })

  describe.skipIf(!requireRedis())("on a harness Redis", () => {
    const redis = sharedServer()
    it("the compression example runs as written", { timeout: 30_000 }, async () => {
      const { stdout } = await run(process.execPath, ["examples/readme/compression.ts"], {
        env: { ...process.env, REDIS_URL: redis.get().url }
      })
      assert.strictEqual(stdout.trim(), "read back: true, decode errors: 0")
      const raw = await Effect.runPromise(redis.get().command("STRLEN", "readme:page:home"))
      assert.isBelow(Number(raw), 10_000, "stored compressed")
    })
  })
})
