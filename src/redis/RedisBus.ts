/**
 * An invalidation bus on Redis pub/sub: how the processes that share a cache
 * tell each other which keys changed, so that each drops its in-process copy
 * (the L1 of a `TieredStore`).
 *
 * **The failure it handles**
 *
 * Ten instances each keep a hot copy of `user:7` in memory. One of them
 * updates it in Redis: without a bus, the other nine serve the old value
 * until their copy expires.
 *
 * **Details**
 *
 * - Every set, delete, tag invalidation and keyspace clear is published as
 *   one small JSON message, **keys only, never values**, on the channel
 *   `<P>:~bus` (`P` the percent-escaped prefix, as in `RedisStore`'s key
 *   layout), through the shared client. Each instance listens on a dedicated
 *   subscriber connection (a duplicate of the client, named `cachet-bus`).
 * - Each bus instance has a random id and numbers what it publishes (1, 2,
 *   ...). Instances ignore their own messages, and a receiver that sees a
 *   sender's number jump knows it missed messages: it counts them (`gaps`,
 *   `missed`) and tells its listeners to drop everything they hold.
 * - Redis pub/sub is at-most-once: a subscriber that reconnects has lost what
 *   was published meanwhile. So whenever the subscription is confirmed (at
 *   start and after every reconnection) listeners are told to drop
 *   everything.
 * - A malformed message (not JSON, wrong shape or version) is dropped and
 *   counted (`malformed`); the subscriber keeps running.
 * - Publishing while Redis is unreachable puts the message in a bounded
 *   retry queue (`retryQueueSize`, default 1,000), retried every
 *   `retryInterval` (default 250 ms). A full queue collapses into a single
 *   "clear" message (receivers drop everything), which also absorbs what is
 *   published until it is sent. Order does not matter: every message only
 *   removes or raises.
 * - On a Redis Cluster, messages go through the master of the channel's hash
 *   slot (classic pub/sub reaches every node's subscribers), so one sender's
 *   messages keep their order.
 *
 * Wire format:
 *
 * ```text
 * {"v":1,"i":"<instance>","s":<seq>,"t":"set","k":["<keyspace>:<key>",...]}
 * {"v":1,"i":"<instance>","s":<seq>,"t":"del","k":[...]}
 * {"v":1,"i":"<instance>","s":<seq>,"t":"tag","g":[["<tag>",<time>,<retainMillis>],...]}
 * {"v":1,"i":"<instance>","s":<seq>,"t":"pfx","p":"<keyspace>:"}
 * {"v":1,"i":"<instance>","s":<seq>,"t":"pat","p":"<keyspace>:","m":"<glob over the key>"}
 * {"v":1,"i":"<instance>","s":<seq>,"t":"clr"}
 * ```
 *
 * A `pat` message (`Cachet.invalidatePattern`) tells listeners to drop the
 * keys under the prefix whose unescaped key matches the glob. Instances of a
 * cachet version before it drop such a message as malformed (counted in
 * `malformed`): during a rolling upgrade their L1 copies then live at most
 * `l1MaxTtl`. A listener that cannot parse the glob drops the whole prefix.
 *
 * This module does not keep anything itself and does not decide what a
 * message means: `TieredStore` does. It does not deliver exactly once (nobody
 * can on pub/sub): it detects loss and lets listeners fall back to a clean
 * state.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope } from "effect"
import * as IoRedis from "./IoRedis.ts"
import * as internal from "./internal/bus.ts"
import { connection } from "./internal/io.ts"

/**
 * A bus message: keys (store keys, `<keyspace>:<key>`), tags or a prefix,
 * never values.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "cachet/redis"
 * const message: RedisBus.Message = { _tag: "Delete", keys: ["user:7"] }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Message = internal.Message

/**
 * Why listeners must drop everything they learnt from the bus: the
 * subscription was (re)confirmed, or a sender's sequence jumped.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "cachet/redis"
 * const reason: RedisBus.ResetReason = "gap"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ResetReason = internal.ResetReason

/**
 * What a listener is told, synchronously, on the subscriber's event loop
 * turn. A listener that throws is logged; the subscriber keeps running.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "cachet/redis"
 * const local = new Map<string, unknown>()
 * const listener: RedisBus.Listener = {
 *   onMessage: (m) => { if (m._tag === "Set" || m._tag === "Delete") m.keys.forEach((k) => local.delete(k)) },
 *   onReset: () => local.clear()
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Listener = internal.Listener

/**
 * The bus's counters.
 *
 * - `published`, `publishFailures`: PUBLISH calls that succeeded / failed.
 * - `queued`: messages waiting in the retry queue; `collapsed`: times the
 *   full queue collapsed into one "clear".
 * - `received`: messages from other instances; `ownIgnored`: our own.
 * - `malformed`: messages dropped as unreadable.
 * - `gaps`: sequence jumps seen; `missed`: messages they skipped.
 * - `subscriptions`: subscriptions confirmed (1 + reconnections);
 *   `subscribed`: whether the subscriber is subscribed now.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "cachet/redis"
 * const healthy = (s: RedisBus.BusStats) => s.subscribed && s.queued === 0
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type BusStats = internal.BusStats

/**
 * Options of the bus.
 *
 * - `prefix`: the namespace, as the store's prefix (required). The channel
 *   is `<escaped prefix>:~bus`.
 * - `channel`: use this channel name instead.
 * - `retryQueueSize`: messages kept for retry while Redis is unreachable
 *   before the queue collapses into one "clear". Default 1,000.
 * - `retryInterval`: pause between retries of the queue. Default 250 ms.
 * - `commandTimeout`: bound of each PUBLISH. Default: the client's, else
 *   500 ms.
 * - `maxKeysPerMessage`: larger key sets are split. Default 500.
 *
 * @example
 * ```ts
 * import type { RedisBus } from "cachet/redis"
 * const options: RedisBus.Options = { prefix: "myapp", retryQueueSize: 10_000 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends internal.Options {}

/**
 * Options of {@link layer}: the bus's {@link Options} and where Redis is, as
 * exactly one of `url`, `cluster` and `client` (see `IoRedis.Options`).
 *
 * @example
 * ```ts
 * import type { RedisBus } from "cachet/redis"
 * const options: RedisBus.LayerOptions = { url: "redis://localhost:6379", prefix: "myapp" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends Options, Omit<IoRedis.Options, "commandTimeout" | "reservePool"> {
  readonly client?: IoRedis.Client | undefined
}

/**
 * The bus service.
 *
 * - `instanceId`: this instance's random id (on every message it sends).
 * - `channel`: the channel name.
 * - `publish`: publishes a message; never fails (on failure it is queued).
 * - `listen`: registers a listener for the scope's lifetime.
 * - `stats`: the counters.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisBus } from "cachet/redis"
 *
 * const announce = Effect.gen(function*() {
 *   const bus = yield* RedisBus.RedisBus
 *   yield* bus.publish({ _tag: "Delete", keys: ["user:user:7"] })
 * })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class RedisBus extends Context.Service<RedisBus, internal.BusService>()("cachet/redis/RedisBus") {}

/**
 * The channel of a prefix: `<escaped prefix>:~bus`.
 *
 * @example
 * ```ts
 * import { RedisBus } from "cachet/redis"
 * RedisBus.channelOf("myapp") // "myapp:~bus"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const channelOf: (prefix: string) => string = internal.channelOf

/**
 * Builds a bus on the `IoRedis` client in context; its subscriber connection
 * lives in the current scope.
 *
 * **Gotchas**
 *
 * Invalid options throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { IoRedis, RedisBus } from "cachet/redis"
 *
 * const program = Effect.gen(function*() {
 *   const bus = yield* RedisBus.make({ prefix: "myapp" })
 *   yield* bus.publish({ _tag: "Clear" })
 * }).pipe(Effect.scoped, Effect.provide(IoRedis.layer({ url: "redis://localhost:6379" })))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<RedisBus["Service"], never, IoRedis.IoRedis | Scope.Scope> => {
  const resolved = internal.resolve(options)
  return Effect.flatMap(Effect.service(IoRedis.IoRedis), (io) => internal.make(io, resolved))
}

/**
 * The bus as a layer, on the `IoRedis` client in context.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { IoRedis, RedisBus } from "cachet/redis"
 *
 * const BusLive = RedisBus.layerClient({ prefix: "myapp" }).pipe(
 *   Layer.provide(IoRedis.layer({ url: "redis://localhost:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (options: Options): Layer.Layer<RedisBus, never, IoRedis.IoRedis> =>
  Layer.effect(RedisBus, make(options))

/**
 * The bus as a layer with its own connection (from `url` or `cluster`,
 * closed with the layer; or a `client` you own, left open).
 *
 * @example
 * ```ts
 * import { RedisBus } from "cachet/redis"
 * const BusLive = RedisBus.layer({ url: "redis://localhost:6379", prefix: "myapp" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: LayerOptions): Layer.Layer<RedisBus> => {
  const { rest, io } = connection("RedisBus.layer", options)
  const resolved = internal.resolve(rest)
  return Layer.effect(
    RedisBus,
    Effect.flatMap(io, (service) => internal.make(service, resolved))
  )
}
