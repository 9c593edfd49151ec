/**
 * Connections and their lifetime: closing a layer closes every connection it
 * opened (counted by the server, with `CLIENT LIST`) and leaves no socket or
 * timer behind in the process; an adopted client stays open.
 *
 * Under `it.live`: connections close asynchronously, so these tests poll in
 * real time until the server's count settles.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { Redis as EffectRedis } from "effect/persistence"
import { Redis } from "ioredis"
import { CacheStore } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import { RedisCluster, RedisServer, requireRedis } from "../harness/redis.ts"
import { clientCount, eventually, sharedServer, sleepReal } from "./helpers.ts"

const server = sharedServer()

const Numbers = Keyspace.make({ name: "n", key: "{id}", value: Schema.Number, ttl: "1 minute" })

const sockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length
const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length

describe.skipIf(!requireRedis())("connection lifecycle", () => {
  it.live("closing IoRedis.layer closes the client and every connection opened for effect's Redis service", () =>
    Effect.gen(function* () {
      const baseline = yield* clientCount(server.get())
      const socketsBefore = sockets()
      const timersBefore = timers()
      const scope = yield* Scope.make()
      const context = yield* Layer.build(
        Cachet.layer().pipe(
          Layer.provideMerge(RedisStore.layerClient({ prefix: "life" })),
          Layer.provideMerge(IoRedis.layer({ url: server.get().url }))
        )
      ).pipe(Scope.provide(scope))
      const { client } = Context.get(context, IoRedis.IoRedis)
      const redis = Context.get(context, EffectRedis.Redis)
      // Use everything: the store, a subscription (its own connection) and a
      // reserved connection (returned to the pool, kept until the layer closes).
      yield* Effect.provide(Effect.sync(() => 1).pipe(Strategy.cacheAside(Numbers, { id: 1 })), context)
      const queue = yield* redis.subscribe("life:channel").pipe(Scope.provide(scope))
      yield* Effect.scoped(Effect.flatMap(redis.reserve, (c) => c.send("PING")))
      yield* eventually(
        Effect.map(clientCount(server.get()), (n) => n === baseline + 3),
        5_000,
        "client, subscriber and reserved connection are open"
      )
      void queue
      const socketsInUse = sockets()
      assert.isAtLeast(socketsInUse, socketsBefore + 3, "the sockets are seen while in use")

      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(client.status, "end")
      const settledMs = yield* eventually(
        Effect.map(clientCount(server.get()), (n) => n === baseline),
        5_000,
        "every connection is closed"
      )
      yield* eventually(
        Effect.sync(() => sockets() <= socketsBefore),
        2_000,
        "no socket left in the process"
      )
      yield* eventually(
        Effect.sync(() => timers() <= timersBefore),
        2_000,
        "no timer left in the process"
      )
      console.log(
        `IoRedis.layer: ${baseline + 3 - 1} connections open while in use, back to the baseline ${settledMs.toFixed(0)} ms after close;` +
          ` sockets ${socketsBefore} -> ${socketsInUse} -> ${sockets()}, timers ${timersBefore} -> ${timers()}`
      )
    })
  )

  it.live("closing RedisStore.layer closes its connection, even while Redis is down and reconnecting", () =>
    Effect.gen(function* () {
      const baseline = yield* clientCount(server.get())
      const socketsBefore = sockets()
      const timersBefore = timers()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(RedisStore.layer({ url: server.get().url, prefix: "life" }))
          const store = Context.get(context, CacheStore)
          yield* store.ping
          assert.strictEqual(yield* clientCount(server.get()), baseline + 1)
        })
      )
      yield* eventually(
        Effect.map(clientCount(server.get()), (n) => n === baseline),
        5_000,
        "closed"
      )

      // A client that is retrying a dead server: closing cancels its reconnection timer.
      const gone = yield* RedisServer.start()
      yield* gone.kill
      yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(RedisStore.layer({ url: gone.url, prefix: "life" }))
          const store = Context.get(context, CacheStore)
          yield* Effect.exit(store.ping)
          yield* sleepReal(300) // several reconnection attempts
        })
      )
      const socketsMs = yield* eventually(
        Effect.sync(() => sockets() <= socketsBefore),
        2_000,
        "no socket left"
      )
      const timersMs = yield* eventually(
        Effect.sync(() => timers() <= timersBefore),
        2_000,
        "no reconnection timer left"
      )
      console.log(
        `RedisStore.layer on a dead server: sockets settled in ${socketsMs.toFixed(0)} ms, timers in ${timersMs.toFixed(0)} ms`
      )
    })
  )

  it.live("RedisStore.make owns its connection for the scope it is built in", () =>
    Effect.gen(function* () {
      const baseline = yield* clientCount(server.get())
      yield* Effect.scoped(
        Effect.gen(function* () {
          const store = yield* RedisStore.make({ url: server.get().url, prefix: "made" })
          yield* store.ping
          assert.strictEqual(yield* clientCount(server.get()), baseline + 1)
        })
      )
      yield* eventually(
        Effect.map(clientCount(server.get()), (n) => n === baseline),
        5_000,
        "closed with the scope"
      )
    })
  )

  it.live("an adopted client is not closed with the layer, and its error listener is removed", () =>
    Effect.gen(function* () {
      const client = new Redis(server.get().url, { lazyConnect: true })
      yield* Effect.promise(() => client.connect())
      const listeners = client.listenerCount("error")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(RedisStore.layer({ client, prefix: "adopted" }))
          const store = Context.get(context, CacheStore)
          yield* store.ping
          assert.strictEqual(client.listenerCount("error"), listeners + 1)
        })
      )
      assert.strictEqual(client.status, "ready")
      assert.strictEqual(client.listenerCount("error"), listeners)
      assert.strictEqual(yield* Effect.promise(() => client.ping()), "PONG")
      yield* Effect.promise(() => client.quit())
    })
  )

  it.live(
    "closing a cluster store closes its connections to every node",
    () =>
      Effect.gen(function* () {
        const cluster = yield* RedisCluster.start()
        const baselines = yield* Effect.forEach(cluster.nodes, clientCount)
        yield* Effect.scoped(
          Effect.gen(function* () {
            const context = yield* Layer.build(RedisStore.layer({ cluster: cluster.startupNodes, prefix: "life" }))
            const store = Context.get(context, CacheStore)
            yield* store.ping
            yield* store.deletePrefix("n:")
            const open = yield* Effect.forEach(cluster.nodes, clientCount)
            assert.isTrue(
              open.every((n, i) => n > baselines[i]!),
              "connected to every node"
            )
          })
        )
        yield* eventually(
          Effect.map(Effect.forEach(cluster.nodes, clientCount), (counts) =>
            counts.every((n, i) => n === baselines[i])
          ),
          5_000,
          "every node's connections are closed"
        )
      }),
    30_000
  )
})
