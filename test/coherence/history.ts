/**
 * One history run of the coherence checker: three instances of a setup
 * (clocks -5 s and 0 in this process, +5 s in a child process), the
 * workload, faults forked during it, and the checker's report. Shared by
 * the tests and `npm run soak -- --coherence`.
 */
import { Effect, Fiber, type Scope } from "effect"
import { check, describe as explain, type Outage, type Report } from "./checker.ts"
import { type ChildClient, childClient } from "./process.ts"
import { type Client, inProcess, instance, runWorkload, type Setup } from "./workload.ts"

/** The three clients of a run; `child` is the one in a child process (a fault can kill it mid-load). */
export interface Clients {
  readonly all: ReadonlyArray<Client>
  readonly child: ChildClient
}

/** Starts the three instances of `setup` (concurrently: the child process takes a second or two). */
export const clientsOf = (setup: Setup): Effect.Effect<Clients, Error, Scope.Scope> =>
  Effect.all(
    [instance(setup, -5_000), instance(setup, 0), childClient("skew+5s(child process)", setup, 5_000)] as const,
    { concurrency: "unbounded" }
  ).pipe(
    Effect.map(([slow, exact, child]) => ({
      all: [inProcess("skew-5s", slow), inProcess("exact", exact), child],
      child
    }))
  )

/** What a run found. */
export interface HistoryRun {
  readonly label: string
  readonly bound: number
  readonly outageBound: number | undefined
  readonly report: Report
  readonly fencedWrites: number
  readonly journaled: number
  /** Per client: how many times its L1 was reset (TieredStore). */
  readonly l1Clears: ReadonlyArray<number>
  readonly lostReads: number
  readonly lostWrites: number
}

/**
 * Runs the workload on `clients` (`ops` operations each, or until `until()`)
 * with `faults` forked beside it (a fault's failure fails the run), and
 * checks the history with `bound` ms of allowed staleness.
 */
export const historyRun = (
  clients: Clients,
  options: {
    readonly label: string
    readonly bound: number
    readonly ops: number
    readonly seed?: number | undefined
    readonly until?: (() => boolean) | undefined
    readonly faults?: ReadonlyArray<Effect.Effect<void, unknown>> | undefined
    /** Filled by the faults while they run: when the store did not answer (see `check`). */
    readonly outages?: ReadonlyArray<Outage> | undefined
    /** The bound of a write acknowledged during an outage, from the outage's end. */
    readonly outageBound?: number | undefined
    /** While true, the clients only read (see `runWorkload`). */
    readonly readsOnly?: (() => boolean) | undefined
  }
): Effect.Effect<HistoryRun, unknown> =>
  Effect.gen(function* () {
    const before = yield* counts(clients)
    const faults = yield* Effect.forEach(options.faults ?? [], (fault) => Effect.forkChild(fault))
    const run = yield* runWorkload(clients.all, {
      ops: options.ops,
      seed: options.seed,
      until: options.until,
      readsOnly: options.readsOnly
    })
    for (const fault of faults) yield* Fiber.join(fault)
    const after = yield* counts(clients)
    return {
      label: options.label,
      bound: options.bound,
      outageBound: options.outages === undefined ? undefined : (options.outageBound ?? options.bound),
      report: check(run.history, options.bound, options.outages, options.outageBound),
      fencedWrites: Math.max(0, after.fencedWrites - before.fencedWrites),
      journaled: Math.max(0, after.journaled - before.journaled),
      l1Clears: after.l1Clears,
      lostReads: run.lostReads,
      lostWrites: run.lostWrites
    }
  })

/** The counts summed over the clients (a child killed since has restarted from 0: a lower bound). */
const counts = (clients: Clients) =>
  Effect.map(
    Effect.forEach(clients.all, (c) => c.counts),
    (all) => ({
      fencedWrites: all.reduce((n, c) => n + c.fencedWrites, 0),
      journaled: all.reduce((n, c) => n + c.journaled, 0),
      l1Clears: all.map((c) => c.l1Clears)
    })
  )

/** The run's line for the log, and up to three offending sub-histories. */
export const summary = (run: HistoryRun): string =>
  [
    `coherence (${run.label}, skew ±5 s, bound ${run.bound} ms${run.outageBound === undefined ? "" : `, ${run.outageBound} ms after a fault`}): ${run.report.operations} operations, ${run.report.reads} reads, ${run.report.writes} writes, ${run.report.violations.length} violations; ${run.fencedWrites} fenced writes, ${run.journaled} journalled, ${run.lostReads + run.lostWrites} lost to a kill`,
    ...run.report.violations.slice(0, 3).map(explain)
  ].join("\n")
