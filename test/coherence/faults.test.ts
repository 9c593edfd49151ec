/**
 * The history checker (checker.ts) across faults of the servers themselves:
 * SIGSTOP/SIGCONT and SIGKILL/restart (empty: no persistence) of a
 * standalone Redis, of one master of a 3-master Cluster, and of a
 * TieredStore's L2 (bus on and off), each while the child-process instance
 * is also killed mid-load once. Every instance runs with short bounds (200
 * ms calls, a breaker open 200 ms, the journal replayed every 50 ms).
 *
 * The bound is 1 s, not 0: during the fault every read goes to the loader
 * (fresh) but an invalidation is journalled, and the other instances see it
 * once it is replayed after the store answers again (breaker openFor plus
 * journalRetry plus a command; with TieredStore also an L1 copy's
 * l1MaxTtl). README "Coherence" states the bound.
 *
 * Real time (`it.live`): real processes on real servers, whose clocks no
 * TestClock moves; every wait is bounded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type HarnessError, RedisCluster, RedisServer, requireRedis } from "../harness/redis.ts"
import { runId, sleepReal } from "../redis/helpers.ts"
import { describe as explain } from "./checker.ts"
import { type Clients, clientsOf, historyRun, summary } from "./history.ts"
import type { Setup } from "./workload.ts"

const OPS = 120
const BOUND = 1_000

interface Target {
  readonly pause: Effect.Effect<void, HarnessError>
  readonly resume: Effect.Effect<void, HarnessError>
  readonly kill: Effect.Effect<void, HarnessError>
  readonly restart: Effect.Effect<void, HarnessError>
}

const faults = {
  "SIGSTOP 1.5 s": (target: Target) =>
    Effect.gen(function* () {
      yield* sleepReal(150)
      yield* target.pause
      yield* sleepReal(1_500)
      yield* target.resume
    }),
  "SIGKILL + restart": (target: Target) =>
    Effect.gen(function* () {
      yield* sleepReal(150)
      yield* target.kill
      yield* sleepReal(800)
      yield* target.restart
    })
} as const

const run = (label: string, setup: Setup, fault: Effect.Effect<void, unknown>, clients: Clients) =>
  Effect.gen(function* () {
    const result = yield* historyRun(clients, {
      label,
      bound: BOUND,
      ops: OPS,
      faults: [fault, Effect.andThen(sleepReal(400), clients.child.killMidLoad())]
    })
    console.log(summary(result))
    assert.deepStrictEqual(result.report.violations.slice(0, 3).map(explain), [])
    assert.strictEqual(result.report.operations + result.lostReads, 3 * OPS)
    assert.isAbove(result.journaled, 0, "invalidations were journalled: the fault happened during the run")
    assert.strictEqual(clients.child.killed(), 1, "the child was killed mid-load")
    assert.strictEqual(setup.faults, true)
  })

describe.skipIf(!requireRedis())("coherence: the history checker across server faults", () => {
  for (const [name, fault] of Object.entries(faults)) {
    it.live(`standalone Redis, ${name}: 0 violations past the replay bound`, () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const setup: Setup = { store: "redis", url: server.url, prefix: `flt-${runId()}`, faults: true }
        yield* run(`standalone Redis, ${name}`, setup, fault(server), yield* clientsOf(setup))
      }).pipe(Effect.scoped)
    )

    it.live(`a 3-master Cluster, ${name} of one master: 0 violations past the replay bound`, () =>
      Effect.gen(function* () {
        // A node timeout longer than the fault: the master is not failed over
        // (no replicas), and the cluster keeps serving the other slots.
        const cluster = yield* RedisCluster.start({ nodeTimeoutMs: 5_000 })
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
          Effect.andThen(fault(victim), cluster.waitHealthy()),
          clients
        )
      }).pipe(Effect.scoped)
    )

    for (const bus of [true, false]) {
      it.live(`TieredStore (bus ${bus ? "on" : "off"}), ${name} of its L2: 0 violations past the replay bound`, () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.start()
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
            fault(server),
            yield* clientsOf(setup)
          )
        }).pipe(Effect.scoped)
      )
    }
  }
})
