/**
 * Our own throwaway redis-server for the Redis scenarios and the soak run, on
 * an ephemeral loopback port with persistence off (the test harness's
 * `RedisServer`). Never the machine's Redis.
 */
import { Effect, Exit, Layer, ManagedRuntime, Scope } from "effect"
import { type RedisServer, RedisServer as RedisServerHarness, redisAvailable } from "../../test/harness/redis.ts"

export interface OwnRedis {
  readonly server: RedisServer
  readonly url: string
  readonly host: string
  readonly port: number
  /** SIGKILL the server (a crash). */
  readonly kill: () => Promise<void>
  /** Start it again on the same port (empty dataset). */
  readonly restart: () => Promise<void>
  /** Stop it and remove its data dir. */
  readonly close: () => Promise<void>
}

/** Why Redis scenarios cannot run here, if they cannot. */
export const redisUnavailable = (): string | undefined =>
  redisAvailable ? undefined : "redis-server/redis-cli not on PATH"

export const startRedis = async (): Promise<OwnRedis> => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.provide(RedisServerHarness.start({ stopGraceMs: 1_000 }), scope))
  return {
    server,
    url: server.url,
    host: server.host,
    port: server.port,
    kill: () => Effect.runPromise(server.kill),
    restart: () => Effect.runPromise(server.restart),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** What a cachet checkout exports that `cachetOverRedis` uses (its `src/index.ts` and `src/redis/index.ts`, of this checkout or another's). */
export interface CachetModules {
  readonly Cachet: typeof import("../../src/index.ts").Cachet
  readonly Strategy: typeof import("../../src/index.ts").Strategy
  readonly RedisStore: typeof import("../../src/redis/index.ts").RedisStore
}

/**
 * A cachet runtime over a `RedisStore` with `options`, every user written
 * into `keyspace` (failing on a store error), and the cache-aside read of
 * one user by id, as the Redis A/B tools time it (the loader effect and the
 * parameters built per call).
 */
export const cachetOverRedis = async <U extends { readonly id: number }>(
  { Cachet, Strategy, RedisStore }: CachetModules,
  options: Parameters<CachetModules["RedisStore"]["layer"]>[0],
  keyspace: any,
  users: ReadonlyArray<U>
) => {
  const runtime = ManagedRuntime.make(Cachet.layer().pipe(Layer.provide(RedisStore.layer(options))))
  const run: <A, E>(effect: Effect.Effect<A, E, any>) => Promise<A> = Effect.runPromiseWith(await runtime.context())
  await run(
    Effect.forEach(users, (u) => Cachet.set(keyspace, { id: u.id }, u, { onStoreError: "fail" }), { discard: true })
  )
  const read = (id: number): Effect.Effect<U, unknown, any> =>
    Effect.sync(() => users[id]!).pipe(Strategy.cacheAside(keyspace, { id })) as any
  return { run, read, close: () => runtime.dispose() }
}
