/**
 * `npm run demo`: a narrated run of cachet on the embedded in-memory store
 * (or on Redis when REDIS_URL is set). It uses real time on purpose: the point
 * is to see the milliseconds.
 */
import { Console, Duration, Effect, Layer, Schema } from "effect"
import * as CacheStore from "../src/CacheStore.ts"
import * as Cachet from "../src/Cachet.ts"
import * as Keyspace from "../src/Keyspace.ts"
import * as RedisStore from "../src/redis/RedisStore.ts"
import * as Strategy from "../src/Strategy.ts"
import * as ChaosStore from "../src/testing/ChaosStore.ts"

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String, orgId: Schema.Number }) {}

const Users = Keyspace.make({
  name: "user",
  key: "user:{id}",
  value: User,
  ttl: "5 minutes",
  staleFor: "1 hour",
  tags: (_params, user) => ["users", `org:${user.orgId}`]
})

// A "database" whose every query takes 200 ms and is counted.
let queries = 0
const findUser = (id: number) =>
  Effect.sleep("200 millis").pipe(
    Effect.map(() => {
      queries++
      return new User({ id, name: ["Ada", "Grace", "Edsger", "Barbara"][id % 4]!, orgId: id % 2 === 0 ? 7 : 8 })
    })
  )
const getUser = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([d, a]) => [Duration.toMillis(d), a] as const)
const ms = (n: number) => `${n < 1 ? n.toFixed(3) : n.toFixed(1)} ms`

const program = Effect.gen(function* () {
  const runtime = yield* Cachet.Cachet
  const chaos = yield* ChaosStore.ChaosControl
  yield* Console.log(`cachet demo on the ${runtime.store.name} store\n`)

  yield* Console.log("1. A slow loader (200 ms), missed then hit")
  const [miss] = yield* timed(getUser(1))
  const [hit, ada] = yield* timed(getUser(1))
  yield* Console.log(
    `   miss: ${ms(miss)}   hit: ${ms(hit)}   (${ada.name}; ${Math.round(miss / Math.max(hit, 0.001))}x faster)\n`
  )

  yield* Console.log("2. A stampede: 100 callers miss the same key at once")
  const before = queries
  const [stampede, users] = yield* timed(
    Effect.all(
      Array.from({ length: 100 }, () => getUser(2)),
      { concurrency: "unbounded" }
    )
  )
  yield* Console.log(`   ${users.length} answers in ${ms(stampede)}, loader ran ${queries - before} time(s)\n`)

  yield* Console.log("3. Invalidation by tag")
  yield* Effect.forEach([3, 4, 5, 6], getUser, { concurrency: "unbounded" })
  yield* Effect.sleep("2 millis")
  yield* Cachet.invalidateTag("org:7")
  const q = queries
  const [reload] = yield* timed(Effect.forEach([2, 3, 4, 5, 6], getUser, { concurrency: "unbounded" }))
  yield* Console.log(
    `   invalidated org:7; reading users 2-6 reloaded ${queries - q} (the org 7 ones: 2, 4, 6) in ${ms(reload)}\n`
  )

  yield* Console.log("4. The store fails: degrade mode answers from the loader")
  yield* chaos.set({ failRate: 1 })
  const outage = yield* Effect.exit(Effect.all([getUser(1), getUser(3)]))
  const failed = yield* chaos.injected
  yield* chaos.set({ failRate: 0 })
  yield* Console.log(
    `   ${failed} store calls failed; the requests ${outage._tag === "Success" ? "all succeeded (served by the loader)" : "failed"}\n`
  )

  yield* Console.log("5. Stats")
  const stats = yield* Cachet.stats
  const rows = [
    ["", "hits", "misses", "stale", "loads", "sets", "errors", "hit rate"],
    ...Object.entries(stats.keyspaces).map(([name, s]) => [
      name,
      s.hits,
      s.misses,
      s.staleHits,
      s.loads,
      s.sets,
      s.errors,
      `${(s.hitRate * 100).toFixed(1)}%`
    ]),
    [
      "total",
      stats.hits,
      stats.misses,
      stats.staleHits,
      stats.loads,
      stats.sets,
      stats.errors,
      `${(stats.hitRate * 100).toFixed(1)}%`
    ]
  ].map((r) => r.map(String))
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  for (const r of rows)
    yield* Console.log(`   ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")}`)
  yield* Console.log(
    `\n   store: ${stats.store ? `${stats.store.entries} entries, ${stats.store.evictions} evictions` : "no size figures"}`
  )
})

// The embedded store by default; Redis when REDIS_URL is set. Nothing else changes.
const redisUrl = process.env.REDIS_URL
const storeLayer: Layer.Layer<CacheStore.CacheStore> = redisUrl
  ? RedisStore.layer({ url: redisUrl, prefix: `cachet-demo-${process.pid}` })
  : CacheStore.layerMemory({ capacity: 10_000 })

const cleanup = redisUrl ? Effect.ignore(Cachet.invalidateKeyspace(Users)) : Effect.void

const main = Effect.ensuring(program, cleanup).pipe(
  Effect.provide(Cachet.layer().pipe(Layer.provideMerge(ChaosStore.layer()), Layer.provide(storeLayer)))
)

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
