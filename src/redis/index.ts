/**
 * `cachet/redis`: the Redis store for cachet, on ioredis (an optional peer
 * dependency: install `ioredis` to use this entry point).
 *
 * - {@link IoRedis}: an ioredis client (standalone or cluster) as a service,
 *   with bounded defaults; also provides effect's generic `Redis` service.
 * - {@link RedisStore}: the `CacheStore` on Redis.
 * - {@link TieredStore}: an L1 in each process over a shared L2 (Redis by
 *   default), kept coherent by {@link RedisBus}; also cluster-wide single
 *   flight (a Redis lease).
 * - {@link RedisBus}: the invalidation bus on Redis pub/sub.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as IoRedis from "./IoRedis.ts"
/** @since 0.1.0 */
export * as RedisBus from "./RedisBus.ts"
/** @since 0.1.0 */
export * as RedisStore from "./RedisStore.ts"
/** @since 0.1.0 */
export * as TieredStore from "./TieredStore.ts"
