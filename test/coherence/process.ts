/**
 * A coherence client whose instance runs in a child process (`child.ts`),
 * which a fault can SIGKILL in the middle of a load; the next operation
 * starts a new process (a restarted instance with an empty memory).
 */
import * as path from "node:path"
import { Effect, Scope } from "effect"
import { type Child, startProcess } from "../tiered/children.ts"
import { type Client, type Counts, type Setup, sleepReal } from "./workload.ts"

/** A {@link Client} in a child process, with a fault that kills it mid-load. */
export interface ChildClient extends Client {
  /**
   * Arms the fault and waits (bounded) for it: the next time the instance's
   * loader has read the source, the process is SIGKILLed before the load can
   * answer (or store) anything. Fails when no load came within
   * `withinMillis` (default 10 s).
   */
  readonly killMidLoad: (withinMillis?: number) => Effect.Effect<void, Error>
  /** How many processes were killed mid-load, and how many were started. */
  readonly killed: () => number
  readonly started: () => number
}

const fixture = path.join(import.meta.dirname, "child.ts")

/** Starts a child-process client of `setup` with its clock `offset` ms off. */
export const childClient = (
  name: string,
  setup: Setup,
  offset: number
): Effect.Effect<ChildClient, Error, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    let source: (() => number) | undefined
    let armed = false
    let killed = 0
    let started = 0
    const start = Scope.provide(
      startProcess({
        fixture,
        args: [JSON.stringify(setup), String(offset)],
        onEvent: (event, child) => {
          if (event.event !== "source") return
          child.send({ cmd: "source", req: event.req, version: source?.() ?? 0 })
          if (armed) {
            armed = false
            killed++
            // Synchronous: the loader has its value, the instance has not stored it.
            process.kill(child.pid, "SIGKILL")
          }
        }
      }),
      scope
    ).pipe(Effect.tap(() => Effect.sync(() => started++)))
    let current: Child = yield* start
    const alive = Effect.suspend(() =>
      current.exited() ? Effect.map(start, (c) => (current = c)) : Effect.succeed(current)
    )
    return {
      name,
      prepare: Effect.asVoid(alive),
      read: (id, loadFor, read) =>
        alive.pipe(
          Effect.tap(() => Effect.sync(() => (source = read))),
          Effect.flatMap((child) => child.call<number>("read", { key: id, loadFor }, 10_000)),
          Effect.ensuring(Effect.sync(() => (source = undefined)))
        ),
      write: (how, id, version) =>
        Effect.flatMap(alive, (child) => child.call<void>("write", { how, key: id, version }, 10_000)),
      counts: Effect.flatMap(alive, (child) => child.call<Counts>("counts")),
      killMidLoad: (withinMillis = 10_000) =>
        Effect.gen(function* () {
          const before = killed
          armed = true
          for (let i = 0; i < withinMillis / 10 && killed === before; i++) yield* sleepReal(10)
          armed = false
          if (killed === before)
            return yield* Effect.fail(new Error(`${name}: no load within ${withinMillis} ms to kill`))
        }),
      killed: () => killed,
      started: () => started
    } satisfies ChildClient
  })
