/**
 * What a shared cache may store and reuse (RFC 9111 §3, §3.5, §4, RFC 5861),
 * as pure functions of a request and a response, and the normalisation of a
 * request target exactly as effect's router (FindMyWay) sees it.
 *
 * @internal
 */
import { FindMyWay } from "effect/http"
import { type CacheControl, isStructuredDictionary, parseCacheControl, parseHttpDate, parseVary } from "./headers.ts"

// ---------------------------------------------------------------------------
// Target normalisation
// ---------------------------------------------------------------------------

/** How the router normalises paths (effect's defaults: both true). */
export interface RouterNormalisation {
  readonly ignoreTrailingSlash: boolean
  readonly ignoreDuplicateSlashes: boolean
}

/** A request target as the router sees it: the matched path and the parsed query, canonical. */
export interface Target {
  /** The path the router matches (decoded as it decodes, slashes as it folds them; case kept). */
  readonly path: string
  /** The query parameters as the router parses them, sorted by name (values of one name keep their order). */
  readonly query: string
}

// The functions below follow FindMyWay's `find` (effect/http/FindMyWay,
// MIT, Tomas Della Vedova), so that two targets share a cache key only when
// the router hands their handlers the same path, parameters and query. Case
// is kept: the router matches static segments case-insensitively but passes
// parameters with their case, so folding case here could merge two
// different responses.

const decodeComponentChar = (high: number, low: number): string | undefined => {
  if (high === 50) {
    if (low === 53) return "%"
    if (low === 51) return "#"
    if (low === 52) return "$"
    if (low === 54) return "&"
    if (low === 66 || low === 98) return "+"
    if (low === 67 || low === 99) return ","
    if (low === 70 || low === 102) return "/"
    return undefined
  }
  if (high === 51) {
    if (low === 65 || low === 97) return ":"
    if (low === 66 || low === 98) return ";"
    if (low === 68 || low === 100) return "="
    if (low === 70 || low === 102) return "?"
    return undefined
  }
  if (high === 52 && low === 48) return "@"
  return undefined
}

const safeDecodeURI = (path: string): { readonly path: string; readonly querystring: string } => {
  let shouldDecode = false
  let querystring = ""
  for (let i = 1; i < path.length; i++) {
    const code = path.charCodeAt(i)
    if (code === 37) {
      const high = path.charCodeAt(i + 1)
      const low = path.charCodeAt(i + 2)
      if (decodeComponentChar(high, low) === undefined) {
        shouldDecode = true
      } else {
        if (high === 50 && low === 53) {
          shouldDecode = true
          path = path.slice(0, i + 1) + "25" + path.slice(i + 1)
          i += 2
        }
        i += 2
      }
    } else if (code === 63 || code === 59 || code === 35) {
      querystring = path.slice(i + 1)
      path = path.slice(0, i)
      break
    }
  }
  return { path: shouldDecode ? decodeURI(path) : path, querystring }
}

// Characters that WHATWG URL parsing leaves as they are in a path and a
// query: a target made only of these (and without dot segments) routes the
// same whether the adapter parsed it with `new URL` or not.
const plainTarget = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*$/
const dotSegment = /\/(?:\.|%2e)/i
const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/

/**
 * The target (path and query) that effect's router routes for a request of
 * `originalUrl`, or `undefined` when that cannot be known from it alone.
 *
 * **Details**
 *
 * `originalUrl` is `scheme://host` plus the raw origin-form target (Node,
 * origin-form), the raw absolute-form target (Node routes its `new URL`
 * path and search: dot segments resolved, characters escaped), or an
 * already normalised URL (web `Request`). The part after the authority is
 * the router's target in every case exactly when `new URL` leaves it
 * unchanged; otherwise the request bypasses the cache. So
 * `GET http://h?q=<payload>&/page` (routed as `/`), `http://h/x/../page`
 * (routed as `/page`) and a backslash or fragment never get a key that
 * another request's route shares. Route-level middlewares see a request
 * whose `url` has its router prefix removed; this is the whole target.
 */
export const routedTarget = (originalUrl: string): string | undefined => {
  let rest = originalUrl
  if (originalUrl.charCodeAt(0) !== 47) {
    const found = authority.exec(originalUrl)
    if (found === null) return undefined
    rest = originalUrl.slice(found[0].length)
    if (rest.charCodeAt(0) !== 47) return undefined
  }
  const query = rest.indexOf("?")
  if (plainTarget.test(rest) && !dotSegment.test(query === -1 ? rest : rest.slice(0, query))) return rest
  try {
    const parsed = new URL(`http://h${rest}`)
    return parsed.pathname + parsed.search === rest ? rest : undefined
  } catch {
    return undefined
  }
}

// The router's own query parser, reached through a one-route router.
const queryRouter = FindMyWay.make<true>()
queryRouter.on("GET", "/", true)

const canonicalQuery = (querystring: string): string => {
  if (querystring.length === 0) return ""
  const found = queryRouter.find("GET", `/?${querystring}`)
  if (found === undefined) return ""
  const entries = Object.keys(found.searchParams)
    .sort()
    .map((name) => [name, found.searchParams[name]] as const)
  return entries.length === 0 ? "" : JSON.stringify(entries)
}

/** A request target as its handler sees it: the key's path and query, and the invalidation path. */
export interface HandlerTarget {
  /** The path exactly as in `request.url` (up to `?`, `;` or `#`): what a handler reading the URL sees. */
  readonly path: string
  /** The query parameters as the router parses them, sorted by name. */
  readonly query: string
  /** The path as the router matches it, lower-cased: the tag that invalidation uses. */
  readonly tagPath: string
}

/**
 * The target of `request.url` (what effect's router routes: the Node adapter
 * turns an absolute-form target into its path and query, dot segments
 * resolved), or `undefined` when it must not be cached: not origin-form, or
 * a malformed percent-encoding the router could not route either.
 *
 * The key keeps the path as the handler sees it (no slash folding, no
 * decoding): a handler that tells `/docs` from `/docs/` (a redirect to the
 * slash form, as `HttpStaticServer` does) must never have one answer the
 * other. Invalidation uses the router's view, case-folded, so that a write
 * to `/items/5` also drops `/ITEMS/5/`, which the router sends to the same
 * handler.
 */
export const handlerTarget = (url: string, router: RouterNormalisation): HandlerTarget | undefined => {
  if (url.charCodeAt(0) !== 47) return undefined
  const routed = normalizeTarget(url, router)
  if (routed === undefined) return undefined
  let end = url.length
  for (let i = 1; i < url.length; i++) {
    const code = url.charCodeAt(i)
    if (code === 63 || code === 59 || code === 35) {
      end = i
      break
    }
  }
  return { path: url.slice(0, end), query: routed.query, tagPath: routed.path.toLowerCase() }
}

/**
 * The target of `url` as the router sees it, or `undefined` when the router
 * could not route it either (a malformed percent-encoding).
 */
export const normalizeTarget = (url: string, router: RouterNormalisation): Target | undefined => {
  let path = url
  let querystring = ""
  try {
    const decoded = safeDecodeURI(path)
    path = decoded.path
    querystring = decoded.querystring
  } catch {
    return undefined
  }
  if (router.ignoreDuplicateSlashes && path.indexOf("//") !== -1) path = path.replace(/\/\/+/g, "/")
  if (router.ignoreTrailingSlash && path.length > 1 && path.charCodeAt(path.length - 1) === 47) {
    path = path.slice(0, -1)
  }
  return { path, query: canonicalQuery(querystring) }
}

// ---------------------------------------------------------------------------
// Storability and freshness
// ---------------------------------------------------------------------------

/** A route's caching policy, resolved (durations in milliseconds). */
export interface ResolvedPolicy {
  /** Freshness given by the policy to responses without their own; undefined: only explicit freshness. */
  readonly ttl: number | undefined
  /** Stale-while-revalidate window given by the policy. */
  readonly staleWhileRevalidate: number
  /** Stale-if-error window given by the policy. */
  readonly staleIfError: number
  /** Statuses the policy's ttl applies to (204 and 5xx only when listed). */
  readonly statuses: ReadonlySet<number>
  /** The longest freshness the policy's ttl gives a 404, 405, 410 or 414 (explicit freshness wins). */
  readonly negativeTtl: number
  /** Statuses never stored, whatever their freshness. Default none. */
  readonly refuse?: ReadonlySet<number> | undefined
  /** Heuristic freshness (RFC 9111 §4.2.2) for responses with `Last-Modified`: off when undefined. */
  readonly heuristic?: { readonly fraction: number; readonly max: number } | undefined
  /** Targeted cache-control fields, lower-case, in precedence order (RFC 9213). */
  readonly targets?: ReadonlyArray<string> | undefined
}

/** Error statuses that the policy's ttl caches only for `negativeTtl`: any unkeyed input that makes a handler 404 must not deny a URL for long. */
export const negativeStatuses: ReadonlySet<number> = new Set([404, 405, 410, 414])

/** Heuristically cacheable statuses (RFC 9110 §15.1) without 204 and 501, which must be opted into. */
export const defaultStatuses: ReadonlyArray<number> = [200, 203, 300, 301, 308, 404, 405, 410, 414]

/** Request header names read by the decision (lowercase). */
export interface RequestFacts {
  readonly method: string
  readonly headers: Readonly<Record<string, string | undefined>>
  /** The route keys authenticated requests per user (a user key was found for this request). */
  readonly userKeyed: boolean
}

/** What the decision reads of a response. */
export interface ResponseFacts {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  /** The response sets a cookie (`Set-Cookie` header or cookies). */
  readonly setsCookie: boolean
  /** The stored response can be revalidated (an ETag, computed or its own, or `Last-Modified`). */
  readonly validators: boolean
}

/** A stored response's timeline, relative to its generation (milliseconds). */
export interface Timeline {
  /** The freshness lifetime (RFC 9111 §4.2.1), before age is subtracted. */
  readonly lifetime: number
  readonly staleWhileRevalidate: number
  readonly staleIfError: number
}

/** The outcome of {@link decide}. */
export type Decision =
  | {
      readonly store: true
      readonly timeline: Timeline
      /** Explicitly `public` or `s-maxage`: may answer requests with credentials (RFC 9111 §3.5). */
      readonly shared: boolean
      /** Freshness came from the response itself (else from the policy or a heuristic). */
      readonly explicit: boolean
      /** Every use needs a successful revalidation (`no-cache`, §5.2.2.4). */
      readonly noCache: boolean
      /** Stale use is forbidden (`must-revalidate`, `proxy-revalidate`, `s-maxage`: §4.2.4, §5.2.2.2, §5.2.2.8). */
      readonly mustRevalidate: boolean
      readonly cacheControl: CacheControl
      /** The targeted field (RFC 9213) the policy came from, lower-case, if any. */
      readonly targeted: string | undefined
      /** Lowercase names of the response's `Vary`. */
      readonly vary: ReadonlyArray<string>
    }
  | { readonly store: false; readonly reason: string }

/**
 * The cache-control that governs a response (RFC 9213 §2.2): the first
 * targeted field in `targets` with a valid, non-empty value (then
 * `Cache-Control` and `Expires` are ignored), else `Cache-Control`.
 */
export const governing = (
  headers: Readonly<Record<string, string | undefined>>,
  targets: ReadonlyArray<string> | undefined
): { readonly cc: CacheControl; readonly targeted: string | undefined } => {
  if (targets !== undefined) {
    for (const name of targets) {
      const value = headers[name]
      if (value !== undefined && isStructuredDictionary(value)) return { cc: parseCacheControl(value), targeted: name }
    }
  }
  return { cc: parseCacheControl(headers["cache-control"]), targeted: undefined }
}

/** Request headers that override the method in some frameworks: such requests bypass the cache. */
const methodOverrideHeaders: ReadonlyArray<string> = ["x-http-method-override", "x-http-method", "x-method-override"]

/**
 * Why a GET/HEAD request bypasses the cache entirely (neither read nor
 * stored), or undefined. Credentials are not a reason here: see
 * {@link decide} and the middleware's lookup rules.
 */
export const requestBypass = (method: string, headers: Readonly<Record<string, string | undefined>>) => {
  if (method !== "GET" && method !== "HEAD") return "method"
  if (headers["range"] !== undefined) return "range request"
  // A body is neither keyed nor read by the cache: a response computed from
  // it must not answer bodyless requests, and a slow body must not hold
  // every request that would wait on this one's load.
  const length = headers["content-length"]
  if ((length !== undefined && length.trim() !== "0") || headers["transfer-encoding"] !== undefined) {
    return "request body"
  }
  for (const name of methodOverrideHeaders) if (headers[name] !== undefined) return "method override header"
  return undefined
}

const seconds = (s: number): number => (s < 0 ? 0 : s * 1000)

/**
 * Whether a response may be stored by a shared cache under `policy`, and for
 * how long. `now` is the time the response was received (for `Expires`
 * without `Date`, and heuristics).
 *
 * Stores only when all hold (RFC 9111 §3, §3.5, plus cachet's stricter
 * rules, each marked *):
 * - the request method is GET or HEAD, without `Range`*, a body*, or a
 *   method override header*, and without request `no-store`;
 * - the status is final and not 206 or 304, and not refused by the policy*;
 * - the governing cache-control (a targeted field such as
 *   `CDN-Cache-Control`, else `Cache-Control`) has no `no-store` and no
 *   `private`; there is no `Vary: *` and no `Set-Cookie`*;
 * - a request with `Authorization` or `Cookie`* is stored only when the route
 *   keys it per user, or the response is `public` or has `s-maxage` (RFC 9111
 *   §3.5 also allows `must-revalidate`; cachet does not*);
 * - the response has explicit freshness (`s-maxage`, `max-age`, `Expires`;
 *   any status), or the policy has a ttl and lists the status (204 and 5xx
 *   only when listed), or heuristic freshness is on and it has
 *   `Last-Modified`;
 * - it can still be used: some of its timeline (fresh or stale windows) is
 *   ahead, or it can be revalidated (validators). `no-cache` responses are
 *   stored with no freshness and revalidated on every use (§5.2.2.4).
 */
export const decide = (
  request: RequestFacts,
  response: ResponseFacts,
  policy: ResolvedPolicy,
  now: number
): Decision => {
  const bypass = requestBypass(request.method, request.headers)
  if (bypass !== undefined) return { store: false, reason: bypass }
  if (parseCacheControl(request.headers["cache-control"]).noStore) return { store: false, reason: "request no-store" }
  const status = response.status
  if (!Number.isInteger(status) || status < 200 || status > 599) return { store: false, reason: "status not final" }
  if (status === 206 || status === 304) return { store: false, reason: `status ${status}` }
  if (policy.refuse?.has(status)) return { store: false, reason: `status ${status} refused` }
  const { cc, targeted } = governing(response.headers, policy.targets)
  if (cc.noStore) return { store: false, reason: "no-store" }
  if (cc.private) return { store: false, reason: "private" }
  const vary = parseVary(response.headers["vary"])
  if (vary.star) return { store: false, reason: "Vary: *" }
  if (response.setsCookie) return { store: false, reason: "Set-Cookie" }
  const shared = cc.public || cc.sMaxage !== undefined
  const credentials = request.headers["authorization"] !== undefined || request.headers["cookie"] !== undefined
  if (credentials && !request.userKeyed && !shared) {
    return { store: false, reason: "credentials without a per-user key or public response" }
  }
  let lifetime: number
  let explicit = true
  const expires = targeted === undefined ? response.headers["expires"] : undefined
  if (cc.sMaxage !== undefined) lifetime = seconds(cc.sMaxage)
  else if (cc.maxAge !== undefined) lifetime = seconds(cc.maxAge)
  else if (expires !== undefined) {
    // An invalid Expires (such as "0") means already expired (RFC 9111 §5.3).
    const at = parseHttpDate(expires)
    const date = parseHttpDate(response.headers["date"]) ?? now
    lifetime = at === undefined ? 0 : Math.max(0, at - date)
  } else {
    explicit = false
    const lastModified = parseHttpDate(response.headers["last-modified"])
    if (policy.ttl !== undefined && policy.statuses.has(status)) {
      lifetime = policy.ttl
      if (negativeStatuses.has(status)) lifetime = Math.min(lifetime, policy.negativeTtl)
    } else if (policy.heuristic !== undefined && lastModified !== undefined && heuristicStatuses.has(status)) {
      // RFC 9111 §4.2.2: a fraction of the time since the last modification.
      const date = parseHttpDate(response.headers["date"]) ?? now
      lifetime = Math.min(Math.max(0, date - lastModified) * policy.heuristic.fraction, policy.heuristic.max)
    } else if (cc.noCache && heuristicStatuses.has(status)) {
      // Storable by its status (RFC 9111 §3), used only once revalidated.
      lifetime = 0
    } else if (policy.ttl === undefined) return { store: false, reason: "no explicit freshness" }
    else return { store: false, reason: `status ${status} not cacheable by policy` }
  }
  const noCache = cc.noCache
  // Stale windows: the response's own directives (RFC 5861) win; the
  // policy's apply unless the response forbids serving it stale
  // (must-revalidate, proxy-revalidate, s-maxage: RFC 9111 §4.2.4).
  const mustRevalidate = noCache || cc.mustRevalidate || cc.proxyRevalidate || cc.sMaxage !== undefined
  const swr =
    noCache || cc.mustRevalidate
      ? 0
      : cc.staleWhileRevalidate !== undefined
        ? seconds(cc.staleWhileRevalidate)
        : mustRevalidate
          ? 0
          : policy.staleWhileRevalidate
  const sie =
    noCache || cc.mustRevalidate
      ? 0
      : cc.staleIfError !== undefined
        ? seconds(cc.staleIfError)
        : mustRevalidate
          ? 0
          : policy.staleIfError
  if (noCache) lifetime = 0
  if (lifetime <= 0 && swr <= 0 && sie <= 0 && !response.validators) return { store: false, reason: "already stale" }
  return {
    store: true,
    timeline: { lifetime: Math.max(0, lifetime), staleWhileRevalidate: swr, staleIfError: sie },
    shared,
    explicit,
    noCache,
    mustRevalidate,
    cacheControl: cc,
    targeted,
    vary: vary.names
  }
}

/** Statuses a heuristic may give freshness to (RFC 9110 §15.1). */
const heuristicStatuses: ReadonlySet<number> = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
