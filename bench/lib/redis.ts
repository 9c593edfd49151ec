/**
 * Our own throwaway redis-server for the Redis scenarios and the soak run, on
 * an ephemeral loopback port with persistence off (the test harness's
 * `RedisServer`). Never the machine's Redis.
 */
import { Effect, Exit, Scope } from "effect"
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
