#!/usr/bin/env node
// Runs a command under a Node.js that can execute this repository's TypeScript
// directly (type stripping, Node >= 22.18) and run vitest 5 (Node >= 22.12).
//
// Why: `npm install && npm run demo` and `npm test` must work on a fresh machine
// whose default `node` may be older (Debian 12 ships Node 20). When the running
// node is too old, this script installs the official Node 24 binary package
// from the npm registry (`node-<platform>-<arch>@24`, the same package CI uses)
// into node_modules/.cache/cachet-node24 once, and re-executes under it.
//
// Usage: node scripts/node24.mjs <script.ts | node_modules/.bin-less entry> [args...]
// Plain ESM JavaScript on purpose: it must run on the old node it replaces.
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const [major, minor] = process.versions.node.split(".").map(Number)
const recentEnough = major > 22 || (major === 22 && minor >= 18)

const resolveNode = () => {
  if (recentEnough) return process.execPath
  const pkg = `node-${process.platform}-${process.arch}`
  const prefix = join(root, "node_modules", ".cache", "cachet-node24")
  const bin = join(prefix, "node_modules", pkg, "bin", "node")
  if (!existsSync(bin)) {
    process.stderr.write(
      `cachet: node ${process.versions.node} is older than 22.18; installing ${pkg}@24 from the npm registry (once)\n`
    )
    mkdirSync(prefix, { recursive: true })
    const npm = process.platform === "win32" ? "npm.cmd" : "npm"
    execFileSync(
      npm,
      ["install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--prefix", prefix, `${pkg}@24`],
      {
        stdio: ["ignore", "inherit", "inherit"]
      }
    )
  }
  return bin
}

const node = resolveNode()
const args = process.argv.slice(2)
if (args.length === 0) {
  process.stdout.write(`${node}\n`)
  process.exit(0)
}
// The real process is a child: forward every terminating signal to it, so
// that a process manager stopping this wrapper (SIGTERM) stops the service,
// and exit as it exited (its code, or the same signal).
const child = spawn(node, args, { stdio: "inherit", cwd: process.cwd(), env: process.env })
const forwarded = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR2"]
for (const signal of forwarded) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
  })
}
child.on("error", (error) => {
  process.stderr.write(`cachet: could not start ${node}: ${error.message}\n`)
  process.exit(1)
})
child.on("exit", (code, signal) => {
  if (signal !== null) {
    for (const name of forwarded) process.removeAllListeners(name)
    process.kill(process.pid, signal)
    return
  }
  process.exit(code ?? 1)
})
