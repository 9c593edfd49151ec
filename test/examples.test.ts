import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { promisify } from "node:util"
import { assert, describe, it } from "@effect/vitest"

// These run the examples as a user would, as child processes, in real time:
// the README's quick start must run as written, and so must `npm run demo`.
const run = promisify(execFile)

describe("examples", () => {
  it("the README quick start runs as written", { timeout: 30_000 }, async () => {
    const { stdout } = await run(process.execPath, ["examples/quickstart.ts"])
    assert.strictEqual(stdout.trim(), "Ada Ada hits=1 misses=1")
  })

  it("the README shows the quick start exactly as the file that runs", () => {
    const readme = readFileSync("README.md", "utf8")
    const section = readme.slice(readme.indexOf("## Quick start"))
    const block = section.slice(section.indexOf("```ts\n") + 6, section.indexOf("\n```", section.indexOf("```ts\n")))
    assert.strictEqual(block.trim(), readFileSync("examples/quickstart.ts", "utf8").trim())
  })

  it("the demo narrates its five steps and ends with a stats table", { timeout: 30_000 }, async () => {
    const { stdout } = await run(process.execPath, ["examples/demo.ts"], { env: { ...process.env, REDIS_URL: "" } })
    assert.match(stdout, /100 answers in [\d.]+ ms, loader ran 1 time\(s\)/)
    assert.match(stdout, /reloaded 3 \(the org 7 ones/)
    assert.match(stdout, /the requests all succeeded \(served by the loader\)/)
    assert.match(stdout, /^\s+total\s+\d+/m)
  })
})
