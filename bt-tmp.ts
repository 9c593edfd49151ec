import { Effect, Layer, Schema, Scope, Exit } from "effect"
import * as Cachet from "./src/Cachet.ts"
import * as Keyspace from "./src/Keyspace.ts"
import * as RedisStore from "./src/redis/RedisStore.ts"
import * as Strategy from "./src/Strategy.ts"
import { RedisServer } from "./test/harness/redis.ts"
const Plain = Keyspace.make({ name: "p", key: "{id}", value: Schema.Number, ttl: "1 minute" })
const scope = Effect.runSync(Scope.make())
const server = await Effect.runPromise(Scope.provide(RedisServer.start(), scope))
const calls = async () => Object.fromEntries([...(await Effect.runPromise(server.command("INFO", "commandstats"))).matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)].map((m) => [m[1], Number(m[2])]))
for (const breaker of [undefined, false] as const) {
  const ctx = await Effect.runPromise(Scope.provide(Layer.build(Cachet.layer().pipe(Layer.provide(RedisStore.layer({ url: server.url, prefix: `x${breaker}`, ...(breaker === false ? { breaker: false } : {}) })))), scope))
  const run = <A, E>(e: Effect.Effect<A, E, Cachet.Cachet>) => Effect.runPromise(Effect.provide(e, ctx))
  await run(Effect.forEach(Array.from({ length: 1000 }, (_, i) => i), (id) => Cachet.set(Plain, { id }, id), { concurrency: 50 }))
  const b = await calls()
  const t0 = performance.now()
  await run(Effect.forEach(Array.from({ length: 20000 }, (_, i) => i % 1000), (id) => Effect.succeed(id).pipe(Strategy.cacheAside(Plain, { id })), { concurrency: 100, discard: true }))
  const ms = performance.now() - t0
  const a = await calls()
  console.log(`breaker ${breaker}`, Math.round(20000 / ms * 1000), "ops/s", "get", (a.get ?? 0) - (b.get ?? 0), "mget", (a.mget ?? 0) - (b.mget ?? 0))
}
await Effect.runPromise(Scope.close(scope, Exit.void))
