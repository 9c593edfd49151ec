import { Cachet, Keyspace } from "cachet"
import { RedisStore } from "cachet/redis"
import { Effect, Layer, Option, Schema } from "effect"

const Pages = Keyspace.make({
  name: "page",
  key: "{slug}",
  value: Schema.Struct({ html: Schema.String }),
  ttl: "10 minutes"
})

// Values whose JSON is 1 KB or more are stored brotli-compressed; smaller ones as JSON.
// Every store reads both forms, so compression can be turned on (or off) without a flush.
const CacheLive = Cachet.layer().pipe(
  Layer.provide(
    RedisStore.layer({
      url: process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379",
      prefix: "readme",
      compress: { minBytes: 1024, codec: "brotli" }
    })
  )
)

const page = { html: "<li>cached</li>".repeat(5_000) } // 75 KB of JSON
const program = Effect.gen(function* () {
  yield* Cachet.set(Pages, { slug: "home" }, page)
  const read = yield* Cachet.get(Pages, { slug: "home" })
  const stats = yield* Cachet.stats
  console.log(
    `read back: ${Option.isSome(read) && read.value.html === page.html}, decode errors: ${stats.decodeErrors}`
  )
})

Effect.runPromise(program.pipe(Effect.provide(CacheLive)))
