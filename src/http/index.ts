/**
 * `cachet/http`: HTTP caching middleware for effect/http.
 *
 * Not yet implemented: tracked by the cachet/http issue. This entry point
 * exists so that the package's export map is stable.
 *
 * @since 0.1.0
 */
export {}
