/**
 * Durable write-behind on a real Redis (the harness's own redis-server): a
 * process acknowledges writes and is killed with SIGKILL before writing any
 * of them to the source; another process on the same queue writes them all.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import * as Cachet from "../../src/Cachet.ts"
import { queueRedisTimings } from "../../src/internal/durableWriteBehind.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as Strategy from "../../src/Strategy.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"

/** As in fixtures/durableProducer.ts. */
const timings = { lockExpiration: "2 seconds", recoveryInterval: "500 millis", pollInterval: "100 millis" } as const

const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })

const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const handle = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(handle))
  })

/** A process on the queue (this one) that writes to `rows`, noting when each id first arrived. */
const makeConsumer = (url: string) => {
  const arrivedAt = new Map<number, number>()
  const rows = new Map<number, string>()
  const consumer = Strategy.layerDurableWriteBehind({
    queue: "crash-test",
    writers: [
      Strategy.durableWriter(Users, {
        set: (name, params) =>
          Effect.sync(() => {
            rows.set(Number(params.id), name)
            if (!arrivedAt.has(Number(params.id))) arrivedAt.set(Number(params.id), performance.now())
          })
      })
    ]
  }).pipe(
    Layer.provideMerge(Cachet.layerMemory()),
    Layer.provide(Strategy.layerDurableQueueRedis(timings)),
    Layer.provide(IoRedis.layer({ url, commandTimeout: 300 }))
  )
  return { rows, arrivedAt, consumer }
}

/** Runs the producer until it printed `done`, then kills it with SIGKILL. */
const produceAndCrash = (url: string, queue: string, count: number) =>
  Effect.callback<
    { readonly acked: number; readonly taken: number; readonly heldId: number; readonly killedAt: number },
    Error
  >((resume) => {
    const child = spawn(
      process.execPath,
      [path.join(import.meta.dirname, "fixtures", "durableProducer.ts"), url, queue, String(count)],
      {
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let acked = 0
    let taken = 0
    let heldId = 0
    let stderr = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      resume(Effect.fail(new Error(`producer timed out after ${acked} acks: ${stderr}`)))
    }, 20_000)
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (line.startsWith("acked ")) acked = Number(line.slice(6))
        if (line.startsWith("taken ")) {
          taken++
          heldId = Number(line.slice(6))
        }
        if (line === "done") {
          clearTimeout(timer)
          child.kill("SIGKILL")
          child.once("exit", () => resume(Effect.succeed({ acked, taken, heldId, killedAt: performance.now() })))
        }
      }
    })
    child.once("error", (error) => resume(Effect.fail(error)))
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

describe.skipIf(!requireRedis())("writeBehind, durable mode on Redis", () => {
  it("the queue's timings: cache-sized defaults, the bound they give, bad options named", () => {
    assert.deepStrictEqual(queueRedisTimings(), {
      lockExpiration: 10_000,
      recoveryInterval: 2_000,
      pollInterval: 500,
      redeliveryBound: 12_500
    })
    assert.strictEqual(queueRedisTimings(timings).redeliveryBound, 2_600)
    assert.throws(
      () => Strategy.layerDurableQueueRedis({ lockExpiration: "2 seconds", recoveryInterval: "1500 millis" }),
      /option "recoveryInterval" must be at most half of "lockExpiration"/
    )
    assert.throws(() => Strategy.layerDurableQueueRedis({ pollInterval: "soon" as never }), /option "pollInterval"/)
  })

  it.live(
    "an acknowledged write survives a crash of the process that acknowledged it",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const produced = yield* produceAndCrash(server.url, "crash-test", 20)
        assert.strictEqual(produced.acked, 20)
        assert.strictEqual(produced.taken, 1, "the killed process was in the middle of one write")

        const { rows, arrivedAt, consumer } = makeConsumer(server.url)
        // Real time: the lock that releases the held write expires on the
        // Redis server's clock. Bounded polling, 100 ms a step, 15 s at most.
        yield* Effect.gen(function* () {
          for (let i = 0; i < 150 && rows.size < 20; i++) yield* sleepReal(100)
        }).pipe(Effect.provide(consumer))
        assert.strictEqual(rows.size, 20)
        for (let id = 1; id <= 20; id++) assert.strictEqual(rows.get(id), `name ${id}`)
        const redelivery = arrivedAt.get(produced.heldId)! - produced.killedAt
        const bound = 2_000 + 500 + 100
        console.log(
          `durable write-behind: the write held by the killed process (${produced.heldId}) came back ${Math.round(redelivery)} ms after the kill (bound ${bound} ms + 500 ms of start-up)`
        )
        // Its lock was refreshed at most 500 ms before the kill, so it lapses
        // 1.5-2 s after it; the consumer finds it within recoveryInterval
        // and takes it within pollInterval. 500 ms for the consumer's start.
        assert.isAtLeast(redelivery, 1_000, "not before the lock expired")
        assert.isAtMost(redelivery, bound + 500)
      }),
    60_000
  )

  it.live(
    "lock recovery survives a Redis stall: a held write is still recovered after Redis answers again",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const produced = yield* produceAndCrash(server.url, "crash-test", 20)
        assert.strictEqual(produced.taken, 1)
        const { rows, arrivedAt, consumer } = makeConsumer(server.url)
        yield* Effect.gen(function* () {
          // Real time throughout (a stalled server, locks on its clock);
          // bounded polling, 50 ms a step.
          for (let i = 0; i < 100 && rows.size < 19; i++) yield* sleepReal(50)
          assert.strictEqual(rows.size, 19, "all but the held write, before the stall")
          // Stalled for 2 s: recovery calls fail (effect 4.1 would end its
          // recovery loop at the first), and the held lock expires meanwhile.
          yield* server.pause
          yield* sleepReal(2_000)
          yield* server.resume
          const resumedAt = performance.now()
          for (let i = 0; i < 100 && rows.size < 20; i++) yield* sleepReal(50)
          assert.strictEqual(rows.size, 20, "the held write was recovered after the stall")
          const after = arrivedAt.get(produced.heldId)! - resumedAt
          console.log(`durable write-behind: held write recovered ${Math.round(after)} ms after Redis answered again`)
          // recoveryInterval + pollInterval, after the client's reconnect
          // (its backoff is capped at 2 s; measured 2.05-2.09 s in all).
          assert.isAtMost(after, 500 + 100 + 2_000 + 500)
        }).pipe(Effect.provide(consumer))
      }),
    60_000
  )
})
