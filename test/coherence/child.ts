/**
 * One coherence instance in its own process:
 * `node child.ts '<setup JSON>' <clock offset ms>`. It reads commands (one
 * JSON object per line) on stdin and answers each on stdout
 * (`{"id":..,"ok":true,"result":..}`). A read's loader asks the parent for
 * the source's version (`{"event":"source","req":..,"key":..}`, answered by a
 * `{"cmd":"source","req":..,"version":..}` line): the versioned register
 * lives in the parent, which records the history on its one clock.
 *
 * Real time (the default Clock, skewed by the offset): a real process on a
 * real Redis.
 */
import { createInterface } from "node:readline"
import { type Context, Effect, Scope } from "effect"
import type * as Cachet from "../../src/Cachet.ts"
import { countsOf, instance, readOp, type Setup, writeOp } from "./workload.ts"

const [setupJson, offsetArg] = process.argv.slice(2)
if (setupJson === undefined) throw new Error("usage: child.ts '<setup JSON>' <offset ms>")
const setup = JSON.parse(setupJson) as Setup
const offset = Number(offsetArg ?? 0)

const emit = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`)

// The instance lives until the process exits (the parent kills it).
let ctx: Context.Context<Cachet.Cachet> | undefined
const run = <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet>): Promise<A> => {
  if (ctx === undefined) return Promise.reject(new Error("not ready"))
  return Effect.runPromise(Effect.provide(effect, ctx))
}

let nextReq = 1
const sources = new Map<number, (version: number) => void>()
/** The source's version of `key`, read from the parent. */
const source = (key: number) =>
  Effect.callback<number>((resume) => {
    const req = nextReq++
    sources.set(req, (version) => resume(Effect.succeed(version)))
    emit({ event: "source", req, key })
    return Effect.sync(() => sources.delete(req))
  })

type Command = { readonly id: number; readonly cmd: string } & Record<string, any>

const handlers: Record<string, (c: Command) => Promise<unknown>> = {
  read: (c) =>
    run(
      // The loader (on a miss): ask the parent for the version, then take `loadFor` ms.
      readOp(c.key, c.loadFor, source(c.key))
    ),
  write: (c) => run(writeOp(c.how, c.key, c.version)),
  counts: () => run(countsOf)
}

createInterface({ input: process.stdin }).on("line", (line) => {
  let c: Command
  try {
    c = JSON.parse(line)
  } catch {
    return
  }
  if (c.cmd === "source") {
    const resume = sources.get(c.req)
    sources.delete(c.req)
    resume?.(c.version)
    return
  }
  const handler = handlers[c.cmd]
  if (handler === undefined) return emit({ id: c.id, ok: false, error: `unknown command ${c.cmd}` })
  handler(c).then(
    (result) => emit({ id: c.id, ok: true, result: result ?? null }),
    (error) => emit({ id: c.id, ok: false, error: String(error) })
  )
})

// Ready once the instance (and, on TieredStore with a bus, its subscription) is up.
Effect.runPromise(Scope.provide(instance(setup, offset), Scope.makeUnsafe())).then(
  (built) => {
    ctx = built
    emit({ event: "ready" })
  },
  (error) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
