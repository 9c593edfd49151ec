/**
 * An ioredis client as an Effect service, with bounded defaults.
 *
 * **Details**
 *
 * {@link layer} builds (or adopts) one ioredis client, standalone (`Redis`)
 * or cluster (`Cluster`), and provides it as the {@link IoRedis} service. The
 * same layer also provides effect's generic `Redis` service
 * (`effect/persistence/Redis`) on that client, so effect's Redis-backed
 * modules (rate limiter, circuit-breaker store, persistence) can share it.
 *
 * Defaults of a client built by this module (every call is bounded):
 *
 * - `commandTimeout`: 500 ms. A command without a reply by then fails.
 * - `enableOfflineQueue: false` (top level for a cluster): while there is no
 *   connection, commands fail at once instead of queueing without bound.
 * - `maxRetriesPerRequest: 1` and `autoResendUnfulfilledCommands: false`: a
 *   command that failed with its connection is not replayed later.
 * - `retryStrategy` / `clusterRetryStrategy`: reconnect forever with a capped,
 *   jittered backoff: attempt n waits a random time in [d/2, d], where
 *   d = min(50 ms * 2^n, `maxRetryDelay` (default 250 ms)): a server that
 *   answers again is reconnected within 250 ms.
 * - `connectTimeout`: 2 s, `socketTimeout`: 5 s (a connection that waits
 *   for a reply and receives nothing for that long is dropped and
 *   reconnected, which also catches peers that vanished silently).
 * - `disconnectTimeout`: 200 ms (ioredis keeps its disconnect timer alive its
 *   full length when the socket already closed; we QUIT first).
 * - `enableAutoPipelining: true`: commands issued in the same tick share
 *   one write and one round trip; on a standalone server `MGET` and `GET`
 *   are left out of it (`autoPipeliningIgnoredCommands: ["mget", "get"]`:
 *   the store's reads of a tick are already one `MGET`, or one `GET` when
 *   the tick has one read, and a pipeline of one only costs).
 * - Cluster: `retryDelayOnFailover: 0` and `retryDelayOnClusterDown: 0`: a
 *   command for a master whose connection closed, or refused with
 *   `CLUSTERDOWN`, fails at once instead of being retried until the command
 *   timeout (the store degrades to the loader; a failover takes longer than
 *   one timeout anyway). `MOVED`/`ASK` redirects are still followed.
 * - `lazyConnect: false`, but the layer does not wait for the connection:
 *   it builds at once even when Redis is down, and calls fail fast until the
 *   connection is ready.
 * - The protocol is RESP2: ioredis 5 speaks only RESP2, so replies have one
 *   shape whatever the server's default.
 * - An `error` listener is installed, so connection errors never crash the
 *   process; they are logged as warnings, at most one every 10 seconds.
 *
 * For a cluster, `redisOptions` carry the same per-node settings.
 *
 * This module does not retry failed commands, cache anything, or choose a
 * key layout: see `RedisStore` for the cache store.
 *
 * @since 0.1.0
 */
import { Config, ConfigProvider, Context, Duration, Effect, Layer, Option, Redacted } from "effect"
import { Redis as EffectRedis } from "effect/persistence"
import type { Cluster, Redis, RedisOptions } from "ioredis"
import * as internal from "./internal/client.ts"

/**
 * An ioredis client: a standalone `Redis` or a `Cluster`.
 *
 * @example
 * ```ts
 * import type { IoRedis } from "cachet/redis"
 * const isCluster = (client: IoRedis.Client) => client.isCluster
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Client = Redis | Cluster

/**
 * What the {@link IoRedis} service holds.
 *
 * - `client`: the ioredis client.
 * - `isCluster`: whether it is a `Cluster`.
 * - `commandTimeout`: the command timeout in milliseconds the client was
 *   built with (`undefined` for an adopted client without one).
 *
 * @example
 * ```ts
 * import type { IoRedis } from "cachet/redis"
 * const describe = (s: IoRedis.Service) => `${s.isCluster ? "cluster" : "standalone"}, timeout ${s.commandTimeout} ms`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly client: Client
  readonly isCluster: boolean
  readonly commandTimeout: number | undefined
}

/**
 * The ioredis client service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { IoRedis } from "cachet/redis"
 *
 * const dbSize = Effect.gen(function*() {
 *   const { client } = yield* IoRedis.IoRedis
 *   return yield* Effect.promise(() => client.dbsize())
 * }).pipe(Effect.provide(IoRedis.layer({ url: "redis://localhost:6379" })))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class IoRedis extends Context.Service<IoRedis, Service>()("cachet/redis/IoRedis") {}

/**
 * A cluster seed node: `"host:port"` (`"[::1]:7000"` for IPv6) or
 * `{ host, port }`.
 *
 * @example
 * ```ts
 * import type { IoRedis } from "cachet/redis"
 * const seeds: ReadonlyArray<IoRedis.ClusterNode> = ["10.0.0.1:7000", { host: "10.0.0.2", port: 7000 }]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ClusterNode = internal.ClusterNodeInput

/**
 * Options of a client built by {@link layer}: exactly one of `url` and
 * `cluster`.
 *
 * - `url`: `redis://[user:password@]host:port[/db]` (`rediss://` for TLS).
 * - `cluster`: seed nodes of a Redis Cluster.
 * - `commandTimeout`: default 500 ms.
 * - `connectTimeout`: default 2 s.
 * - `socketTimeout`: default 5 s; see the module notes.
 * - `maxRetryDelay`: cap of the reconnection backoff, default 250 ms (while
 *   down, an attempt at least every 250 ms, jittered).
 * - `redisOptions`: raw ioredis options, applied over the defaults (for a
 *   cluster, to every node). Overriding `enableOfflineQueue` or the timeouts
 *   gives up the bounds above.
 * - `clusterOptions`: raw ioredis cluster options, applied over the defaults.
 * - `reservePool`: pool of the dedicated connections behind effect's
 *   `Redis.reserve`. Default: at most 10, idle ones kept until the layer
 *   closes.
 *
 * @example
 * ```ts
 * import type { IoRedis } from "cachet/redis"
 * const options: IoRedis.Options = { cluster: ["10.0.0.1:7000", "10.0.0.2:7000"], commandTimeout: "250 millis" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends internal.ConnectionOptions {
  readonly reservePool?: EffectRedis.PoolOptions | undefined
}

const redisError = (cause: unknown) => new EffectRedis.RedisError({ cause })

/** `send` on a client: waits for a connection being made (within the command timeout), then sends. */
const sendOn = (client: Client) => {
  const wait = internal.commandTimeoutOf(client) ?? internal.DEFAULT_COMMAND_TIMEOUT
  return <A = unknown>(command: string, ...args: ReadonlyArray<string>) =>
    Effect.tryPromise({
      try: async () => {
        await internal.settleConnecting(client, wait)
        return await (client.call(command, ...args) as Promise<A>)
      },
      catch: redisError
    })
}

/**
 * Effect's generic `Redis` service on `client`:
 * - `send` runs on the shared client;
 * - `subscribe` opens one connection per subscription (offline queue on, no
 *   command timeout, resubscribes after reconnecting), closed with its scope;
 * - `reserve` opens dedicated connections (no command timeout, since they
 *   exist for blocking commands), ready before use.
 */
const makeEffectRedis = (client: Client, context: Context.Context<never>, pool: EffectRedis.PoolOptions | undefined) =>
  EffectRedis.make({
    // Idle reserved connections are kept until the layer closes (at most
    // `maxConnections`): an idle-expiry loop would also spin through every
    // period when a TestClock jumps ahead.
    pool: { idleTimeout: Duration.infinity, ...pool },
    send: sendOn(client),
    subscribe: (channel, onMessage) =>
      Effect.gen(function* () {
        const subscriber = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const connection = internal.duplicate(
              client,
              {
                enableOfflineQueue: true,
                commandTimeout: undefined,
                maxRetriesPerRequest: null,
                autoResubscribe: true
              },
              { enableOfflineQueue: true }
            )
            const stopErrors = internal.listenErrors(connection, context, "Redis subscriber")
            return { connection, stopErrors }
          }),
          ({ connection, stopErrors }) =>
            Effect.promise(() => internal.closeClient(connection, internal.CLOSE_GRACE)).pipe(
              Effect.ensuring(Effect.sync(stopErrors))
            )
        )
        const connection = subscriber.connection
        connection.on("message", (channel_: string, message: string) => {
          if (channel_ === channel) onMessage({ channel, message })
        })
        // Handled at once (no unhandled rejection): resolves to the refusal, if any.
        const refused = connection.subscribe(channel).then(
          () => undefined,
          (cause: unknown) => ({ cause })
        )
        // The subscription lives until its scope closes; it fails only when
        // SUBSCRIBE is refused or the connection ends for good.
        return Effect.callback<void, EffectRedis.RedisError>((resume) => {
          let active = true
          const onEnd = () => resume(Effect.fail(redisError(new Error("Redis subscriber connection ended"))))
          connection.once("end", onEnd)
          void refused.then((refusal) => {
            if (active && refusal !== undefined) resume(Effect.fail(redisError(refusal.cause)))
          })
          return Effect.sync(() => {
            active = false
            connection.off("end", onEnd)
          })
        })
      }),
    connect: Effect.suspend(() => {
      const connection = internal.duplicate(client, { commandTimeout: undefined }, {})
      const stopErrors = internal.listenErrors(connection, context, "Redis reserved")
      const close = Effect.promise(() => internal.closeClient(connection, internal.CLOSE_GRACE)).pipe(
        Effect.ensuring(Effect.sync(stopErrors))
      )
      const timeout =
        (internal.isCluster(connection)
          ? connection.options.redisOptions?.connectTimeout
          : connection.options.connectTimeout) ?? internal.DEFAULT_CONNECT_TIMEOUT
      return Effect.tryPromise({
        try: () => internal.whenReady(connection, timeout),
        catch: redisError
      }).pipe(
        Effect.onError(() => close),
        Effect.as({ send: sendOn(connection), close })
      )
    })
  })

/** Builds the services on a client; `owned` clients are closed with the scope. */
const makeContext = Effect.fnUntraced(function* (
  client: Client,
  owned: boolean,
  commandTimeout: number | undefined,
  pool: EffectRedis.PoolOptions | undefined
) {
  const context = yield* Effect.context<never>()
  yield* internal.attach(client, owned)
  const redis = yield* makeEffectRedis(client, context, pool)
  const service = IoRedis.of({ client, isCluster: internal.isCluster(client), commandTimeout })
  return Context.make(IoRedis, service).pipe(Context.add(EffectRedis.Redis, redis))
})

/**
 * The {@link IoRedis} service and effect's generic `Redis` service, on one
 * ioredis client.
 *
 * **Details**
 *
 * - Given {@link Options}, the layer builds the client with the bounded
 *   defaults of the module notes, does not wait for it to connect, and
 *   closes it when the layer closes (QUIT, bounded by 1 s, then disconnect).
 * - Given a client, the layer adopts it as it is: its options are not
 *   changed and it is **not** closed when the layer closes (its owner closes
 *   it). The layer only adds an `error` listener for its lifetime.
 *
 * Connections opened for effect's `Redis.subscribe` and `Redis.reserve` are
 * closed with their scopes, and all of them when the layer closes.
 *
 * **Gotchas**
 *
 * Invalid options (both or neither of `url` and `cluster`, a bad duration, a
 * malformed node) throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet } from "cachet"
 * import { IoRedis, RedisStore } from "cachet/redis"
 *
 * const RedisLive = IoRedis.layer({ url: "redis://localhost:6379", commandTimeout: "250 millis" })
 * const CacheLive = Cachet.layer().pipe(
 *   Layer.provide(RedisStore.layerClient({ prefix: "myapp" })),
 *   Layer.provide(RedisLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options | Client): Layer.Layer<IoRedis | EffectRedis.Redis> => {
  if (internal.isClient(options)) {
    const client = options
    return Layer.effectContext(
      Effect.suspend(() => makeContext(client, false, internal.commandTimeoutOf(client), undefined))
    )
  }
  // Validated now, so that bad options throw at the call; the client is
  // created when the layer is built.
  const plan = internal.planClient(options)
  return Layer.effectContext(
    Effect.suspend(() => makeContext(plan.create(), true, plan.commandTimeout, options.reservePool))
  )
}

/**
 * The options read by {@link layerConfig}, from the `ConfigProvider`:
 *
 * - `REDIS_URL`: a standalone server, or
 * - `REDIS_CLUSTER_NODES`: comma-separated `host:port` seed nodes.
 *   Exactly one of the two must be set.
 * - `REDIS_USERNAME`, `REDIS_PASSWORD` (optional): credentials, for a
 *   cluster or to override the URL's.
 * - `REDIS_COMMAND_TIMEOUT` (optional): a duration such as `"500 millis"`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { IoRedis } from "cachet/redis"
 * const options = Effect.map(IoRedis.config, (o) => o.url ?? o.cluster?.join(","))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  url: Config.option(Config.NonEmptyString("REDIS_URL")),
  nodes: Config.option(Config.NonEmptyString("REDIS_CLUSTER_NODES")),
  username: Config.option(Config.NonEmptyString("REDIS_USERNAME")),
  password: Config.option(Config.Redacted("REDIS_PASSWORD")),
  commandTimeout: Config.option(Config.Duration("REDIS_COMMAND_TIMEOUT"))
}).pipe(
  Config.flatMap((raw): Config.Config<Options> => {
    const url = Option.getOrUndefined(raw.url)
    const nodes = Option.getOrUndefined(raw.nodes)
    if ((url === undefined) === (nodes === undefined)) {
      return Config.fail(
        new ConfigProvider.SourceError({ message: "set exactly one of REDIS_URL and REDIS_CLUSTER_NODES" })
      )
    }
    let cluster: Array<{ host: string; port: number }> | undefined
    if (nodes !== undefined) {
      try {
        cluster = nodes
          .split(",")
          .filter((s) => s.trim() !== "")
          .map(internal.parseNode)
      } catch (error) {
        return Config.fail(
          new ConfigProvider.SourceError({ message: `REDIS_CLUSTER_NODES: ${(error as Error).message}` })
        )
      }
      if (cluster.length === 0) {
        return Config.fail(new ConfigProvider.SourceError({ message: "REDIS_CLUSTER_NODES lists no node" }))
      }
    }
    const credentials: RedisOptions = {
      ...(Option.isSome(raw.username) ? { username: raw.username.value } : {}),
      ...(Option.isSome(raw.password) ? { password: Redacted.value(raw.password.value) } : {})
    }
    return Config.succeed<Options>({
      ...(url !== undefined ? { url } : { cluster }),
      ...(Option.isSome(raw.commandTimeout) ? { commandTimeout: raw.commandTimeout.value } : {}),
      ...(Object.keys(credentials).length > 0 ? { redisOptions: credentials } : {})
    })
  })
)

/**
 * {@link layer} with its options read from configuration (see
 * {@link config}); `overrides` apply on top.
 *
 * @example
 * ```ts
 * import { IoRedis } from "cachet/redis"
 * // REDIS_URL=redis://cache:6379 or REDIS_CLUSTER_NODES=10.0.0.1:7000,10.0.0.2:7000
 * const RedisLive = IoRedis.layerConfig()
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  overrides?: Omit<Options, "url" | "cluster">
): Layer.Layer<IoRedis | EffectRedis.Redis, Config.ConfigError> =>
  Layer.unwrap(
    Effect.map(config, (options) =>
      layer({
        ...options,
        ...overrides,
        redisOptions: { ...options.redisOptions, ...overrides?.redisOptions }
      })
    )
  )
