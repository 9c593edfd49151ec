import { CacheStore, Cachet, Keyspace, Strategy } from "cachet"
import { Effect, Layer, Schema } from "effect"

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String, orgId: Schema.Number }) {}

// What is cached: a typed keyspace.
const Users = Keyspace.make({
  name: "user",
  key: "{id}", // params inferred: { id: string | number }; stored as user:1 (the name namespaces it)
  value: User,
  ttl: "5 minutes",
  staleFor: "1 hour",
  tags: (_params, user) => ["users", `org:${user.orgId}`]
})

// Your loader (a database call, an HTTP request...).
const findUser = (id: number) => Effect.succeed(new User({ id, name: "Ada", orgId: 7 })).pipe(Effect.delay("50 millis"))

// How it is cached: a strategy, as a combinator. Adds only Cachet to R.
const getUser = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))

const program = Effect.gen(function* () {
  const first = yield* getUser(1) // miss: runs the loader, stores the value
  const second = yield* getUser(1) // hit: from the cache
  yield* Cachet.invalidateTag("org:7") // every entry tagged org:7 is gone
  const stats = yield* Cachet.stats
  console.log(first.name, second.name, `hits=${stats.hits} misses=${stats.misses}`)
})

// Where: pick a store with a Layer. Swap it for Redis without touching getUser.
const CacheLive = Cachet.layer().pipe(Layer.provide(CacheStore.layerMemory({ capacity: 10_000 })))

Effect.runPromise(program.pipe(Effect.provide(CacheLive)))
