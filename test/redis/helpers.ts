/**
 * Shared fixtures of the Redis suites: harness servers started once per file
 * (in `beforeAll`, torn down in `afterAll`), and small real-time helpers.
 *
 * The harness servers are the only Redis these tests talk to.
 */
import { afterAll, beforeAll } from "@effect/vitest"
import { Effect, Exit, Result, Scope } from "effect"
import { Redis } from "ioredis"
import type { EntryCodec } from "../../src/CacheStore.ts"
import {
  type RedisCluster,
  RedisCluster as RedisClusterHarness,
  type RedisClusterOptions,
  type RedisServer,
  RedisServer as RedisServerHarness,
  type RedisServerOptions
} from "../harness/redis.ts"

/** A resource started in `beforeAll` and released in `afterAll`. */
const shared = <A>(start: Effect.Effect<A, unknown, Scope.Scope>, timeout = 60_000): { readonly get: () => A } => {
  let value: A | undefined
  let scope: Scope.Closeable | undefined
  beforeAll(async () => {
    scope = Effect.runSync(Scope.make())
    value = await Effect.runPromise(Scope.provide(start, scope))
  }, timeout)
  afterAll(async () => {
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
  }, timeout)
  return {
    get: () => {
      if (value === undefined) throw new Error("shared fixture used before beforeAll")
      return value
    }
  }
}

/** One harness redis-server for the whole file. */
export const sharedServer = (options?: RedisServerOptions) => shared<RedisServer>(RedisServerHarness.start(options))

/** One harness Redis Cluster (3 masters) for the whole file. */
export const sharedCluster = (options?: RedisClusterOptions) => shared<RedisCluster>(RedisClusterHarness.start(options))

/** Sleeps on a real timer (tests that need real time run under `it.live`). */
export const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const handle = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(handle))
  })

/** Polls `check` (real time) until it returns true; fails after `timeoutMs`. */
export const eventually = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  timeoutMs: number,
  what: string,
  intervalMs = 25
): Effect.Effect<number, E | Error, R> =>
  Effect.gen(function* () {
    const started = performance.now()
    while (true) {
      if (yield* check) return performance.now() - started
      if (performance.now() - started > timeoutMs)
        return yield* Effect.fail(new Error(`not within ${timeoutMs} ms: ${what}`))
      yield* sleepReal(intervalMs)
    }
  })

/** A raw ioredis client (tests only: writes corrupt bytes, reads layouts), closed with the scope. */
export const rawClient = (port: number): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 1 })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.quit().catch(() => "OK"))
  )

/** Number of client connections the server reports (the redis-cli asking counts as one). */
export const clientCount = (server: { readonly command: RedisServer["command"] }) =>
  Effect.map(server.command("CLIENT", "LIST"), (out) => out.split("\n").filter((l) => l.trim() !== "").length)

/** A unique suffix per test run. */
export const runId = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`

/** A codec that stores values as they are (store-level tests). */
export const codecOf = (keyspace: string): EntryCodec => ({
  keyspace,
  encode: (v) => Result.succeed(v),
  decode: (d) => Result.succeed(d),
  onCorrupt: () => {}
})
