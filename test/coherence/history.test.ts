/**
 * The history checker (checker.ts) over real servers: three instances per
 * setup (clocks -5 s and 0 in this process, +5 s in a child process, each
 * with its own connections) run the workload while the child process is
 * SIGKILLed in the middle of a load and started again. Fault runs on the
 * servers themselves are in faults.test.ts.
 *
 * Real time (`it.live`): real processes on real servers, whose clocks no
 * TestClock moves; every wait is bounded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { requireRedis } from "../harness/redis.ts"
import { runId, sharedCluster, sharedServer, sleepReal } from "../redis/helpers.ts"
import { describe as explain } from "./checker.ts"
import { type Clients, clientsOf, type HistoryRun, historyRun, summary } from "./history.ts"
import type { Setup } from "./workload.ts"

const server = sharedServer()
const cluster = sharedCluster()

/** Each client runs this many operations. */
const OPS = 120

/** The child process is killed mid-load once, `afterMillis` into the run. */
const killMidLoad = (clients: Clients, afterMillis = 300) =>
  Effect.andThen(sleepReal(afterMillis), clients.child.killMidLoad())

/** A run passes with no violation, every operation accounted for, and the child killed once and restarted. */
const assertClean = (run: HistoryRun, clients: Clients) => {
  console.log(summary(run))
  assert.deepStrictEqual(run.report.violations.slice(0, 3).map(explain), [])
  assert.strictEqual(
    run.report.operations + run.lostReads,
    3 * OPS,
    "every operation is in the history or lost to the kill"
  )
  assert.isAtMost(run.lostReads + run.lostWrites, 1, "only the killed process's operation is lost")
  assert.strictEqual(clients.child.killed(), 1, "the child was killed mid-load")
  assert.strictEqual(clients.child.started(), 2, "and started again")
}

const plain = (label: string, bound: number, setup: () => Setup) =>
  it.live(`the history checker on ${label}, clocks -5 s, 0, +5 s, a runtime killed mid-load: 0 violations`, () =>
    Effect.gen(function* () {
      const clients = yield* clientsOf(setup())
      const run = yield* historyRun(clients, { label, bound, ops: OPS, faults: [killMidLoad(clients)] })
      assertClean(run, clients)
    }).pipe(Effect.scoped)
  )

describe.skipIf(!requireRedis())("coherence: the history checker over real servers", () => {
  plain("standalone Redis", 0, () => ({ store: "redis", url: server.get().url, prefix: `hist-${runId()}` }))
  plain("a 3-master Redis Cluster", 0, () => ({
    store: "cluster",
    nodes: cluster.get().startupNodes,
    prefix: `hist-c-${runId()}`
  }))
  // With the bus: its delivery time (2-15 ms measured; 100 ms allowed).
  // Without: an L1 copy lives at most l1MaxTtl (300 ms).
  plain("TieredStore, bus on", 100, () => ({
    store: "tiered",
    url: server.get().url,
    prefix: `hist-t-${runId()}`,
    bus: true,
    l1MaxTtl: 300
  }))
  plain("TieredStore, bus off", 300, () => ({
    store: "tiered",
    url: server.get().url,
    prefix: `hist-t-${runId()}`,
    bus: false,
    l1MaxTtl: 300
  }))

  it.live(
    "the history checker on TieredStore with its bus while every pub/sub connection is killed twice: 0 violations past the reconnect bound",
    () =>
      Effect.gen(function* () {
        const setup: Setup = {
          store: "tiered",
          url: server.get().url,
          prefix: `hist-p-${runId()}`,
          bus: true,
          l1MaxTtl: 300
        }
        const clients = yield* clientsOf(setup)
        const kills = Effect.gen(function* () {
          for (const wait of [200, 300]) {
            yield* sleepReal(wait)
            yield* server.get().command("CLIENT", "KILL", "TYPE", "pubsub")
          }
        })
        // A message lost to the kill: every L1 is reset once its subscription
        // is confirmed again (about 100-200 ms), within l1MaxTtl.
        const run = yield* historyRun(clients, {
          label: "TieredStore, bus on, CLIENT KILL TYPE pubsub x2",
          bound: 300,
          ops: OPS,
          faults: [kills, killMidLoad(clients, 500)]
        })
        assertClean(run, clients)
        // The kills happened during the run: every instance reset its L1 (the
        // child counts since its restart, which the kill may have preceded).
        assert.isAtLeast(run.l1Clears[0]!, 1)
        assert.isAtLeast(run.l1Clears[1]!, 1)
      }).pipe(Effect.scoped)
  )
})
