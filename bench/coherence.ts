/**
 * `npm run soak -- --coherence [--seconds 300] [--fault-every 20]`: the
 * coherence history checker over a long run. Three cache instances over our
 * own redis-server (clocks -5 s, 0, +5 s; separate connections) run the
 * workload of `test/coherence/` without pause; every `--fault-every` seconds
 * the server is, in turn, SIGSTOPped for 1.5 s, SIGKILLed and restarted
 * empty, or left alone. The history of each segment is checked with the
 * replay bound (1 s: an invalidation journalled during a fault reaches the
 * store when it answers). The last line says PASS or FAIL.
 */
import { Effect, Exit, Fiber, Scope } from "effect"
import { check, describe as explain, type Operation } from "../test/coherence/checker.ts"
import { faultTolerant, runWorkload } from "../test/coherence/workload.ts"
import { RedisServer } from "../test/harness/redis.ts"

export const runCoherenceSoak = async (seconds: number, faultEvery: number): Promise<boolean> => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.provide(RedisServer.start({ stopGraceMs: 1_000 }), scope))
  const prefix = `soak-coherence-${Date.now().toString(36)}`
  const instance = (offset: number) => faultTolerant(server.url, prefix, offset)
  const clients = await Effect.runPromise(
    Scope.provide(
      Effect.all([instance(-5_000), instance(0), instance(5_000)]).pipe(
        Effect.map(([a, b, c]) => [
          { name: "skew-5s", ctx: a },
          { name: "true", ctx: b },
          { name: "skew+5s", ctx: c }
        ])
      ),
      scope
    )
  )
  const started = performance.now()
  const deadline = started + seconds * 1_000
  let operations = 0
  let violations = 0
  let segments = 0
  let faults = 0
  let shown = 0
  let seed = 10
  const kinds = ["SIGSTOP 1.5 s", "SIGKILL + restart", "none"] as const
  while (performance.now() < deadline) {
    const segmentEnd = Math.min(deadline, performance.now() + faultEvery * 1_000)
    const kind = kinds[segments % kinds.length]!
    const fault =
      kind === "none"
        ? Effect.void
        : Effect.gen(function* () {
            yield* Effect.sleep(`${Math.min(2_000, faultEvery * 250)} millis`)
            if (kind === "SIGSTOP 1.5 s") {
              yield* server.pause
              yield* Effect.sleep("1500 millis")
              yield* server.resume
            } else {
              yield* server.kill
              yield* Effect.sleep("800 millis")
              yield* server.restart
            }
          })
    const history = await Effect.runPromise(
      Effect.gen(function* () {
        const faulting = yield* Effect.forkChild(fault)
        const ops = yield* runWorkload(clients, {
          ops: Number.MAX_SAFE_INTEGER,
          seed: seed++,
          until: () => performance.now() >= segmentEnd
        })
        yield* Effect.exit(Fiber.join(faulting))
        return ops
      }) as Effect.Effect<Array<Operation>, unknown>
    )
    const report = check(history, 1_000)
    operations += report.operations
    violations += report.violations.length
    segments++
    if (kind !== "none") faults++
    for (const v of report.violations) if (shown++ < 3) console.log(explain(v))
    console.log(
      `segment ${segments} (${kind}): ${report.operations} operations, ${report.violations.length} violations; ${Math.round((performance.now() - started) / 1000)} s`
    )
  }
  await Effect.runPromise(Scope.close(scope, Exit.void))
  const ok = violations === 0 && operations > 0
  console.log(
    `coherence soak: ${seconds} s, ${segments} segments, ${faults} faults, ${operations} operations checked, ${violations} violations: ${ok ? "PASS" : "FAIL"}`
  )
  return ok
}
