/**
 * cachet: typed, fast, fault-tolerant caching for Effect.
 *
 * - {@link Keyspace}: *what* is cached (key template, value Schema, policy).
 * - {@link Strategy}: *how* (cache-aside, ...), as combinators.
 * - {@link Cachet}: the runtime (single-flight, stats, invalidation).
 * - {@link CacheStore}: *where* (memory here; Redis in `cachet/redis`).
 * - {@link CacheError}: the error family.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as CacheError from "./CacheError.ts"
/** @since 0.1.0 */
export * as CacheStore from "./CacheStore.ts"
/** @since 0.1.0 */
export * as Cachet from "./Cachet.ts"
/** @since 0.1.0 */
export * as Keyspace from "./Keyspace.ts"
/** @since 0.1.0 */
export * as Strategy from "./Strategy.ts"
