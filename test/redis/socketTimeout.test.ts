/**
 * Regression test for an ioredis 5 bug our soak run found: a `socketTimeout`
 * timer armed before a connection drops used to fire after the reconnect and
 * destroy the new connection. Real time is inherent here (a server pause, a
 * kill, a restart and a socket timer), so it runs under `it.live`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"
import { eventually, sleepReal } from "./helpers.ts"

describe.skipIf(!requireRedis())("ioredis socket timer after a reconnect", () => {
  it.live(
    "a timer armed before the drop does not kill the new connection",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const ctx = yield* Layer.build(
          IoRedis.layer({ url: server.url, commandTimeout: "300 millis", socketTimeout: "1 second" })
        )
        const { client } = (yield* Effect.provideContext(Effect.service(IoRedis.IoRedis), ctx)) as {
          client: import("ioredis").Redis
        }
        yield* eventually(
          Effect.sync(() => client.status === "ready"),
          5_000,
          "first connection"
        )
        // Arm the socket timer: a command sent to a paused server gets no reply.
        yield* server.pause
        yield* Effect.promise(() => client.get("k").catch(() => "timed out"))
        // Drop that connection and come back.
        yield* server.kill
        yield* server.restart
        yield* eventually(
          Effect.sync(() => client.status === "ready"),
          10_000,
          "reconnection"
        )
        let closes = 0
        client.on("close", () => closes++)
        // Past the old timer's deadline, the new connection must still be up.
        yield* sleepReal(1_500)
        assert.strictEqual(closes, 0, "the new connection was not destroyed")
        assert.strictEqual(yield* Effect.promise(() => client.ping()), "PONG")
      }).pipe(Effect.scoped),
    30_000
  )
})
