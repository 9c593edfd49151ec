/**
 * Observability on real Redis: `Cachet.health` (the breaker's state as the
 * server goes away and comes back, TieredStore's bus subscription and its
 * resets, also as `Cachet.events`), and the spans of a remote store (a hit
 * is a GET to Redis, and still unspanned by default).
 *
 * Real time (`it.live`): the server's outage, the breaker's open period and
 * pub/sub reconnections run on real timers; every wait is bounded polling.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Schema, Stream, Tracer } from "effect"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as TieredStore from "../../src/redis/TieredStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { recordingTracer } from "../core/observe.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { eventually, runId, sharedServer } from "./helpers.ts"

const shared = sharedServer()

const Numbers = Keyspace.make({ name: "n", key: "{id}", value: Schema.Number, ttl: "1 minute" })

describe.skipIf(!requireRedis())("Cachet.health on Redis", () => {
  it.live(
    "RedisStore: ok with its breaker closed; down with it open while the server is stopped; ok again after",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const context = yield* Layer.build(
          Cachet.layer().pipe(
            Layer.provide(
              RedisStore.layer({
                url: server.url,
                prefix: `h-${runId()}`,
                commandTimeout: "300 millis",
                breaker: { failures: 3, openFor: "500 millis" }
              })
            )
          )
        )
        const on = <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet>) => Effect.provideContext(effect, context)
        const ok = yield* on(Cachet.health)
        assert.strictEqual(ok.status, "ok")
        assert.isTrue(ok.store.ok)
        assert.strictEqual(ok.store.name, "redis")
        assert.isAtLeast(ok.store.latencyMillis, 0)
        assert.deepStrictEqual(ok.breakers, [{ node: "standalone", state: "closed" }])
        assert.strictEqual(ok.bus, undefined)

        yield* server.stop
        // Reads degrade to the loader, and their failures open the breaker.
        for (let i = 0; i < 5; i++)
          assert.strictEqual(yield* on(Effect.succeed(i).pipe(Strategy.cacheAside(Numbers, { id: i }))), i)
        const down = yield* on(Cachet.health)
        assert.strictEqual(down.status, "down")
        assert.isFalse(down.store.ok)
        assert.isString(down.store.error)
        assert.deepStrictEqual(down.breakers, [{ node: "standalone", state: "open" }])

        yield* server.restart
        yield* eventually(
          Effect.map(on(Cachet.health), (h) => h.status === "ok" && h.breakers[0]?.state === "closed"),
          10_000,
          "health ok again"
        )
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "TieredStore: the bus is subscribed, and a lost subscription is a BusReset event and a newer lastReset",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const context = yield* Layer.build(
          Cachet.layer().pipe(
            Layer.provideMerge(TieredStore.layer({ l2: { url: server.url, prefix: `hb-${runId()}` } }))
          )
        )
        const on = <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet>) => Effect.provideContext(effect, context)
        yield* eventually(
          Effect.map(on(Cachet.health), (h) => h.bus?.subscribed === true),
          5_000,
          "bus subscribed"
        )
        const first = yield* on(Cachet.health)
        assert.strictEqual(first.status, "ok")
        assert.deepStrictEqual(first.breakers, [{ node: "standalone", state: "closed" }], "the L2's breaker")
        assert.strictEqual(first.bus?.lastReset?.reason, "subscribed")
        const subscriptions = first.bus!.subscriptions

        const reader = yield* Effect.forkChild(
          on(
            Cachet.events.pipe(
              Stream.filter((e) => e._tag === "BusReset"),
              Stream.take(1),
              Stream.runCollect
            )
          )
        )
        yield* eventually(
          Effect.map(on(Cachet.health), (h) => h.events.subscribers === 1),
          5_000,
          "events subscribed"
        )
        yield* server.command("CLIENT", "KILL", "TYPE", "pubsub")
        const [reset] = yield* Fiber.join(reader)
        assert.strictEqual(reset?._tag === "BusReset" && reset.reason, "subscribed")
        const after = yield* on(Cachet.health)
        assert.isAbove(after.bus!.subscriptions, subscriptions)
        assert.isAtLeast(after.bus!.lastReset!.at, first.bus!.lastReset!.at)
      }).pipe(Effect.scoped),
    30_000
  )
})

describe.skipIf(!requireRedis())("tracing on Redis", () => {
  it.live('a miss is cachet.load over cachet.store.set; a hit (a Redis GET) starts no span; "all" spans it', () =>
    Effect.gen(function* () {
      const { spans, tracer } = recordingTracer()
      const run = <A, E>(options: Cachet.Options, effect: Effect.Effect<A, E, Cachet.Cachet>) =>
        effect.pipe(
          Effect.provide(
            Cachet.layer(options).pipe(
              Layer.provide(RedisStore.layer({ url: shared.get().url, prefix: `tr-${runId()}` }))
            )
          ),
          Effect.provide(Layer.succeed(Tracer.Tracer, tracer))
        )
      const read = Effect.succeed(5).pipe(Strategy.cacheAside(Numbers, { id: 1 }))
      yield* run({}, Effect.andThen(read, read))
      assert.deepStrictEqual(
        spans.map((s) => s.name),
        ["cachet.load", "cachet.store.set"]
      )
      const set = spans[1]!
      assert.strictEqual(Option.getOrUndefined(set.parent)?.spanId, spans[0]!.spanId)
      assert.strictEqual(set.attributes.get("cachet.store"), "redis")
      assert.strictEqual(set.attributes.get("cachet.keyspace"), "n")

      spans.length = 0
      yield* run({ tracing: "all" }, Effect.andThen(read, read))
      assert.deepStrictEqual(
        spans.map((s) => [s.name, s.attributes.get("cachet.result")]),
        [
          ["cachet.get", "miss"],
          ["cachet.store.get", undefined],
          ["cachet.load", "miss"],
          ["cachet.store.set", undefined],
          ["cachet.get", "hit"],
          ["cachet.store.get", undefined]
        ]
      )
    })
  )
})
