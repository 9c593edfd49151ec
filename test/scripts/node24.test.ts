import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"

// scripts/node24.mjs runs `npm run serve`, `demo`, `bench` and `test` as a
// child process. These tests run real processes and real signals, so they
// wait on conditions with bounded polling (real time: the processes are
// outside Effect's clock).

const launcher = join(import.meta.dirname, "..", "..", "scripts", "node24.mjs")

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const until = async (condition: () => boolean, ms: number): Promise<boolean> => {
  const deadline = performance.now() + ms
  while (performance.now() < deadline) {
    if (condition()) return true
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return condition()
}

const start = (body: string) => {
  const dir = mkdtempSync(join(tmpdir(), "cachet-node24-"))
  const pidFile = join(dir, "pid")
  const script = join(dir, "child.mjs")
  writeFileSync(
    script,
    `import { writeFileSync } from "node:fs"\nwriteFileSync(${JSON.stringify(pidFile)}, String(process.pid))\n${body}\n`
  )
  const wrapper = spawn(process.execPath, [launcher, script], { stdio: "ignore" })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    wrapper.on("exit", (code, signal) => resolve({ code, signal }))
  )
  return { wrapper, exited, pidFile }
}

describe("scripts/node24.mjs forwards signals and exit codes", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`${signal} to the wrapper stops the child within 1 s; the wrapper ends by the same signal`, async () => {
      const { wrapper, exited, pidFile } = start("setInterval(() => {}, 1000)")
      assert.isTrue(await until(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").length > 0, 10_000))
      const childPid = Number(readFileSync(pidFile, "utf8"))
      assert.notStrictEqual(childPid, wrapper.pid, "the service runs as a child of the wrapper")
      wrapper.kill(signal)
      assert.isTrue(await until(() => !alive(childPid), 1_000), "child gone within 1 s")
      const { code, signal: by } = await exited
      assert.strictEqual(by, signal)
      assert.isNull(code)
    })
  }

  it("a child that handles SIGTERM and exits 3 makes the wrapper exit 3", async () => {
    const { wrapper, exited, pidFile } = start(
      'process.on("SIGTERM", () => process.exit(3)); setInterval(() => {}, 1000)'
    )
    assert.isTrue(await until(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").length > 0, 10_000))
    wrapper.kill("SIGTERM")
    assert.deepStrictEqual(await exited, { code: 3, signal: null })
  })

  it("the child's exit code is the wrapper's", async () => {
    const { exited } = start("process.exitCode = 7")
    assert.deepStrictEqual(await exited, { code: 7, signal: null })
  })
})
