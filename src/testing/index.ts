/**
 * `cachet/testing`: what our own tests use, for store authors and users.
 *
 * - {@link CacheStoreSuite}: the conformance suite every store must pass.
 * - {@link ChaosStore}: fault injection around any store.
 *
 * Imports `@effect/vitest`: load it from test files only.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as CacheStoreSuite from "./CacheStoreSuite.ts"
/** @since 0.1.0 */
export * as ChaosStore from "./ChaosStore.ts"
