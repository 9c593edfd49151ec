/**
 * A shared HTTP cache for effect/http servers (HttpRouter and HttpApi apps),
 * on the Cachet runtime: responses are stored in the same store as data, as
 * a keyspace of {@link ResponseEntry} values.
 *
 * **Details**
 *
 * It follows RFC 9111 for a shared cache and RFC 5861 for the stale
 * directives:
 *
 * - Stores GET/HEAD responses with freshness (the response's `s-maxage`,
 *   `max-age` or `Expires`, any final status; the policy's `ttl` for the
 *   statuses in `statuses`; opt-in heuristic freshness), `no-cache` ones to
 *   revalidate on every use; never `no-store`, `private`, `Vary: *`, a
 *   `Set-Cookie`, 206, a streamed body, or a status in `refuseStatuses`. A
 *   targeted field (`CDN-Cache-Control`, RFC 9213) governs over
 *   `Cache-Control` and `Expires`.
 * - Freshness counts the response's age (RFC 9111 §4.2.3: upstream `Age`,
 *   apparent age from `Date`, response delay); `Age` goes out as the current
 *   age, `Date` as received.
 * - Stale, `no-cache` and `must-revalidate` entries are revalidated: the
 *   handler gets `If-None-Match` / `If-Modified-Since` from the stored
 *   validators, and a 304 (or the same ETag) updates the stored fields and
 *   freshness: `X-Cache: REVALIDATED`.
 * - A request with `Authorization` or `Cookie` is stored and answered per
 *   user when the policy has a `user` key; otherwise it only gets, and only
 *   stores, responses that are explicitly `public` or have `s-maxage`, and
 *   never shares a load with other requests.
 * - Keys: method, scheme (as `HttpServerRequest.toURL` derives it), `Host`
 *   as received, the path exactly as the handler sees it in `request.url`
 *   (no slash folding, no decoding), the query as the router parses it
 *   (sorted by name), the policy's `vary` headers, every request header
 *   named in the response's `Vary`, for per-user routes a digest of the user
 *   and of `Authorization`, and, when present, forwarding headers
 *   (`X-Forwarded-Host`, `X-Forwarded-Prefix`, `Forwarded`, ...) so that they
 *   can never poison what a clean request gets. Key, policy and invalidation
 *   all come from the target the router routes: an absolute-form target
 *   that the router would see differently (`http://h?q=x&/page`,
 *   `http://h/a/../b`) bypasses. Requests with a body (`Content-Length` > 0
 *   or `Transfer-Encoding`), a method override header
 *   (`X-HTTP-Method-Override`) or `Range` bypass the cache.
 * - Budget: the responses one middleware stores from a process are bounded
 *   (`maxEntries`, default 1,000; `maxBytes`, default 32 MiB), least
 *   recently used dropped first, so that distinct URLs cannot fill the
 *   store or evict data entries.
 * - Answers: `X-Cache: HIT | STALE | REVALIDATED | MISS` (`BYPASS` when the
 *   cache did not apply), `Age`, a strong `ETag` from the body (unless the
 *   handler set one), 304 for a matching `If-None-Match` (or
 *   `If-Modified-Since`); `Cache-Control` and `Vary` as received (the
 *   policy's freshness only with `advertise`; per-user responses `private`).
 * - Stale: inside `stale-while-revalidate` a stale response is served at
 *   once and one background revalidation per key runs in the Cachet layer's
 *   scope; inside `stale-if-error` it answers when the handler fails or
 *   returns 5xx. Concurrent misses of one key run the handler once.
 * - A successful (2xx, 3xx) request of any method but GET, HEAD, OPTIONS and
 *   TRACE (POST, PUT, PATCH, DELETE, WebDAV, custom verbs) invalidates every
 *   stored response of its path (and of a same-host `Location` or
 *   `Content-Location`), through a Cachet tag: on every instance sharing the
 *   store. The path is the router's view, case-folded (`DELETE /items/5`
 *   drops `/ITEMS/5/` too); the tag is kept as long as the longest HTTP
 *   `maxTtl`, not the runtime's day-long tag retention.
 *
 * **Storage layout**
 *
 * Keyspace `name` (default `"http"`), key the JSON of
 * `[method, scheme, host, path, query, user digests, keyed header digests]`
 * (plus the `Vary` digests for a variant), value a {@link ResponseEntry}
 * (status, headers, body bytes, timeline); on Redis the body travels as
 * base64. Request header values are stored only as SHA-256 digests. Every
 * entry carries the tag `http:<path>`. The keyspace's ttl is `maxTtl`:
 * entries are kept at most that long whatever their freshness.
 *
 * This module does not store streamed bodies or partial content (206), and
 * by default ignores request `no-cache`/`max-age` (a reload storm must not
 * bypass a shared cache; see `requestDirectives`); it honours request
 * `no-store` and `only-if-cached`.
 *
 * @since 0.1.0
 */
import { Effect, type Layer } from "effect"
import type { HttpServerRequest, HttpServerResponse, HttpRouter as Router } from "effect/http"
import { HttpRouter } from "effect/http"
import type { Cachet } from "../Cachet.ts"
import { service } from "../internal/runtime/service.ts"
import type { Keyspace } from "../Keyspace.ts"
import type { Options as StrategyOptions, StrictError } from "../Strategy.ts"
import * as headers from "./internal/headers.ts"
import * as internal from "./internal/middleware.ts"

/**
 * A per-user key for authenticated routes: given the request, the user it
 * belongs to (a session id, a verified token subject), or `undefined` for
 * none. `""` and non-strings count as none. A request with `Authorization`
 * or `Cookie` and no user bypasses the cache.
 *
 * **Gotchas**
 *
 * It must return an identity validated from the same credential the handler
 * authenticates with (it may be an Effect that verifies the session), never
 * a value the client merely asserts. The key also carries a digest of
 * `Authorization` when present. Invalidate the user's paths on logout.
 *
 * @example
 * ```ts
 * import type { HttpCache } from "cachet/http"
 * const bySession: HttpCache.UserKey = (request) => request.cookies["session"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type UserKey = internal.UserKey

/**
 * A caching policy, for all routes or one (see {@link Options} `routes`).
 *
 * - `ttl`: freshness of responses that have none of their own
 *   (`s-maxage`, `max-age`, `Expires` win). Without it, only responses with
 *   explicit freshness are stored.
 * - `staleFor`: both stale windows (`stale-while-revalidate` and
 *   `stale-if-error`), unless given one by one with
 *   `staleWhileRevalidate` and `staleIfError`. Default 0. A response's own
 *   `stale-while-revalidate=N`/`stale-if-error=N` win; its
 *   `must-revalidate`, `proxy-revalidate` or `s-maxage` turn the policy's
 *   windows off (RFC 9111 §4.2.4).
 * - `vary`: request headers to key on always (added to the response's
 *   `Vary`).
 * - `user`: the per-user key of authenticated routes (see {@link UserKey});
 *   per-user responses go out with `Cache-Control: private`.
 * - `statuses`: statuses the policy's `ttl` applies to. Default the
 *   heuristically cacheable ones of RFC 9110 §15.1 without 204 and 501:
 *   `[200, 203, 300, 301, 308, 404, 405, 410, 414]`. 204 and 5xx are stored
 *   (with any freshness) only when listed here.
 * - `negativeTtl`: the longest the policy's `ttl` gives a 404, 405, 410 or
 *   414 (a response's own freshness wins). Default 10 seconds, so that an
 *   input that makes a handler 404 cannot deny a URL for the whole `ttl`.
 * - `refuseStatuses`: statuses never stored, whatever their freshness.
 *   Default none (explicitly fresh 204 and 5xx are stored).
 * - `heuristic`: `true` (10 % of the time since `Last-Modified`, at most a
 *   day) or `{ fraction, max }`: freshness for responses without any
 *   (RFC 9111 §4.2.2). Off by default.
 *
 * @example
 * ```ts
 * import type { HttpCache } from "cachet/http"
 * const policy: HttpCache.Policy = { ttl: "30 seconds", staleFor: "5 minutes", vary: ["accept-language"] }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Policy = internal.PolicyOptions

/**
 * Options of {@link middleware}, {@link layer} and {@link layerRoute}: the
 * default {@link Policy}, and
 *
 * - `routes`: policies by router path pattern (`"/users/:id"`,
 *   `"/assets/*"`), matched as the router matches (FindMyWay), merged over
 *   the default; `false` never caches that route.
 * - `name`: the keyspace of stored responses (per-keyspace stats). Default
 *   `"http"`.
 * - `maxTtl`: the longest an entry is kept; freshness and stale windows
 *   are capped to it. Default 1 hour.
 * - `maxBodyBytes`: larger bodies are not stored. Default 512 KiB (fits
 *   Redis's default entry limit once base64-encoded).
 * - `etag`: `"strong"` (default), `"weak"`, or `false` for no ETag from the
 *   body (a handler's own ETag is always kept).
 * - `invalidateOnUnsafe`: successful POST/PUT/PATCH/DELETE invalidate their
 *   path. Default true.
 * - `router`: the router's path normalisation, when it differs from
 *   effect's defaults (`ignoreTrailingSlash`, `ignoreDuplicateSlashes`: true).
 * - `loadWait`: the longest a request waits on another request's load of
 *   the same key before it runs its own handler (uncached). Default 10 s.
 * - `maxEntries`, `maxBytes`: the budget of responses this middleware stores
 *   from this process (default 1,000 entries and 32 MiB), least recently
 *   used dropped first.
 * - `advertise`: add the policy's freshness (`public, max-age=N, ...`) to
 *   `Cache-Control` for downstream caches. Default false: the policy's ttl
 *   is this cache's own decision.
 * - `targetedFields`: targeted cache-control fields (RFC 9213) in
 *   precedence order. Default `["CDN-Cache-Control"]`; `[]` turns them off.
 *   `forwardTargeted: false` removes them from what goes downstream.
 * - `requestDirectives`: `"ignore"` (default: only `no-store` and
 *   `only-if-cached` count), `"freshness"` (also `max-age`, `min-fresh`,
 *   `max-stale`) or `"all"` (also `no-cache` and `max-age=0`, which then
 *   revalidate).
 *
 * Invalid options throw at the call, naming the option.
 *
 * @example
 * ```ts
 * import type { HttpCache } from "cachet/http"
 * const options: HttpCache.Options = {
 *   ttl: "10 seconds",
 *   routes: { "/users/:id": { ttl: "1 minute", staleFor: "10 minutes" }, "/account/*": false }
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Options = internal.Options

/**
 * A stored response: status, the header fields as received (less hop-by-hop
 * ones, `Age` and `Content-Length`; `Date` always), body bytes, ETag, and its
 * timeline (`date`: when it was received, `age`: its corrected initial age
 * in ms, `freshUntil`, `swrUntil`, `sieUntil`, epoch ms), whether stale use
 * needs a revalidation first (`revalidate`), the `Vary` names and digests of
 * the values they had, whether it may answer requests with credentials
 * (`shared`), and its invalidation path.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { HttpCache } from "cachet/http"
 * const json = Schema.toCodecJson(HttpCache.ResponseEntry) // the body as base64
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const ResponseEntry: typeof internal.ResponseEntry = internal.ResponseEntry

/**
 * The type of {@link ResponseEntry}.
 *
 * @example
 * ```ts
 * import type { HttpCache } from "cachet/http"
 * const age = (entry: HttpCache.ResponseEntry, now: number) => entry.age + (now - entry.date) // current age, ms
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export type ResponseEntry = internal.ResponseEntry

/**
 * The keyspace of stored responses named `name` (default `"http"`), for
 * stats and `Cachet.invalidateKeyspace`: the one the middlewares of that
 * name use.
 *
 * **Gotchas**
 *
 * One keyspace object per name in the process: asking for a name already
 * used with another `maxTtl` throws.
 *
 * @example
 * ```ts
 * import { Cachet } from "cachet"
 * import { HttpCache } from "cachet/http"
 * const clearResponses = Cachet.invalidateKeyspace(HttpCache.keyspace())
 * ```
 *
 * @since 0.1.0
 * @category keyspaces
 */
export const keyspace = (
  name = "http",
  options?: { readonly maxTtl?: Options["maxTtl"] }
): Keyspace<{ readonly key: string }, ResponseEntry> => internal.keyspaceNamed(name, options?.maxTtl)

/**
 * The cache as an HTTP middleware: `(app) => app`, for `HttpRouter.middleware`,
 * `HttpServer.serve` or an HttpApi middleware. Requires `Cachet` per request.
 *
 * **Details**
 *
 * As a route middleware (`HttpRouter.middleware(HttpCache.middleware(policy)).layer`
 * provided to some routes) it gives those routes a policy; as a global one
 * it sees every request (and every unsafe request, for invalidation). Use
 * {@link layer} / {@link layerRoute} to take `Cachet` once, at build time.
 * Effect's `HttpMiddleware.compression` and `cors` run when the response is
 * sent, after this cache: they apply per request to stored responses, and
 * the `Vary` they add is theirs.
 *
 * **Gotchas**
 *
 * Do not put two cache middlewares around one route. The key normalises
 * paths as effect's router does by default; a router with other
 * `RouterConfig` needs the same in `router`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { HttpServerResponse } from "effect/http"
 * import { HttpCache } from "cachet/http"
 *
 * const cached = HttpCache.middleware({ ttl: "30 seconds", staleFor: "5 minutes" })
 * const app = cached(Effect.succeed(HttpServerResponse.text("hello")))
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const middleware = (
  options?: Options
): (<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest | Cachet>) => {
  const { run } = internal.make(options)
  return internal.fromContext(run) as any
}

const bound = (options: Options | undefined) => {
  const { run } = internal.make(options)
  return Effect.map(
    service,
    (rt) =>
      internal.fromContext(run, rt) as <E, R>(
        app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
      ) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  )
}

/**
 * The cache as a global `HttpRouter` middleware: every route, and every
 * unsafe request for invalidation. Per-route policies go in `routes`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { Cachet } from "cachet"
 * import { HttpCache } from "cachet/http"
 *
 * const Routes = HttpRouter.add("GET", "/hello", HttpServerResponse.text("hello"))
 * const App = Layer.mergeAll(
 *   Routes,
 *   HttpCache.layer({ ttl: "10 seconds", routes: { "/account/*": false } })
 * ).pipe(Layer.provide(Cachet.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<never, never, Router.HttpRouter | Cachet> =>
  HttpRouter.middleware(bound(options), { global: true }) as unknown as Layer.Layer<
    never,
    never,
    Router.HttpRouter | Cachet
  >

/**
 * The cache as a route middleware layer: provide it to the route layers
 * (or the `HttpApiBuilder.layer`) that get this policy.
 *
 * **Gotchas**
 *
 * Unsafe requests invalidate only when they go through a cache middleware:
 * provide it to the write routes too (they are never cached).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { HttpCache } from "cachet/http"
 *
 * const UserRoutes = HttpRouter.addAll([
 *   HttpRouter.route("GET", "/users/:id", Effect.succeed(HttpServerResponse.text("Ada"))),
 *   HttpRouter.route("PUT", "/users/:id", Effect.succeed(HttpServerResponse.empty()))
 * ]).pipe(Layer.provide(HttpCache.layerRoute({ ttl: "30 seconds", staleFor: "5 minutes" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRoute = (options?: Options): Layer.Layer<never, never, Cachet> =>
  (HttpRouter.middleware(bound(options)) as unknown as { readonly layer: Layer.Layer<never, never, Cachet> }).layer

/**
 * Conditional GETs alone, for handlers that do not want a cache: a 200
 * GET/HEAD response with a byte body gets an `ETag` from its bytes (unless it
 * has one), and a matching `If-None-Match` (or `If-Modified-Since` with a
 * `Last-Modified`) gets 304 with no body. Needs no `Cachet`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { HttpServerResponse } from "effect/http"
 * import { HttpCache } from "cachet/http"
 *
 * const withEtag = HttpCache.etag()(Effect.succeed(HttpServerResponse.text("report")))
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const etag = (options?: {
  readonly weak?: boolean | undefined
}): (<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>) =>
  internal.etag(options?.weak === true) as any

/**
 * Invalidates every stored response of a path (all query strings, methods,
 * users and variants), on every instance sharing the store. The path is
 * normalised as the router does (`/users//1/` is `/users/1`), case-folded.
 *
 * **Details**
 *
 * When the store does not take it (down, paused), this process applies it
 * at once and journals it: it is replayed, in order, when the store answers
 * (see `Cachet.layer`'s `journalCapacity`). With `{ onStoreError: "fail" }`
 * the call also fails with `CacheStoreError`, which E then includes.
 *
 * @example
 * ```ts
 * import { HttpCache } from "cachet/http"
 * const userChanged = (id: number) => HttpCache.invalidatePath(`/users/${id}`)
 * const strict = HttpCache.invalidatePath("/users/7", { onStoreError: "fail" }) // E: CacheStoreError
 * ```
 *
 * @since 0.1.0
 * @category invalidation
 */
export const invalidatePath = <const O extends StrategyOptions = {}>(
  path: string,
  options?: O
): Effect.Effect<void, StrictError<O>, Cachet> =>
  Effect.flatMap(service, (rt) => {
    const target = internal.normalize(path)
    if (target === undefined) return Effect.void
    return Effect.flatMap(internal.invalidatePath(rt, target), (error) =>
      error !== undefined && options?.onStoreError === "fail" ? Effect.fail(error) : Effect.void
    ) as Effect.Effect<void, StrictError<O>>
  })

/**
 * A parsed `Cache-Control`: flags for `no-store`, `no-cache`, `private`,
 * `public`, `must-revalidate`, `proxy-revalidate`, `only-if-cached`, and
 * seconds for `max-age`, `s-maxage`, `stale-while-revalidate`,
 * `stale-if-error` (`undefined` absent, `-1` invalid or conflicting).
 *
 * @example
 * ```ts
 * import { HttpCache } from "cachet/http"
 * const cc: HttpCache.CacheControl = HttpCache.parseCacheControl("public, max-age=60")
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export type CacheControl = headers.CacheControl

/**
 * Parses a `Cache-Control` value in one linear pass: directive names are
 * case-insensitive, arguments tokens or quoted strings, unknown directives
 * ignored; a numeric directive given twice with different values reads as
 * invalid (`-1`, so the response is stale).
 *
 * @example
 * ```ts
 * import { HttpCache } from "cachet/http"
 * HttpCache.parseCacheControl('max-age="60", Private, x-ext="a, b"').maxAge // 60
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseCacheControl: (value: string | undefined) => CacheControl = headers.parseCacheControl
