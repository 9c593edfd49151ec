/**
 * The history checker (checker.ts) across faults of the servers themselves:
 * SIGSTOP/SIGCONT and SIGKILL/restart (empty: no persistence) of a
 * standalone Redis, of one master of a 3-master Cluster, and of a
 * TieredStore's L2 (bus on and off), each while the child-process instance
 * is also killed mid-load once. Every instance runs with short bounds (200
 * ms calls, a breaker open 200 ms, the journal replayed every 50 ms).
 *
 * The bounds: a write acknowledged outside the fault has the store's own
 * (0 for RedisStore; the bus's delivery, 100 ms, or l1MaxTtl, 300 ms, for
 * TieredStore); one acknowledged during the fault reached only its own
 * process (every read there goes to the loader, an invalidation is
 * journalled), and the others see it once it is replayed after the store
 * answers again: OUTAGE_BOUND from the fault's end (breaker openFor 200 ms
 * plus journalRetry 50 ms plus a command, and an L1 copy's l1MaxTtl).
 * README "Coherence" states them.
 *
 * Real time (`it.live`): real processes on real servers, whose clocks no
 * TestClock moves; every wait is bounded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type HarnessError, RedisCluster, RedisServer, requireRedis } from "../harness/redis.ts"
import { runId, sleepReal } from "../redis/helpers.ts"
import { describe as explain, type Outage } from "./checker.ts"
import { type Clients, clientsOf, historyRun, summary } from "./history.ts"
import type { Setup } from "./workload.ts"

const OPS = 120
/** The bound of a write acknowledged during the fault, from its end. */
const OUTAGE_BOUND = 600

interface Target {
  readonly pause: Effect.Effect<void, HarnessError>
  readonly resume: Effect.Effect<void, HarnessError>
  readonly kill: Effect.Effect<void, HarnessError>
  readonly restart: Effect.Effect<void, HarnessError>
}

/** What a fault tells the run: when the store did not answer, and the quiet phase after it. */
interface FaultLog {
  readonly outages: Array<Outage>
  quiet: boolean
}

/**
 * After the store answers again, the clients only read for 1 s: what was
 * written during the fault (journalled invalidations, replayed) is then read
 * back before anything overwrites it, so a lost replay shows.
 */
const quietAfter = (log: FaultLog, from: number) =>
  Effect.gen(function* () {
    log.outages.push({ from, to: performance.now() })
    log.quiet = true
    yield* sleepReal(1_000)
    log.quiet = false
  })

const faults = {
  "SIGSTOP 1.5 s": (target: Target, log: FaultLog) =>
    Effect.gen(function* () {
      yield* sleepReal(150)
      const from = performance.now()
      yield* target.pause
      yield* sleepReal(1_500)
      yield* target.resume
      yield* quietAfter(log, from)
    }),
  "SIGKILL + restart": (target: Target, log: FaultLog) => killAndRestart(target, log),
  // The dataset survives the crash (AOF, fsync always): entries read before
  // the crash are still there, so an invalidation made while the server was
  // down matters only through the journal's replay.
  "SIGKILL + restart with AOF": (target: Target, log: FaultLog) => killAndRestart(target, log)
} as const

/** Server arguments per fault. */
const argsOf = (fault: string): ReadonlyArray<string> =>
  fault.endsWith("AOF") ? ["--appendonly", "yes", "--appendfsync", "always"] : []

function killAndRestart(target: Target, log: FaultLog) {
  return Effect.gen(function* () {
    yield* sleepReal(150)
    const from = performance.now()
    yield* target.kill
    yield* sleepReal(800)
    yield* target.restart
    yield* quietAfter(log, from)
  })
}

/** The store's own bound (writes acknowledged outside the fault). */
const boundOf = (setup: Setup) => (setup.store === "tiered" ? (setup.bus ? 100 : setup.l1MaxTtl) : 0)

const run = (label: string, setup: Setup, fault: (log: FaultLog) => Effect.Effect<void, unknown>, clients: Clients) =>
  Effect.gen(function* () {
    const log: FaultLog = { outages: [], quiet: false }
    const result = yield* historyRun(clients, {
      label,
      bound: boundOf(setup),
      outageBound: OUTAGE_BOUND,
      ops: OPS,
      faults: [fault(log), Effect.andThen(sleepReal(400), clients.child.killMidLoad())],
      outages: log.outages,
      readsOnly: () => log.quiet
    })
    assert.strictEqual(log.outages.length, 1, "the fault ran")
    console.log(summary(result))
    assert.deepStrictEqual(result.report.violations.slice(0, 3).map(explain), [])
    assert.strictEqual(result.report.operations + result.lostReads, 3 * OPS)
    assert.isAbove(result.journaled, 0, "invalidations were journalled: the fault happened during the run")
    assert.strictEqual(clients.child.killed(), 1, "the child was killed mid-load")
    assert.strictEqual(setup.faults, true)
  })

describe.skipIf(!requireRedis())("coherence: the history checker across server faults", () => {
  for (const [name, fault] of Object.entries(faults)) {
    it.live(`standalone Redis, ${name}: 0 violations past the bounds`, () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start({ args: argsOf(name) })
        const setup: Setup = { store: "redis", url: server.url, prefix: `flt-${runId()}`, faults: true }
        yield* run(`standalone Redis, ${name}`, setup, (o) => fault(server, o), yield* clientsOf(setup))
      }).pipe(Effect.scoped)
    )

    it.live(`a 3-master Cluster, ${name} of one master: 0 violations past the bounds`, () =>
      Effect.gen(function* () {
        // A node timeout longer than the fault: the master is not failed over
        // (no replicas), and the cluster keeps serving the other slots.
        const cluster = yield* RedisCluster.start({ nodeTimeoutMs: 5_000, args: argsOf(name) })
        const setup: Setup = {
          store: "cluster",
          nodes: cluster.startupNodes,
          prefix: `flt-c-${runId()}`,
          faults: true
        }
        const victim = cluster.nodes[1]!
        const clients = yield* clientsOf(setup)
        yield* run(
          `Cluster, ${name} of one master`,
          setup,
          (o) => Effect.andThen(fault(victim, o), cluster.waitHealthy()),
          clients
        )
      }).pipe(Effect.scoped)
    )

    for (const bus of [true, false]) {
      it.live(`TieredStore (bus ${bus ? "on" : "off"}), ${name} of its L2: 0 violations past the bounds`, () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.start({ args: argsOf(name) })
          const setup: Setup = {
            store: "tiered",
            url: server.url,
            prefix: `flt-t-${runId()}`,
            bus,
            l1MaxTtl: 300,
            faults: true
          }
          yield* run(
            `TieredStore (bus ${bus ? "on" : "off"}), ${name} of the L2`,
            setup,
            (o) => fault(server, o),
            yield* clientsOf(setup)
          )
        }).pipe(Effect.scoped)
      )
    }
  }
})
