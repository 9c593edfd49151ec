/**
 * `npm run soak -- --coherence [--seconds 300] [--fault-every 20] [--coherence-store redis|cluster|tiered]`:
 * the coherence history checker over a long run. Three cache instances
 * (clocks -5 s and 0 in this process, +5 s in a child process; separate
 * connections) over our own redis-server (or 3-master Cluster, or a
 * TieredStore with its bus over one server) run the workload of
 * `test/coherence/` without pause; every `--fault-every` seconds the server
 * (on a Cluster: one master) is, in turn, SIGSTOPped for 1.5 s, SIGKILLed and
 * restarted empty, or left alone; in every segment the child process is also
 * SIGKILLed in the middle of a load and started again. The history of each
 * segment is checked with the replay bound (1 s, from the fault's end for a
 * write acknowledged during it: an invalidation journalled during a fault
 * reaches the store when it answers). The last line says PASS or FAIL.
 */
import { Effect, Exit, Scope } from "effect"
import type { Outage } from "../test/coherence/checker.ts"
import { clientsOf, historyRun, summary } from "../test/coherence/history.ts"
import { type Setup, sleepReal } from "../test/coherence/workload.ts"
import { RedisCluster, RedisServer } from "../test/harness/redis.ts"

export type CoherenceStore = "redis" | "cluster" | "tiered"

export const runCoherenceSoak = async (
  seconds: number,
  faultEvery: number,
  store: CoherenceStore
): Promise<boolean> => {
  const scope = Effect.runSync(Scope.make())
  const prefix = `soak-coherence-${Date.now().toString(36)}`
  const { setup, target, healthy } = await Effect.runPromise(
    Scope.provide(
      Effect.gen(function* () {
        if (store === "cluster") {
          const cluster = yield* RedisCluster.start({ nodeTimeoutMs: 5_000 })
          const setup: Setup = { store, nodes: cluster.startupNodes, prefix, faults: true }
          return { setup, target: cluster.nodes[1]!, healthy: cluster.waitHealthy() }
        }
        const server = yield* RedisServer.start({ stopGraceMs: 1_000 })
        const setup: Setup =
          store === "tiered"
            ? { store, url: server.url, prefix, bus: true, l1MaxTtl: 300, faults: true }
            : { store, url: server.url, prefix, faults: true }
        return { setup, target: server, healthy: Effect.void }
      }),
      scope
    )
  )
  const clients = await Effect.runPromise(Scope.provide(clientsOf(setup), scope))
  const started = performance.now()
  const deadline = started + seconds * 1_000
  let operations = 0
  let violations = 0
  let segments = 0
  let faults = 0
  let seed = 10
  const kinds = ["SIGSTOP 1.5 s", "SIGKILL + restart", "none"] as const
  while (performance.now() < deadline) {
    const segmentEnd = Math.min(deadline, performance.now() + faultEvery * 1_000)
    // A last segment too short for a fault has none.
    const short = segmentEnd - performance.now() < faultEvery * 1_000 - 100
    const kind = short ? "none" : kinds[segments % kinds.length]!
    // When the store did not answer: the bound of a write acknowledged then runs from its end.
    const outages: Array<Outage> = []
    const fault =
      kind === "none"
        ? Effect.void
        : Effect.gen(function* () {
            yield* sleepReal(Math.min(2_000, faultEvery * 250))
            const from = performance.now()
            if (kind === "SIGSTOP 1.5 s") {
              yield* target.pause
              yield* sleepReal(1_500)
              yield* target.resume
            } else {
              yield* target.kill
              yield* sleepReal(800)
              yield* target.restart
            }
            yield* healthy
            outages.push({ from, to: performance.now() })
          })
    // Half-way through the segment; it fails the run if no load came in the next quarter.
    const midLoad = short
      ? Effect.void
      : Effect.andThen(sleepReal(faultEvery * 500), clients.child.killMidLoad(faultEvery * 250))
    const run = await Effect.runPromise(
      historyRun(clients, {
        label: `${store}, segment ${segments + 1}: ${kind}, a runtime killed mid-load`,
        bound: 1_000,
        ops: Number.MAX_SAFE_INTEGER,
        seed: seed++,
        until: () => performance.now() >= segmentEnd,
        faults: [fault, midLoad],
        outages
      })
    )
    operations += run.report.operations
    violations += run.report.violations.length
    segments++
    if (kind !== "none") faults++
    console.log(`${summary(run)}; ${Math.round((performance.now() - started) / 1000)} s`)
  }
  await Effect.runPromise(Scope.close(scope, Exit.void))
  const ok = violations === 0 && operations > 0
  console.log(
    `coherence soak (${store}): ${seconds} s, ${segments} segments, ${faults} server faults, ${clients.child.killed()} runtimes killed mid-load, ${operations} operations checked, ${violations} violations: ${ok ? "PASS" : "FAIL"}`
  )
  return ok
}
