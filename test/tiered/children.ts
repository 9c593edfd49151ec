/**
 * Real Node child processes running `fixtures/instance.ts`, driven over
 * stdin/stdout, as scoped Effect resources (killed with SIGKILL when the
 * scope closes, or by a test).
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { Effect, type Scope } from "effect"

/** One child process. */
export interface Child {
  readonly pid: number
  /** Sends a command; fails with the child's error, or after `timeoutMs`. */
  readonly call: <A = unknown>(
    cmd: string,
    args?: Record<string, unknown>,
    timeoutMs?: number
  ) => Effect.Effect<A, Error>
  /** SIGKILL, and wait for the exit. */
  readonly kill: Effect.Effect<void>
  /** Everything it wrote to stderr (for failure messages). */
  readonly stderr: () => string
  /** Writes one JSON line to its stdin (no answer awaited). */
  readonly send: (message: Record<string, unknown>) => void
  /** Whether it has exited. */
  readonly exited: () => boolean
}

/** What to run: a fixture script, its arguments, and a handler for the events it prints (`{"event":..}`). */
export interface ProcessOptions {
  readonly fixture: string
  readonly args: ReadonlyArray<string>
  readonly onEvent?: ((event: Record<string, any>, child: Child) => void) | undefined
}

const fixture = path.join(import.meta.dirname, "fixtures", "instance.ts")

/** Epoch milliseconds on the same base as the children's (`performance.timeOrigin + now()`). */
export const nowEpoch = () => performance.timeOrigin + performance.now()

const startOne = (url: string): Effect.Effect<Child, Error, Scope.Scope> => startProcess({ fixture, args: [url] })

/** Starts a Node child process on `options.fixture`, ready when it prints `{"event":"ready"}`. */
export const startProcess = (options: ProcessOptions): Effect.Effect<Child, Error, Scope.Scope> => {
  let handle: Child | undefined
  return Effect.acquireRelease(
    Effect.callback<{ child: ChildProcess; state: State }, Error>((resume) => {
      const child = spawn(process.execPath, [options.fixture, ...options.args], { stdio: ["pipe", "pipe", "pipe"] })
      const state: State = { next: 1, pending: new Map(), stderr: "", buffer: "", exited: false }
      // A write to a killed child's stdin is EPIPE: the exit handler already failed what was pending.
      child.stdin!.on("error", () => {})
      const timer = setTimeout(() => {
        child.kill("SIGKILL")
        resume(Effect.fail(new Error(`child did not start in 20 s: ${state.stderr}`)))
      }, 20_000)
      child.stderr!.on("data", (chunk: Buffer) => {
        state.stderr = (state.stderr + chunk.toString()).slice(-8_000)
      })
      child.stdout!.on("data", (chunk: Buffer) => {
        state.buffer += chunk.toString()
        let newline = state.buffer.indexOf("\n")
        while (newline !== -1) {
          const line = state.buffer.slice(0, newline)
          state.buffer = state.buffer.slice(newline + 1)
          newline = state.buffer.indexOf("\n")
          let message: any
          try {
            message = JSON.parse(line)
          } catch {
            continue
          }
          if (message.event === "ready") {
            clearTimeout(timer)
            resume(Effect.succeed({ child, state }))
          } else if (typeof message.event === "string") {
            if (handle !== undefined) options.onEvent?.(message, handle)
          } else if (typeof message.id === "number") {
            const waiter = state.pending.get(message.id)
            state.pending.delete(message.id)
            waiter?.(message)
          }
        }
      })
      child.once("exit", () => {
        state.exited = true
        for (const waiter of state.pending.values()) waiter({ ok: false, error: "child exited" })
        state.pending.clear()
      })
      child.once("error", (error) => resume(Effect.fail(error)))
      return Effect.sync(() => {
        clearTimeout(timer)
        child.kill("SIGKILL")
      })
    }),
    ({ child }) => killChild(child)
  ).pipe(
    Effect.map(({ child, state }): Child => {
      handle = {
        pid: child.pid ?? -1,
        call: <A>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 20_000) =>
          Effect.callback<A, Error>((resume) => {
            if (state.exited) return resume(Effect.fail(new Error(`${cmd}: child ${child.pid} has exited`)))
            const id = state.next++
            const timer = setTimeout(() => {
              state.pending.delete(id)
              resume(Effect.fail(new Error(`${cmd}: no answer in ${timeoutMs} ms; stderr: ${state.stderr}`)))
            }, timeoutMs)
            state.pending.set(id, (message) => {
              clearTimeout(timer)
              resume(
                message.ok
                  ? Effect.succeed(message.result as A)
                  : Effect.fail(new Error(`${cmd}: ${message.error}; stderr: ${state.stderr}`))
              )
            })
            child.stdin!.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
            return Effect.sync(() => {
              clearTimeout(timer)
              state.pending.delete(id)
            })
          }),
        kill: killChild(child),
        stderr: () => state.stderr,
        send: (message) => {
          if (!state.exited) child.stdin!.write(`${JSON.stringify(message)}\n`)
        },
        exited: () => state.exited
      }
      return handle
    })
  )
}

interface State {
  next: number
  readonly pending: Map<number, (message: { ok: boolean; result?: unknown; error?: string }) => void>
  stderr: string
  buffer: string
  exited: boolean
}

const killChild = (child: ChildProcess): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

/** Starts `count` children on the Redis at `url`, in parallel. */
export const startChildren = (url: string, count: number): Effect.Effect<Array<Child>, Error, Scope.Scope> =>
  Effect.forEach(
    Array.from({ length: count }, () => url),
    startOne,
    { concurrency: "unbounded" }
  )
