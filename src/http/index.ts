/**
 * `cachet/http`: HTTP caching for effect/http servers, on the Cachet runtime.
 *
 * - {@link HttpCache}: a shared cache middleware (RFC 9111, RFC 5861) for
 *   HttpRouter and HttpApi apps: storability, keys, ETag/304, Age,
 *   Cache-Control, stale-while-revalidate, stale-if-error, invalidation on
 *   writes; and `HttpCache.etag` for conditional GETs alone.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as HttpCache from "./HttpCache.ts"
