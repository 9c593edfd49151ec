/**
 * Many instances, one cache: real Node processes (`fixtures/instance.ts`),
 * each with its own L1, sharing a harness-started Redis.
 *
 * - a set, a delete, a tag invalidation and a keyspace clear in one process
 *   are visible in the two others within 100 ms;
 * - 4 processes x 250 concurrent misses on one key: with cluster-wide single
 *   flight the loader runs once in total (counted with a Redis INCR in the
 *   loader); without it, at most once per process;
 * - a process killed (SIGKILL) while holding a lease: the others load once
 *   the lease expires, not later (and not before: the lease is renewed while
 *   its holder lives).
 *
 * Real time throughout (`it.live`): pub/sub delivery, lease expiry and
 * process death are wall-clock events; every wait is bounded and small.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { type Child, nowEpoch, startChildren } from "./children.ts"
import { runId, sleepReal } from "./helpers.ts"

interface Watched {
  readonly at: number
  readonly polls: number
}

/** Starts `watch` on each reader, lets them poll a moment, runs `act`, and returns each reader's delay after `act` started. */
const propagation = (
  readers: ReadonlyArray<Child>,
  cache: string,
  key: string,
  value: string | null,
  act: Effect.Effect<unknown, Error>
) =>
  Effect.gen(function* () {
    const watches = yield* Effect.forEach(readers, (r) =>
      Effect.forkChild(r.call<Watched>("watch", { cache, ks: "item", key, value, timeoutMs: 2_000, intervalMs: 1 }))
    )
    // The readers poll (and serve the old value from their L1) meanwhile.
    yield* sleepReal(30)
    const started = nowEpoch()
    yield* act
    const seen = yield* Effect.forEach(watches, Fiber.join)
    for (const w of seen) assert.isAbove(w.polls, 3, "the reader was serving the old value before")
    return seen.map((w) => w.at - started)
  })

const warm = (
  readers: ReadonlyArray<Child>,
  cache: string,
  keys: ReadonlyArray<string>,
  value: (k: string) => string
) =>
  Effect.gen(function* () {
    // Let the writer's own messages arrive first (a late one would drop the
    // copy just read), then read twice: the second read is an L1 hit.
    yield* sleepReal(50)
    for (const r of readers) {
      for (const key of keys) {
        assert.strictEqual(yield* r.call("get", { cache, ks: "item", key }), value(key))
      }
      const before = yield* r.call<any>("stats", { cache })
      for (const key of keys) yield* r.call("get", { cache, ks: "item", key })
      const after = yield* r.call<any>("stats", { cache })
      assert.strictEqual(after.tiered.l1Hits - before.tiered.l1Hits, keys.length, "served from the L1")
    }
  })

describe.skipIf(!requireRedis())("many instances, one cache (real processes)", () => {
  it.live(
    "3 processes: a set, a delete, a tag invalidation and a keyspace clear are visible in the others within 100 ms",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const [a, b, c] = yield* startChildren(server.url, 3)
        const cache = "prop"
        const prefix = `p-${runId()}`
        yield* Effect.forEach([a!, b!, c!], (p) => p.call("open", { cache, prefix }), { concurrency: "unbounded" })
        const readers = [b!, c!]
        const figures: Record<string, Array<number>> = {}

        yield* a!.call("set", { cache, ks: "item", key: "1", value: "v1" })
        yield* warm(readers, cache, ["1"], () => "v1")
        figures.set = yield* propagation(
          readers,
          cache,
          "1",
          "v2",
          a!.call("set", { cache, ks: "item", key: "1", value: "v2" })
        )

        yield* warm(readers, cache, ["1"], () => "v2")
        figures.delete = yield* propagation(
          readers,
          cache,
          "1",
          null,
          a!.call("invalidate", { cache, ks: "item", key: "1" })
        )

        for (const key of ["2", "3"]) yield* a!.call("set", { cache, ks: "item", key, value: `v${key}` })
        yield* warm(readers, cache, ["2", "3"], (k) => `v${k}`)
        figures.tag = yield* propagation(
          readers,
          cache,
          "2",
          null,
          a!.call("invalidateTag", { cache, tag: "item-tag:2" })
        )
        for (const r of readers) {
          assert.strictEqual(yield* r.call("get", { cache, ks: "item", key: "3" }), "v3", "another tag: untouched")
        }

        yield* warm(readers, cache, ["3"], () => "v3")
        figures.keyspace = yield* propagation(
          readers,
          cache,
          "3",
          null,
          a!.call("invalidateKeyspace", { cache, ks: "item" })
        )

        for (const [what, delays] of Object.entries(figures)) {
          for (const ms of delays) assert.isBelow(ms, 100, `${what} visible after ${ms.toFixed(1)} ms`)
        }
        console.log(
          `[tiered] propagation (ms after the call started, per reader): ${Object.entries(figures)
            .map(([k, v]) => `${k} ${v.map((x) => x.toFixed(1)).join("/")}`)
            .join(", ")}`
        )
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "4 processes x 250 concurrent misses: cluster-wide single flight loads once in total; without it, at most once per process",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const children = yield* startChildren(server.url, 4)
        const cache = "stampede"
        const prefix = `s-${runId()}`
        yield* Effect.forEach(children, (p) => p.call("open", { cache, prefix }), { concurrency: "unbounded" })

        const stampede = (ks: "sf" | "nosf") =>
          Effect.gen(function* () {
            const counterKey = `count:${ks}`
            const results = yield* Effect.forEach(
              children,
              (p) =>
                p.call<{ distinct: Array<string>; count: number; ms: number }>("stampede", {
                  cache,
                  ks,
                  key: "hot",
                  n: 250,
                  counterKey,
                  loadMs: 300
                }),
              { concurrency: "unbounded" }
            )
            for (const r of results) {
              assert.strictEqual(r.count, 250)
              assert.deepStrictEqual(r.distinct, ["value of hot"])
            }
            const runs = Number(yield* server.command("GET", counterKey))
            return { runs, ms: Math.max(...results.map((r) => r.ms)) }
          })

        const clustered = yield* stampede("sf")
        assert.strictEqual(clustered.runs, 1, "one loader run across 4 processes and 1,000 misses")
        const stats = yield* Effect.forEach(children, (p) => p.call<any>("stats", { cache }))
        const lease = stats.map((s) => s.tiered.lease)
        assert.isAtLeast(
          lease.reduce((n: number, l: any) => n + l.acquired, 0),
          1
        )
        assert.strictEqual(
          lease.reduce((n: number, l: any) => n + l.found, 0),
          3,
          "three processes were answered by the value the first stored"
        )

        const perProcess = yield* stampede("nosf")
        assert.isAtLeast(perProcess.runs, 1)
        assert.isAtMost(perProcess.runs, 4, "single flight within each process")
        console.log(
          `[tiered] stampede, 4 x 250 misses, 300 ms loader: cluster-wide ${clustered.runs} run(s) in ${clustered.ms.toFixed(0)} ms; per process ${perProcess.runs} run(s) in ${perProcess.ms.toFixed(0)} ms`
        )
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a process killed (SIGKILL) while holding a lease: the others load once the lease expires, not later",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const [holder, b, c] = yield* startChildren(server.url, 3)
        const cache = "lease"
        const prefix = `l-${runId()}`
        yield* Effect.forEach([holder!, b!, c!], (p) => p.call("open", { cache, prefix }), {
          concurrency: "unbounded"
        })
        const leaseKey = `${prefix}:~lease:short:k`
        const counterKey = "count:short"

        yield* holder!.call("hold", { cache, ks: "short", key: "k" })
        assert.isAbove(Number(yield* server.command("PTTL", leaseKey)), 0, "the lease is held")
        const waiters = yield* Effect.forEach([b!, c!], (p) =>
          Effect.forkChild(
            p.call<{ value: string; loaderStartedAt: number | null; doneAt: number }>("load", {
              cache,
              ks: "short",
              key: "k",
              counterKey,
              loadMs: 100
            })
          )
        )
        // The lease lasts 1 s; its holder renews it: nobody loads meanwhile.
        yield* sleepReal(1_500)
        assert.strictEqual(yield* server.command("GET", counterKey), "", "no load while the holder lives")

        yield* holder!.kill
        const before = nowEpoch()
        const pttl = Number(yield* server.command("PTTL", leaseKey))
        const after = nowEpoch()
        assert.isAbove(pttl, 0)
        const earliest = before + pttl
        const latest = after + pttl

        const results = yield* Effect.forEach(waiters, Fiber.join)
        const loaders = results.filter((r) => r.loaderStartedAt !== null)
        assert.strictEqual(loaders.length, 1, "one of the two others loads; the other gets its value")
        assert.strictEqual(yield* server.command("GET", counterKey), "1")
        for (const r of results) assert.strictEqual(r.value, loaders[0]!.value)
        const startedAt = loaders[0]!.loaderStartedAt!
        // Poll interval 20 ms; scheduling slack (250 ms) on 2 shared cores.
        assert.isAtLeast(startedAt, earliest - 5, "not before the lease expired")
        assert.isAtMost(startedAt, latest + 20 + 250, "not later than one poll after it expired")
        console.log(
          `[tiered] SIGKILLed lease holder: lease expired ${pttl} ms after the kill; the next load started ${(startedAt - earliest).toFixed(1)} ms after expiry`
        )
      }).pipe(Effect.scoped),
    30_000
  )
})
