/**
 * Durable write-behind on a real Redis (the harness's own redis-server): a
 * process acknowledges writes and is killed with SIGKILL before writing any
 * of them to the source; another process on the same queue writes them all.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schedule, Schema } from "effect"
import * as PersistedQueue from "effect/persistence/PersistedQueue"
import * as Redis from "effect/persistence/Redis"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as IoRedis from "../../src/redis/IoRedis.ts"
import * as Strategy from "../../src/Strategy.ts"
import { RedisServer, requireRedis } from "../harness/redis.ts"

const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "1 minute" })

const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const handle = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(handle))
  })

/**
 * IoRedis, once connected. effect's PersistedQueue Redis store starts its
 * lock-recovery loop on first use and that loop ends at its first Redis error
 * (effect 4.1.0); IoRedis.layer does not wait for the connection, so wait here.
 */
const connected = (url: string) =>
  Layer.effectDiscard(
    Effect.flatMap(Effect.service(Redis.Redis), (redis) => redis.send("PING")).pipe(
      Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100 })
    )
  ).pipe(Layer.provideMerge(IoRedis.layer({ url })))

/** Runs the producer until it printed `done`, then kills it with SIGKILL. */
const produceAndCrash = (url: string, queue: string, count: number) =>
  Effect.callback<{ readonly acked: number; readonly taken: number }, Error>((resume) => {
    const child = spawn(
      process.execPath,
      [path.join(import.meta.dirname, "fixtures", "durableProducer.ts"), url, queue, String(count)],
      {
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let acked = 0
    let taken = 0
    let stderr = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      resume(Effect.fail(new Error(`producer timed out after ${acked} acks: ${stderr}`)))
    }, 20_000)
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (line.startsWith("acked ")) acked = Number(line.slice(6))
        if (line.startsWith("taken ")) taken++
        if (line === "done") {
          clearTimeout(timer)
          child.kill("SIGKILL")
          child.once("exit", () => resume(Effect.succeed({ acked, taken })))
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
  it.live(
    "an acknowledged write survives a crash of the process that acknowledged it",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const produced = yield* produceAndCrash(server.url, "crash-test", 20)
        assert.strictEqual(produced.acked, 20)
        assert.strictEqual(produced.taken, 1, "the killed process was in the middle of one write")
        const started = performance.now()

        const rows = new Map<number, string>()
        const consumer = Strategy.layerDurableWriteBehind({
          queue: "crash-test",
          writers: [
            Strategy.durableWriter(Users, {
              set: (name, params) => Effect.sync(() => rows.set(Number(params.id), name))
            })
          ]
        }).pipe(
          Layer.provideMerge(Cachet.layerMemory()),
          Layer.provide(PersistedQueue.layer),
          Layer.provide(
            PersistedQueue.layerStoreRedis({
              lockExpiration: "2 seconds",
              lockRefreshInterval: "500 millis",
              pollInterval: "100 millis"
            })
          ),
          Layer.provide(connected(server.url))
        )
        yield* Effect.gen(function* () {
          // The write the killed process held is released when its lock expires (2 s).
          for (let i = 0; i < 150 && rows.size < 20; i++) yield* sleepReal(100)
        }).pipe(Effect.provide(consumer))
        assert.strictEqual(rows.size, 20)
        assert.isAtLeast(performance.now() - started, 1_000, "the held write came back when its lock expired")
        for (let id = 1; id <= 20; id++) assert.strictEqual(rows.get(id), `name ${id}`)
      }),
    60_000
  )
})
