/**
 * TieredStore on a real 3-master Redis Cluster (the harness's): the bus
 * carries invalidations between instances, the lease works across slots, and
 * killing every pub/sub connection makes the subscribers move on and reset.
 *
 * Real time (`it.live`): pub/sub delivery and reconnection.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Schema } from "effect"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import { requireRedis } from "../harness/redis.ts"
import { sharedCluster } from "../redis/helpers.ts"
import { eventually, type Instance, instance, on, runId, sleepReal, statsOf, subscribed } from "./helpers.ts"

const cluster = sharedCluster()

const Items = Keyspace.make({ name: "item", key: "{id}", value: Schema.String, ttl: "1 minute" })
const Reports = Keyspace.make({
  name: "report",
  key: "{id}",
  value: Schema.String,
  ttl: "1 minute",
  singleFlight: { scope: "cluster", pollInterval: "20 millis" }
})

const pair = (prefix: string) =>
  Effect.gen(function* () {
    const all: Array<Instance> = []
    for (let i = 0; i < 2; i++) {
      all.push(yield* instance({ l2: { cluster: cluster.get().startupNodes, prefix, commandTimeout: 500 } }))
    }
    for (const ctx of all) yield* subscribed(ctx)
    return all as [Instance, Instance]
  })

describe.skipIf(!requireRedis())("TieredStore on a Redis Cluster", () => {
  it.live(
    "invalidations reach the other instance; a killed subscriber reconnects and resets the L1",
    () =>
      Effect.gen(function* () {
        const [a, b] = yield* pair(`c-${runId()}`)
        const ids = Array.from({ length: 20 }, (_, i) => i)
        for (const id of ids) yield* on(a)(Cachet.set(Items, { id }, `v1-${id}`))
        yield* sleepReal(50)
        for (const id of ids) assert.deepStrictEqual(yield* on(b)(Cachet.get(Items, { id })), Option.some(`v1-${id}`))
        for (const id of ids) yield* on(a)(Cachet.set(Items, { id }, `v2-${id}`))
        yield* eventually(
          Effect.map(
            Effect.forEach(ids, (id) => on(b)(Cachet.get(Items, { id }))),
            (vs) => vs.every((v, id) => Option.getOrUndefined(v) === `v2-${id}`)
          ),
          200,
          "every key updated on B",
          5
        )

        const before = (yield* statsOf(b)).bus!.subscriptions
        const clearsBefore = (yield* statsOf(b)).l1Clears
        for (const node of cluster.get().nodes) yield* node.command("CLIENT", "KILL", "TYPE", "pubsub")
        yield* eventually(
          Effect.map(statsOf(b), (s) => s.bus!.subscribed && s.bus!.subscriptions > before),
          5_000,
          "B resubscribed (on some node)"
        )
        assert.isAbove((yield* statsOf(b)).l1Clears, clearsBefore, "and dropped its L1")
        yield* on(a)(Cachet.set(Items, { id: 0 }, "v3"))
        yield* eventually(
          Effect.map(on(b)(Cachet.get(Items, { id: 0 })), (v) => Option.getOrUndefined(v) === "v3"),
          200,
          "the bus works again",
          5
        )
      }).pipe(Effect.scoped),
    30_000
  )

  it.live("cluster-wide single flight across two runtimes", () =>
    Effect.gen(function* () {
      const [a, b] = yield* pair(`cs-${runId()}`)
      let runs = 0
      const loader = Effect.sync(() => ++runs).pipe(Effect.andThen(sleepReal(150)), Effect.as("report"))
      const read = (ctx: Instance, id: number) => on(ctx)(loader.pipe(Strategy.cacheAside(Reports, { id })))
      for (const id of [1, 2, 3]) {
        const results = yield* Effect.all([read(a, id), read(b, id)], { concurrency: "unbounded" })
        assert.deepStrictEqual(results, ["report", "report"])
      }
      assert.strictEqual(runs, 3, "one run per key")
    }).pipe(Effect.scoped)
  )
})
