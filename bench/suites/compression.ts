/**
 * RedisStore's `compress` option, on our own redis-server: what compression
 * costs and saves for a 1 KB and a 100 KB value. One operation is a
 * `Cachet.set` then a `Cachet.get` of one key (encode + compress + write,
 * read + inflate + decode), sequential, so the figure is the round trip of
 * one value, not throughput under load. Stored bytes (STRLEN) per codec are
 * in the notes.
 *
 * Loopback: the network is nearly free here, so this shows the CPU side of
 * the trade; on a real network, fewer bytes also mean less transfer time.
 */
import { Effect, Layer, ManagedRuntime, Schema } from "effect"
import { Cachet, Keyspace } from "../../src/index.ts"
import { makeUser, User } from "../lib/fixtures.ts"
import { type Contender, runThroughput, timeSequentialAsync } from "../lib/measure.ts"
import { redisUnavailable, startRedis } from "../lib/redis.ts"
import { type ScenarioResult, skippedScenarios, throughputColumns } from "../lib/report.ts"
import type { Suite, SuiteOptions } from "../lib/suite.ts"

const Docs = Keyspace.make({ name: "doc", key: "{id}", value: Schema.Array(User), ttl: "1 hour" })

/** Sizes: a list of 1 user (~1 KB of JSON) and of 100 users (~100 KB). */
const sizes = [
  { id: "redis-compress-1k", label: "1 KB", users: 1, perBatch: 200 },
  { id: "redis-compress-100k", label: "100 KB", users: 100, perBatch: 20 }
] as const

type Codec = "brotli" | "gzip" | "zstd"
const codecs: ReadonlyArray<Codec | undefined> = [undefined, "brotli", "gzip", "zstd"]

const runCompression = async (options: SuiteOptions): Promise<Array<ScenarioResult>> => {
  const unavailable = redisUnavailable()
  if (unavailable !== undefined)
    return skippedScenarios(
      sizes.map((s) => s.id),
      unavailable
    )
  const redis = await startRedis()
  const { RedisStore } = await import("../../src/redis/index.ts")
  const strlen = async (key: string) => Number(await Effect.runPromise(redis.server.command("STRLEN", key)))
  const runtimes: Array<ManagedRuntime.ManagedRuntime<Cachet.Cachet, never>> = []
  try {
    const results: Array<ScenarioResult> = []
    for (const size of sizes) {
      const value = Array.from({ length: size.users }, (_, i) => makeUser(i))
      const jsonBytes = Buffer.byteLength(JSON.stringify(value))
      const contenders: Array<Contender> = []
      const stored: Array<string> = []
      for (const codec of codecs) {
        const prefix = `c-${codec ?? "plain"}`
        const runtime = ManagedRuntime.make(
          Cachet.layer().pipe(
            Layer.provide(
              RedisStore.layer({
                url: redis.url,
                prefix,
                ...(codec === undefined ? {} : { compress: { codec, minBytes: 512 } })
              })
            )
          )
        )
        runtimes.push(runtime)
        const run = Effect.runPromiseWith(await runtime.context())
        const op = (i: number) =>
          run(
            Effect.andThen(
              Cachet.set(Docs, { id: i % 50 }, value, { onStoreError: "fail" }),
              Cachet.get(Docs, { id: i % 50 })
            )
          )
        await op(0)
        stored.push(`${codec ?? "plain JSON"} ${(await strlen(`${prefix}:doc:0`)).toLocaleString("en")} B`)
        contenders.push({
          name: codec === undefined ? "cachet, no compression" : `cachet, compress ${codec}`,
          batch: () => timeSequentialAsync(size.perBatch, op)
        })
      }
      const rows = await runThroughput(size.id, contenders, options)
      results.push({
        id: size.id,
        title: `Redis set + get of one ${size.label} value, with and without compress`,
        workload: `one value of ${jsonBytes.toLocaleString("en")} bytes of JSON (${size.users} user record(s)); one op = Cachet.set then Cachet.get of one of 50 keys, sequential; ${size.perBatch} per batch`,
        columns: throughputColumns,
        rows,
        ratioOf: "ops",
        baseline: "cachet, no compression",
        notes: [
          `stored bytes (STRLEN, envelope included): ${stored.join(", ")}`,
          "brotli quality 4, gzip level 6, zstd level 3 (the defaults); minBytes 512; loopback, so the network saves nothing here"
        ]
      })
    }
    return results
  } finally {
    for (const runtime of runtimes) await runtime.dispose().catch(() => undefined)
    await redis.close()
  }
}

export const compressionSuite: Suite = {
  id: "compression",
  title: "Redis compression (own redis-server)",
  run: runCompression
}
