/**
 * A two-tier `CacheStore` for many instances sharing one cache: an L1 in each
 * process (the memory store's speed, decoded values) over a shared L2 (Redis
 * by default, or any `CacheStore` layer), kept coherent by an invalidation
 * bus (`RedisBus`).
 *
 * **The failure it handles**
 *
 * A service runs on ten instances behind a load balancer. With only Redis,
 * every hit is a network round trip; with only a memory store, each instance
 * has its own cache, and a write on one leaves the nine others serving the old
 * value until it expires.
 *
 * **Details**
 *
 * - Read: L1, then L2; an L2 hit is copied into the L1 with the entry's
 *   remaining time (its timeline is never changed), unless the key was
 *   invalidated while the L2 read was in flight.
 * - Write: L2, then L1, then a bus message (keys only). Delete: L1, L2, L1
 *   again, then a message. Tag invalidation: recorded in the L1's tag-time
 *   cache, in the L2, then a message. Keyspace clear: the L1's keys under the
 *   prefix, the L2's (SCAN + UNLINK), then a message.
 * - Other instances drop the keys from their L1 when the message arrives
 *   (about a millisecond on a LAN), record tag times, or drop a keyspace's
 *   keys. A tag-invalidated entry is gone on every instance whose L1 heard
 *   the message, and on every other one once its tag record is read again
 *   from the L2 (at most `l1MaxTtl` later).
 * - Redis pub/sub is at-most-once. With the bus on, an L1 entry (and an L1
 *   tag record) lives at most `l1MaxTtl` (default 10 seconds); when the bus
 *   subscription is confirmed again after a reconnection, or a sender's
 *   sequence numbers show a gap, the whole L1 is dropped. So a missed
 *   message costs at most `min(l1MaxTtl, time to reconnect)` of staleness.
 * - Partial failures (as BentoCache documents them): a write that fails in
 *   the L2 is kept in this process's L1 only, if it was an explicit write
 *   (a load's value is as old as the load: kept nowhere; a tagged copy is
 *   ordered at a lower bound of the server's clock, never at its local
 *   creation time) and is **not** published (the failure is returned to the runtime, which
 *   counts it); a delete, a tag
 *   invalidation or a keyspace clear that fails in the L2 still clears the
 *   local L1 and is published, so every L1 forgets the key.
 * - While the L2 is down, L1 entries keep being served until they expire
 *   (at most `l1MaxTtl` after they were read); L1 misses go to the loader.
 *   After the L2 returns, instances converge: at once when their bus
 *   reconnected (the L1 is dropped), otherwise within `l1MaxTtl`.
 * - With a Redis L2 (or a Redis bus), the layer also provides the lease
 *   service behind cluster-wide single flight (`Keyspace` option
 *   `singleFlight: { scope: "cluster" }`): a loader runs once across all
 *   processes. See {@link layerLease} for the protocol.
 *
 * **Gotchas**
 *
 * - The L1 has no synchronous read (`getUnsafe`): an L1 miss must still ask
 *   the L2, so a hit costs a few Effect steps more than on the plain memory
 *   store (still no I/O and no decoding).
 * - A tagged entry read from the L1 has its tags checked against the L1's
 *   tag-time cache; a tag unknown to it is read from the L2 once per
 *   `l1MaxTtl`.
 * - Without the bus, nothing tells an instance about other instances'
 *   writes: its L1 may serve an older value for up to `l1MaxTtl`.
 *
 * **Storage layout**
 *
 * The L2's own (for Redis, see `RedisStore`); lease keys
 * `<P>:~lease:<keyspace>:<key>`; bus channel `<P>:~bus` (see `RedisBus`).
 *
 * @since 0.1.0
 */
import { Context, type Duration, Effect, Layer, type Scope } from "effect"
import { CacheStore, type MemoryOptions } from "../CacheStore.ts"
import { millisOr } from "../internal/duration.ts"
import { escapeValue } from "../internal/keyEncoding.ts"
import * as loadLease from "../internal/loadLease.ts"
import * as IoRedis from "./IoRedis.ts"
import * as internalBus from "./internal/bus.ts"
import * as clientInternal from "./internal/client.ts"
import { connection } from "./internal/io.ts"
import * as L1 from "./internal/l1.ts"
import * as internalLease from "./internal/lease.ts"
import * as internal from "./internal/tiered.ts"
import type * as RedisBus from "./RedisBus.ts"
import * as RedisStore from "./RedisStore.ts"

/**
 * Bus options of {@link layer}: every `RedisBus.LayerOptions` field is
 * optional here. Without `url`, `cluster` or `client` the bus uses the L2's
 * Redis connection (the L2 must then be Redis); without `prefix`, the L2's
 * prefix.
 *
 * @example
 * ```ts
 * import type { TieredStore } from "cachet/redis"
 * const bus: TieredStore.BusOptions = { retryQueueSize: 5_000, retryInterval: "500 millis" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface BusOptions extends Partial<RedisBus.LayerOptions> {}

/**
 * Options of {@link layer}.
 *
 * - `l1`: the in-process tier: `capacity` (default 10,000 entries),
 *   `maxBytes` (off by default; an entry over the budget is kept in the L2
 *   only), `sizeOf`, `eviction` (default `"w-tinylfu"`, adaptive W-TinyLFU as
 *   in the memory store; `"lru"` for plain least recently used) and `seed`
 *   (W-TinyLFU's hashing; random per L1 by default). See
 *   `CacheStore.MemoryOptions`.
 * - `l2`: the shared tier: `RedisStore.LayerOptions` (`url` / `cluster` /
 *   `client`, `prefix`, ...), or any `CacheStore` layer. Its `decodeCache`
 *   is off by default here (the L1 holds decoded values already).
 * - `bus`: the invalidation bus. Default: on when `l2` is Redis (same
 *   connection plus one subscriber connection; channel from the prefix), off
 *   when `l2` is a layer. `false`: off. {@link BusOptions}: on, with these
 *   options (and its own connection if given one).
 * - `l1MaxTtl`: the longest an L1 entry or tag record lives. Default 10
 *   seconds. `Duration.infinity` for no bound (only sensible without other
 *   instances).
 * - `lease`: provide the lease service for cluster-wide single flight when a
 *   Redis connection is at hand (a Redis `l2` or a bus with its own
 *   connection). Default true.
 *
 * @example
 * ```ts
 * import type { TieredStore } from "cachet/redis"
 * const options: TieredStore.Options = {
 *   l1: { capacity: 50_000 },
 *   l2: { url: "redis://localhost:6379", prefix: "myapp" },
 *   l1MaxTtl: "5 seconds"
 * }
 * // An L1 that evicts the least recently used, as before W-TinyLFU.
 * const lruL1: TieredStore.Options = { l1: { capacity: 50_000, eviction: "lru" }, l2: { url: "redis://localhost:6379" } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = never, R = never> {
  readonly l1?: MemoryOptions | undefined
  readonly l2: RedisStore.LayerOptions | Layer.Layer<CacheStore, E, R>
  readonly bus?: boolean | BusOptions | undefined
  readonly l1MaxTtl?: Duration.Input | undefined
  readonly lease?: boolean | undefined
}

/**
 * The counters of a tiered store: L1 and L2 hits and misses, refused
 * backfills, keys dropped on bus messages, whole-L1 clears, L1 size, and the
 * bus's and lease's own counters (when on).
 *
 * @example
 * ```ts
 * import type { TieredStore } from "cachet/redis"
 * const l1HitRate = (s: TieredStore.TieredStats) => s.l1Hits / Math.max(1, s.l1Hits + s.l1Misses)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TieredStats = internal.TieredStats

/**
 * The counters of the lease service (cluster-wide single flight): leases
 * taken, loads that waited, waits answered by another process's value, waits
 * that timed out, leases lost, loads without a lease because Redis failed.
 *
 * @example
 * ```ts
 * import type { TieredStore } from "cachet/redis"
 * const saved = (s: TieredStore.LeaseStats) => s.found
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type LeaseStats = internalLease.LeaseStats

/**
 * The tiered store's own service, provided by {@link layer} next to the
 * `CacheStore`: its counters, and a way to drop the whole L1.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TieredStore } from "cachet/redis"
 *
 * const report = Effect.gen(function*() {
 *   const tiered = yield* TieredStore.Tiered
 *   const stats = yield* tiered.stats
 *   return `L1 ${stats.l1Hits} hits, bus gaps ${stats.bus?.gaps ?? 0}`
 * })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class Tiered extends Context.Service<Tiered, internal.TieredService>()("cachet/redis/TieredStore") {}

/**
 * The runtime's lease service for cluster-wide single flight (keyspaces with
 * `singleFlight: { scope: "cluster" }`). {@link layer} provides it on Redis;
 * {@link layerLease} builds it on any `IoRedis` client; provide your own to
 * coordinate loads through something else.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { TieredStore } from "cachet/redis"
 *
 * // A lease that never coordinates (each process loads by itself).
 * const NoLease = Layer.succeed(TieredStore.LoadLease, { run: (_key, _policy, load) => load })
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const LoadLease: typeof loadLease.LoadLease = loadLease.LoadLease

/**
 * The lease service's type.
 *
 * @example
 * ```ts
 * import type { TieredStore } from "cachet/redis"
 * const passThrough: TieredStore.LoadLease["Service"] = { run: (_key, _policy, load) => load }
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export type LoadLease = loadLease.LoadLease

const resolveMaxTtl = (input: Duration.Input | undefined): number =>
  millisOr("TieredStore", "l1MaxTtl", input, 10_000, { allowInfinity: true })

const hasConnection = (options: BusOptions): boolean =>
  options.url !== undefined || options.cluster !== undefined || options.client !== undefined

/** What `plan` builds: the store's services, and the lease when a Redis connection is at hand. */
interface Planned {
  readonly context: Context.Context<CacheStore | Tiered>
  readonly lease: LoadLease["Service"] | undefined
}

const plan = <E, R>(options: Options<E, R>): Effect.Effect<Planned, E, R | Scope.Scope> => {
  L1.validateOptions(options.l1)
  const resolved: internal.Resolved = { l1: options.l1, l1MaxTtl: resolveMaxTtl(options.l1MaxTtl) }
  const l2Layer = Layer.isLayer(options.l2) ? (options.l2 as Layer.Layer<CacheStore, E, R>) : undefined

  let redisL2:
    | {
        readonly io: Effect.Effect<IoRedis.Service, never, Scope.Scope>
        readonly store: Effect.Effect<CacheStore["Service"], never, IoRedis.IoRedis | Scope.Scope>
        readonly prefix: string
        readonly commandTimeout: number | undefined
      }
    | undefined
  if (l2Layer === undefined) {
    const { rest, io } = connection('TieredStore option "l2"', options.l2 as RedisStore.LayerOptions)
    redisL2 = {
      io,
      // Validates the store options now. The L1 already holds decoded
      // values: the L2's decode cache is off unless asked for.
      store: RedisStore.makeClient({ ...rest, decodeCache: rest.decodeCache ?? false }),
      prefix: rest.prefix,
      commandTimeout:
        rest.commandTimeout === undefined
          ? undefined
          : clientInternal.millisOption("TieredStore", "l2.commandTimeout", rest.commandTimeout, 0, 1)
    }
  }

  const busOption = options.bus
  let bus:
    | {
        readonly resolved: internalBus.Resolved
        readonly io: Effect.Effect<IoRedis.Service, never, Scope.Scope> | undefined
        readonly namespace: string
        readonly commandTimeout: number | undefined
      }
    | undefined
  if (busOption === undefined ? redisL2 !== undefined : busOption !== false) {
    const busOptions: BusOptions = typeof busOption === "object" ? busOption : {}
    const own = hasConnection(busOptions)
    if (!own && redisL2 === undefined) {
      throw new Error(
        `cachet: TieredStore option "bus" needs "url", "cluster" or "client" when "l2" is not Redis options`
      )
    }
    const prefix = busOptions.prefix ?? redisL2?.prefix
    if (prefix === undefined) {
      throw new Error(`cachet: TieredStore option "bus.prefix" is required when "l2" is not Redis options`)
    }
    const resolvedBus = internalBus.resolve({ ...busOptions, prefix })
    bus = {
      resolved: resolvedBus,
      io: own ? connection('TieredStore option "bus"', busOptions).io : undefined,
      namespace: escapeValue(prefix),
      commandTimeout: resolvedBus.commandTimeout
    }
  }
  const leaseOn = options.lease ?? true

  return Effect.gen(function* () {
    let l2: CacheStore["Service"]
    let io: IoRedis.Service | undefined
    if (l2Layer !== undefined) {
      l2 = Context.get(yield* Layer.build(l2Layer), CacheStore)
    } else {
      io = yield* redisL2!.io
      l2 = yield* Effect.provideService(redisL2!.store, IoRedis.IoRedis, io)
    }
    let busService: internalBus.BusService | undefined
    let busIo: IoRedis.Service | undefined
    if (bus !== undefined) {
      busIo = bus.io === undefined ? io! : yield* bus.io
      busService = yield* internalBus.make(busIo, bus.resolved)
    }
    // The lease lives where the entries live when the L2 is Redis, else on
    // the bus's connection.
    const lease = !leaseOn
      ? undefined
      : io !== undefined
        ? internalLease.make(io, escapeValue(redisL2!.prefix), redisL2!.commandTimeout)
        : busIo !== undefined
          ? internalLease.make(busIo, bus!.namespace, bus!.commandTimeout)
          : undefined
    const { store, tiered } = yield* internal.make(resolved, l2, busService, lease?.stats)
    return { context: Context.make(CacheStore, store).pipe(Context.add(Tiered, tiered)), lease: lease?.service }
  })
}

/** The planned services with the lease added, when there is one. */
const withLease = (planned: Planned): Context.Context<CacheStore | Tiered> =>
  planned.lease === undefined ? planned.context : Context.add(planned.context, LoadLease, planned.lease)

function layerOf<E = never, R = never>(
  options: Options<E, R> & { readonly l2: RedisStore.LayerOptions; readonly lease?: true | undefined }
): Layer.Layer<CacheStore | Tiered | LoadLease, E, R>
function layerOf<E = never, R = never>(options: Options<E, R>): Layer.Layer<CacheStore | Tiered, E, R>
function layerOf<E, R>(
  options: Options<E, R>
): Layer.Layer<CacheStore | Tiered | LoadLease, E, R> | Layer.Layer<CacheStore | Tiered, E, R> {
  if (Layer.isLayer(options.l2) || options.lease === false)
    return Layer.effectContext(Effect.map(plan(options), withLease))
  // A Redis L2 with the lease on always has one: it is in the declared output.
  return Layer.effectContext(
    Effect.flatMap(plan(options), (planned) =>
      planned.lease === undefined
        ? Effect.die(new Error("cachet: TieredStore with a Redis l2 built no lease"))
        : Effect.succeed(Context.add(planned.context, LoadLease, planned.lease))
    )
  )
}

/**
 * Builds a tiered store (see {@link layer} for the options); it and the
 * connections it made live in the current scope.
 *
 * **Gotchas**
 *
 * Invalid options throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TieredStore } from "cachet/redis"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* TieredStore.make({ l2: { url: "redis://localhost:6379", prefix: "myapp" } })
 *   yield* store.ping
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E = never, R = never>(
  options: Options<E, R>
): Effect.Effect<CacheStore["Service"], E, R | Scope.Scope> =>
  Effect.map(plan(options), (planned) => Context.get(planned.context, CacheStore))

/**
 * The tiered store as a layer: the `CacheStore`, the {@link Tiered} service,
 * and (with Redis at hand) the lease behind cluster-wide single flight.
 *
 * **Details**
 *
 * With Redis options as `l2` (and `lease` not `false`) the declared output
 * includes {@link LoadLease}. With a layer as `l2` the lease is there only
 * when the bus has its own connection, so it is not declared.
 *
 * **Gotchas**
 *
 * Invalid options (an L1 capacity below 1, a bad duration, a bus without a
 * connection or prefix to use) throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet, CacheStore } from "cachet"
 * import { TieredStore } from "cachet/redis"
 *
 * // L1 in every process, Redis shared, invalidations on Redis pub/sub.
 * const CacheLive = Cachet.layer().pipe(
 *   Layer.provide(
 *     TieredStore.layer({ l1: { capacity: 10_000 }, l2: { url: "redis://localhost:6379", prefix: "myapp" } })
 *   )
 * )
 *
 * // Any store as L2, with the bus on its own Redis connection.
 * const OverMemory = TieredStore.layer({
 *   l2: CacheStore.layerMemory(),
 *   bus: { url: "redis://localhost:6379", prefix: "myapp" }
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: typeof layerOf = layerOf

/**
 * The lease service for cluster-wide single flight, on the `IoRedis` client
 * in context, for stores other than {@link layer} (which provides it
 * itself): for example a plain `RedisStore` on a shared client.
 *
 * **Details**
 *
 * Per key being loaded: `SET <P>:~lease:<key> <token> NX PX <lease>`. The
 * holder renews it every `lease / 3` while its loader runs (compare-and-
 * `PEXPIRE`) and releases it after storing the value (compare-and-`DEL`, in
 * the load's finalizer; never when the lease was lost: then the load still
 * answers and stores its value). The others read the store every
 * `pollInterval` and retry the lease; after `wait` they load themselves.
 * When Redis fails, a load runs without the lease.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Cachet } from "cachet"
 * import { IoRedis, RedisStore, TieredStore } from "cachet/redis"
 *
 * const RedisLive = IoRedis.layer({ url: "redis://localhost:6379" })
 * const CacheLive = Cachet.layer().pipe(
 *   Layer.provide(Layer.merge(RedisStore.layerClient({ prefix: "myapp" }), TieredStore.layerLease({ prefix: "myapp" }))),
 *   Layer.provide(RedisLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLease = (options: {
  readonly prefix: string
  readonly commandTimeout?: Duration.Input | undefined
}): Layer.Layer<LoadLease, never, IoRedis.IoRedis> => {
  if (typeof options.prefix !== "string" || options.prefix === "") {
    throw new Error(`cachet: TieredStore.layerLease option "prefix" must be a non-empty string`)
  }
  const timeout =
    options.commandTimeout === undefined
      ? undefined
      : clientInternal.millisOption("TieredStore.layerLease", "commandTimeout", options.commandTimeout, 0, 1)
  return Layer.effect(
    loadLease.LoadLease,
    Effect.map(
      Effect.service(IoRedis.IoRedis),
      (io) => internalLease.make(io, escapeValue(options.prefix), timeout).service
    )
  )
}
