import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { assert, describe, it } from "@effect/vitest"

// `npm run lint` runs scripts/check-imports.mjs; these pin what it catches.
const script = join(import.meta.dirname, "..", "scripts", "check-imports.mjs")

const run = (root?: string): { code: number; output: string } => {
  try {
    const out = execFileSync(process.execPath, root === undefined ? [script] : [script, root], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"]
    })
    return { code: 0, output: out }
  } catch (error) {
    const e = error as { status: number; stdout: string; stderr: string }
    return { code: e.status, output: e.stdout + e.stderr }
  }
}

const synthetic = (files: Record<string, string>): string => {
  const root = mkdtempSync(join(tmpdir(), "cachet-imports-"))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  return root
}

describe("import direction (scripts/check-imports.mjs)", () => {
  it("src/ has no import circle and no upward import", () => {
    const { code, output } = run()
    assert.strictEqual(code, 0, output)
  })

  it("detects a circle, type-only and multi-line imports included", () => {
    const root = synthetic({
      "a.ts": `import { b } from "./b.ts"\nexport const a = b\n`,
      "b.ts": `import type {\n  C\n} from "./deep/c.ts"\nexport const b = 1\n`,
      "deep/c.ts": `export type { A } from "../a.ts"\nexport type C = number\n`,
      "d.ts": `import { a } from "./a.ts"\nexport const d = a\n`
    })
    try {
      const { code, output } = run(root)
      assert.strictEqual(code, 1)
      assert.include(output, "import circle: a.ts <-> b.ts <-> deep/c.ts")
      assert.notInclude(output, "d.ts")
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it("detects a store importing the runtime", () => {
    const root = synthetic({
      "internal/runtime/service.ts": `export const x = 1\n`,
      "redis/internal/lease.ts": `import { x } from "../../internal/runtime/service.ts"\nexport const y = x\n`
    })
    try {
      const { code, output } = run(root)
      assert.strictEqual(code, 1)
      assert.include(output, "a store imports the runtime: redis/internal/lease.ts -> internal/runtime/service.ts")
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })
})
