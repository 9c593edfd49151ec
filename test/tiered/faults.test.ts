/**
 * Many instances under faults, in real processes on a harness Redis of their
 * own:
 *
 * - every pub/sub connection killed (`CLIENT KILL TYPE pubsub`) while one
 *   process writes continuously and two read continuously: after the
 *   subscribers reconnect (L1 dropped, gaps counted), no process serves a
 *   value older than the last acknowledged write for longer than the
 *   reconnection time + 1 s;
 * - the L2 paused (SIGSTOP), then killed and restarted: the L1s keep serving
 *   within their bound, and the instances converge after Redis returns.
 *
 * Real time (`it.live`): reconnections, timeouts and expiry are wall-clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { type Child, nowEpoch, startChildren } from "./children.ts"
import { eventually, runId, sleepReal } from "./helpers.ts"

type Sample = [at: number, key: string, value: string | null]
type Write = [ackedAt: number, key: string, version: number]

/**
 * The worst staleness among `samples`: for a read that started at `t` and
 * answered version `v`, how long a newer version had been acknowledged by
 * then (0 when none had).
 */
const worstStaleness = (samples: ReadonlyArray<Sample>, writes: ReadonlyArray<Write>) => {
  const byKey = new Map<string, Array<Write>>()
  for (const w of writes) {
    const list = byKey.get(w[1]) ?? []
    list.push(w)
    byKey.set(w[1], list)
  }
  let worst = 0
  let at = 0
  for (const [t, key, value] of samples) {
    if (value === null) continue
    const version = Number(value)
    let firstNewer = Number.POSITIVE_INFINITY
    for (const [ackedAt, , v] of byKey.get(key) ?? []) {
      if (v > version && ackedAt < t && ackedAt < firstNewer) firstNewer = ackedAt
    }
    if (firstNewer !== Number.POSITIVE_INFINITY && t - firstNewer > worst) {
      worst = t - firstNewer
      at = t
    }
  }
  return { worst, at }
}

const stats = (p: Child, cache: string) => p.call<any>("stats", { cache })

describe.skipIf(!requireRedis())("many instances under faults (real processes)", () => {
  it.live(
    "pub/sub connections killed while a process writes: no stale value for longer than reconnection + 1 s",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const [writer, r1, r2] = yield* startChildren(server.url, 3)
        const cache = "kill"
        const prefix = `k-${runId()}`
        const readers = [r1!, r2!]
        yield* Effect.forEach([writer!, ...readers], (p) => p.call("open", { cache, prefix, l1MaxTtl: 60_000 }), {
          concurrency: "unbounded"
        })
        const keys = ["a", "b", "c"]
        const duration = 3_000
        const writing = yield* Effect.forkChild(
          writer!.call<Array<Write>>("writeLoop", { cache, ks: "item", keys, durationMs: duration, intervalMs: 10 })
        )
        const reading = yield* Effect.forEach(readers, (r) =>
          Effect.forkChild(
            r.call<Array<Sample>>("readLoop", { cache, ks: "item", keys, durationMs: duration, intervalMs: 2 })
          )
        )

        // Two kills, each measured until both readers are subscribed again.
        const reconnections: Array<number> = []
        for (const pause of [700, 900]) {
          yield* sleepReal(pause)
          const before = yield* Effect.forEach(readers, (r) => stats(r, cache))
          const killedAt = nowEpoch()
          yield* server.command("CLIENT", "KILL", "TYPE", "pubsub")
          yield* eventually(
            Effect.map(
              Effect.forEach(readers, (r) => stats(r, cache)),
              (now) =>
                now.every(
                  (s, i) => s.tiered.bus.subscribed && s.tiered.bus.subscriptions > before[i].tiered.bus.subscriptions
                )
            ),
            3_000,
            "readers resubscribed",
            5
          )
          reconnections.push(nowEpoch() - killedAt)
        }

        const writes = yield* Fiber.join(writing)
        const samples = (yield* Effect.forEach(reading, Fiber.join)).flat()
        const after = yield* Effect.forEach(readers, (r) => stats(r, cache))
        const reconnect = Math.max(...reconnections)
        const { worst } = worstStaleness(samples, writes)
        assert.isAbove(writes.length, 100, "the writer kept writing")
        assert.isAbove(samples.length, 300, "the readers kept reading")
        for (const s of after) {
          assert.isAtLeast(s.tiered.bus.subscriptions, 3, "subscribed, then resubscribed twice")
          assert.isAtLeast(s.tiered.l1Clears, 3, "the L1 was dropped on each subscription")
        }
        assert.isAtMost(worst, reconnect + 1_000, `stale for ${worst.toFixed(0)} ms (reconnection ${reconnect} ms)`)
        console.log(
          `[tiered] pub/sub killed twice under writes: ${writes.length} writes, ${samples.length} reads; reconnection ${reconnections
            .map((r) => r.toFixed(0))
            .join("/")} ms; worst staleness ${worst.toFixed(1)} ms; gaps seen ${after
            .map((s) => `${s.tiered.bus.gaps} (${s.tiered.bus.missed} missed)`)
            .join(", ")}`
        )
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "L2 down (paused, then killed and restarted): the L1s keep serving within their bound; the instances converge after it returns",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const processes = yield* startChildren(server.url, 3)
        const [a, b, c] = processes
        const cache = "down"
        const prefix = `d-${runId()}`
        const l1MaxTtl = 2_000
        yield* Effect.forEach(processes, (p) => p.call("open", { cache, prefix, l1MaxTtl, commandTimeout: 200 }), {
          concurrency: "unbounded"
        })
        const keys = ["1", "2", "3"]
        const read = (p: Child, key: string) => p.call<string | null>("get", { cache, ks: "item", key })
        const readAll = Effect.forEach(processes, (p) => Effect.forEach(keys, (key) => read(p, key)))
        const converged = Effect.map(readAll, (views) =>
          keys.every((_, k) => views.every((view) => view[k] === views[0]![k]))
        )

        for (const key of keys) yield* a!.call("set", { cache, ks: "item", key, value: "v1" })
        yield* sleepReal(50)
        assert.deepStrictEqual(yield* readAll, [keys.map(() => "v1"), keys.map(() => "v1"), keys.map(() => "v1")])

        // -- paused: the L1s answer; a write stays local; a delete is queued.
        yield* server.pause
        const pausedAt = nowEpoch()
        const during = yield* Effect.forEach([b!, c!], (p) =>
          Effect.forkChild(
            p.call<Array<Sample>>("readLoop", { cache, ks: "item", keys, durationMs: 1_000, intervalMs: 5 })
          )
        )
        yield* a!.call("set", { cache, ks: "item", key: "1", value: "v2" })
        yield* a!.call("invalidate", { cache, ks: "item", key: "2" })
        const samples = (yield* Effect.forEach(during, Fiber.join)).flat()
        assert.isAbove(samples.length, 50)
        assert.isTrue(
          samples.every(([, , v]) => v === "v1"),
          "while Redis hangs, B and C serve their L1 (v1 everywhere)"
        )
        assert.strictEqual(yield* read(a!, "1"), "v2", "A keeps its write in its L1 (not published)")
        yield* server.resume
        const resumedAt = nowEpoch()
        const convergeAfterPause = yield* eventually(converged, l1MaxTtl + 1_000, "converged after the pause", 20)
        const pauseStats = yield* stats(a!, cache)
        assert.isAtLeast(pauseStats.tiered.bus.publishFailures + pauseStats.tiered.bus.queued, 1)

        // -- killed and restarted (empty): everyone reconnects and drops its L1.
        for (const key of keys) yield* a!.call("set", { cache, ks: "item", key, value: "v3" })
        yield* sleepReal(50)
        yield* readAll
        yield* server.kill
        const killedReads = yield* Effect.forEach([b!, c!], (p) => Effect.forEach(keys, (key) => read(p, key)))
        assert.deepStrictEqual(
          killedReads,
          [keys.map(() => "v3"), keys.map(() => "v3")],
          "L1 serves while Redis is gone"
        )
        yield* server.restart
        const restartedAt = nowEpoch()
        yield* eventually(
          Effect.map(
            Effect.forEach(processes, (p) => stats(p, cache)),
            (all) => all.every((s) => s.tiered.bus.subscribed && s.tiered.bus.subscriptions >= 2)
          ),
          5_000,
          "resubscribed after the restart",
          20
        )
        const resubscribed = nowEpoch() - restartedAt
        const views = yield* readAll
        assert.deepStrictEqual(views, [keys.map(() => null), keys.map(() => null), keys.map(() => null)], "L1s dropped")
        // The bus works again: a write that reaches Redis (A's own client
        // may still be reconnecting, or its breaker open: retry until it does)
        // reaches everyone.
        yield* eventually(
          Effect.as(a!.call("set", { cache, ks: "item", key: "1", value: "v4", strict: true }), true).pipe(
            Effect.orElseSucceed(() => false)
          ),
          5_000,
          "A writes to Redis again",
          50
        )
        yield* eventually(
          Effect.map(
            Effect.forEach([b!, c!], (p) => read(p, "1")),
            (vs) => vs.every((v) => v === "v4")
          ),
          1_000,
          "a write after the restart reaches everyone",
          5
        )
        console.log(
          `[tiered] L2 paused ${(resumedAt - pausedAt).toFixed(0)} ms: ${samples.length} reads, all from L1; converged ${convergeAfterPause.toFixed(0)} ms after resume (l1MaxTtl ${l1MaxTtl} ms); killed + restarted: all resubscribed (L1 dropped) ${resubscribed.toFixed(0)} ms after the restart`
        )
      }).pipe(Effect.scoped),
    30_000
  )
})
