/**
 * `npm run soak -- --cluster [--seconds 60] [--kill-every 30] [--full-coverage]`:
 * a Cluster soak with failovers. Our own Redis Cluster (3 masters + 3
 * replicas, `cluster-node-timeout` 500 ms, on loopback ports the harness
 * picks) under the fleet workload of `test/redis/fleet.ts` (30 fibers of
 * cache-aside reads and strict writes over 1,000 keys); every `--kill-every`
 * seconds a master is SIGKILLed, its replica takes over, and the killed node
 * is started again (it rejoins as a replica). Per failover: the hit ratio on
 * the healthy masters' keys between the kill and the promotion, the strict
 * writes that failed on healthy masters, the MOVED errors that surfaced
 * (failed writes and degraded calls' log lines), the longest call. The last
 * line says PASS or FAIL against the bounds printed with it.
 *
 * `--full-coverage` keeps Redis's default `cluster-require-full-coverage
 * yes`: Redis then refuses every command on every master (CLUSTERDOWN)
 * between the dead master being marked failed and its replica's promotion,
 * and the healthy-key figures show it. The default run uses `no`, as the
 * README recommends for a cache.
 */
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { RedisCluster } from "../test/harness/redis.ts"
import {
  type Call,
  figures,
  type LogCounts,
  nodeStates,
  ownersOf,
  prewarm,
  stack,
  worker
} from "../test/redis/fleet.ts"

const COMMAND_TIMEOUT = 500
const KEYS = 1_000
const WORKERS = 30

const BOUNDS = { healthyHitRatio: 0.9, healthyFailedWrites: 0, moved: 0, maxCallMs: COMMAND_TIMEOUT + 100 }

export const runClusterSoak = async (seconds: number, killEvery: number, fullCoverage: boolean): Promise<boolean> => {
  const scope = Effect.runSync(Scope.make())
  const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.provide(effect, scope))
  const cluster = await run(
    RedisCluster.start({
      replicas: 1,
      nodeTimeoutMs: 500,
      args: fullCoverage ? [] : ["--cluster-require-full-coverage", "no"]
    })
  )
  const prefix = `soak-cluster-${Date.now().toString(36)}`
  const counts: LogCounts = { moved: 0, storeFailures: 0, lines: [] }
  const context = await run(
    Layer.build(stack({ cluster: cluster.startupNodes, prefix, commandTimeout: COMMAND_TIMEOUT }, counts))
  )
  await Effect.runPromise(Effect.provide(prewarm(KEYS), context))

  let segment: Array<Call> = []
  const state = { stop: false }
  const fibers = Effect.runSync(
    Effect.forEach(
      Array.from({ length: WORKERS }, () =>
        worker({ keys: KEYS, stop: () => state.stop, record: (c) => segment.push(c) }).pipe(Effect.provide(context))
      ),
      (w) => Effect.forkDetach(w)
    )
  )

  const started = performance.now()
  const deadline = started + seconds * 1_000
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)))
  let ok = true
  let failovers = 0
  let worstHealthy = 1
  let healthyFailed = 0
  let victimFailed = 0
  let movedWrites = 0
  let maxCall = 0
  let totalCalls = 0
  console.log(
    `soak --cluster: 3 masters + 3 replicas, node timeout 500 ms, full coverage ${fullCoverage ? "yes" : "no"}, ${WORKERS} fibers, ${KEYS} keys, a master killed every ${killEvery} s, ${seconds} s`
  )
  while (performance.now() + killEvery * 1_000 <= deadline + 1) {
    await sleep(killEvery * 1_000 - 5_000)
    const masters = (await Effect.runPromise(cluster.topology)).filter((n) => n.master && n.slots.length > 0)
    const owners = ownersOf(prefix, KEYS, masters)
    const victim = masters[failovers % masters.length]!.port
    const node = cluster.nodes.find((n) => n.port === victim)!
    segment = []
    const movedBefore = counts.moved
    const killedAt = performance.now()
    await Effect.runPromise(node.kill)
    await Effect.runPromise(cluster.waitMasters([victim], 20_000))
    const promotedAt = performance.now()
    const restartAt = performance.now()
    await Effect.runPromise(node.restart)
    await Effect.runPromise(cluster.waitHealthy(20_000))
    await sleep(2_000)
    const calls = segment
    segment = []
    failovers++
    const healthy = (c: Call) => owners[c.id] !== victim
    const window = figures(calls.filter((c) => c.at >= killedAt && c.at < promotedAt && healthy(c)))
    const all = figures(calls)
    const healthyAll = figures(calls.filter(healthy))
    const victimAll = figures(calls.filter((c) => !healthy(c)))
    const moved = counts.moved - movedBefore
    if (process.env.SOAK_DEBUG_SLOW) {
      const slow = calls
        .filter((c) => c.ms > COMMAND_TIMEOUT + 100)
        .slice(0, 12)
        .map(
          (c) =>
            `${(c.at - killedAt).toFixed(0)}+${c.ms.toFixed(0)} ${c.kind}${healthy(c) ? "" : " (victim)"}${c.error === undefined ? "" : ` ${c.error.slice(0, 60)}`}`
        )
      const errors = new Map<string, number>()
      for (const c of calls)
        if (c.error !== undefined && (healthy(c) || /MOVED|ASK/.test(c.error)))
          errors.set(
            `${healthy(c) ? "healthy" : "victim"} ${c.error.slice(0, 100)}`,
            (errors.get(`${healthy(c) ? "healthy" : "victim"} ${c.error.slice(0, 100)}`) ?? 0) + 1
          )
      console.log(
        `    errors: ${JSON.stringify([...errors])}; MOVED log lines: ${JSON.stringify(counts.lines.filter((l) => /MOVED|ASK/.test(l)).slice(0, 3))}`
      )
      console.log(
        `    slow calls (ms after the kill + ms; restart at ${(restartAt - killedAt).toFixed(0)}): ${slow.join("; ")}`
      )
    }
    worstHealthy = Math.min(worstHealthy, window.hitRatio)
    healthyFailed += healthyAll.failedWrites
    victimFailed += victimAll.failedWrites
    movedWrites += all.movedErrors + moved
    maxCall = Math.max(maxCall, all.maxMs)
    totalCalls += calls.length
    console.log(
      `  failover ${failovers} (killed :${victim}, promoted after ${(promotedAt - killedAt).toFixed(0)} ms): healthy keys in the window ${(window.hitRatio * 100).toFixed(1)}% hits of ${window.reads} reads;` +
        ` strict writes failed: healthy ${healthyAll.failedWrites}, killed master's ${victimAll.failedWrites} of ${victimAll.writes};` +
        ` MOVED surfaced ${all.movedErrors + moved}; longest call ${all.maxMs.toFixed(0)} ms; ${calls.length} calls`
    )
  }
  state.stop = true
  await Effect.runPromise(Fiber.joinAll(fibers))
  const states = await Effect.runPromise(nodeStates(context))
  await Effect.runPromise(Scope.close(scope, Exit.void))

  const checks: Array<[string, boolean]> = [
    [`failovers ${failovers} >= 1`, failovers >= 1],
    [
      `worst healthy-key hit ratio during a failover ${(worstHealthy * 100).toFixed(1)}% >= ${BOUNDS.healthyHitRatio * 100}%`,
      worstHealthy >= BOUNDS.healthyHitRatio
    ],
    [
      `strict writes failed on healthy masters ${healthyFailed} <= ${BOUNDS.healthyFailedWrites}`,
      healthyFailed <= BOUNDS.healthyFailedWrites
    ],
    [`MOVED surfaced ${movedWrites} <= ${BOUNDS.moved}`, movedWrites <= BOUNDS.moved],
    [`longest call ${maxCall.toFixed(0)} ms <= ${BOUNDS.maxCallMs} ms`, maxCall <= BOUNDS.maxCallMs]
  ]
  console.log(
    `  ${totalCalls} calls in the failover segments; killed masters' strict writes failed ${victimFailed} (expected: their slots had no master);` +
      ` redirects followed ${states.reduce((n, s) => n + s.redirects, 0)}; circuits opened ${states.reduce((n, s) => n + s.openings, 0)}x over ${states.length} nodes`
  )
  for (const [line, pass] of checks) {
    console.log(`  ${pass ? "ok  " : "FAIL"} ${line}`)
    ok &&= pass
  }
  console.log(`RESULT: ${ok ? "PASS" : "FAIL"}`)
  return ok
}
