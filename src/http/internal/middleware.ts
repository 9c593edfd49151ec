/**
 * The HTTP cache over the Cachet runtime: keys, lookups, single-flight
 * loads, background revalidation, conditional answers and invalidation.
 * Public signatures and docs live in `HttpCache.ts`.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { Cause, Context, type Duration, Effect, Exit, Option, Schema } from "effect"
import {
  Cookies,
  FindMyWay,
  Headers,
  type HttpBody,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import type { CacheStoreError } from "../../CacheError.ts"
import type { StoredEntry } from "../../CacheStore.ts"
import { millisOption } from "../../internal/duration.ts"
import { positiveInt } from "../../internal/numbers.ts"
import { Cachet, type KeyspaceState, NotStoredTypeId, type RuntimeService } from "../../internal/runtime/service.ts"
import type { Keyspace } from "../../Keyspace.ts"
import * as KeyspaceModule from "../../Keyspace.ts"
import { noneMatch, parseAge, parseCacheControl, parseHttpDate } from "./headers.ts"
import {
  decide,
  defaultStatuses,
  type HandlerTarget,
  handlerTarget,
  type RequestFacts,
  type ResolvedPolicy,
  type RouterNormalisation,
  requestBypass,
  routedTarget
} from "./policy.ts"

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/**
 * A per-user key: a non-empty string keys the response to that user; anything
 * else (undefined, `""`, a non-string) means "no user".
 */
export type UserKey = (
  request: HttpServerRequest.HttpServerRequest
) => string | undefined | Effect.Effect<string | undefined>

/** Policy options (see `HttpCache.Policy`). */
export interface PolicyOptions {
  readonly ttl?: Duration.Input | undefined
  readonly staleFor?: Duration.Input | undefined
  readonly staleWhileRevalidate?: Duration.Input | undefined
  readonly staleIfError?: Duration.Input | undefined
  readonly vary?: ReadonlyArray<string> | undefined
  readonly user?: UserKey | undefined
  readonly statuses?: ReadonlyArray<number> | undefined
  readonly negativeTtl?: Duration.Input | undefined
  readonly refuseStatuses?: ReadonlyArray<number> | undefined
  readonly heuristic?: boolean | { readonly fraction?: number | undefined; readonly max?: Duration.Input } | undefined
}

/** Middleware options (see `HttpCache.Options`). */
export interface Options extends PolicyOptions {
  readonly name?: string | undefined
  readonly maxTtl?: Duration.Input | undefined
  readonly maxBodyBytes?: number | undefined
  readonly etag?: "strong" | "weak" | false | undefined
  readonly invalidateOnUnsafe?: boolean | undefined
  readonly routes?: Readonly<Record<string, PolicyOptions | false>> | undefined
  readonly router?: Partial<RouterNormalisation> | undefined
  readonly loadWait?: Duration.Input | undefined
  readonly maxEntries?: number | undefined
  readonly maxBytes?: number | undefined
  readonly advertise?: boolean | undefined
  readonly targetedFields?: ReadonlyArray<string> | undefined
  readonly forwardTargeted?: boolean | undefined
  readonly requestDirectives?: "ignore" | "freshness" | "all" | undefined
}

/** A route policy with its request-side settings. */
interface RoutePolicy extends ResolvedPolicy {
  readonly vary: ReadonlyArray<string>
  readonly user: UserKey | undefined
}

interface Config {
  readonly keyspace: Keyspace<{ readonly key: string }, ResponseEntry>
  readonly maxTtl: number
  readonly maxBodyBytes: number
  readonly etag: "strong" | "weak" | false
  readonly invalidateOnUnsafe: boolean
  readonly router: RouterNormalisation
  readonly policy: RoutePolicy
  readonly routes: FindMyWay.Router<RoutePolicy | false> | undefined
  /** How long a request waits on another request's load before running its own handler. */
  readonly loadWait: number
  /** The budget of stored responses written by this middleware in this process. */
  readonly maxEntries: number
  readonly maxBytes: number
  /** Add the policy's freshness to `Cache-Control` for downstream caches. */
  readonly advertise: boolean
  /** Targeted fields (lower-case) not sent downstream. */
  readonly dropped: ReadonlySet<string>
  readonly requestDirectives: "ignore" | "freshness" | "all"
}

const fail = (option: string, message: string): never => {
  throw new Error(`cachet: HttpCache option "${option}" ${message}`)
}

const millis = (option: string, input: Duration.Input | undefined, allowZero: boolean): number | undefined =>
  input === undefined ? undefined : millisOption("HttpCache", option, input, { allowZero })

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

const statusList = (option: string, statuses: ReadonlyArray<number> | undefined): void => {
  if (statuses === undefined) return
  for (const status of statuses) {
    if (!Number.isInteger(status) || status < 200 || status > 599 || status === 206 || status === 304) {
      fail(option, `must hold final statuses other than 206 and 304, got ${String(status)}`)
    }
  }
}

const resolveHeuristic = (prefix: string, option: PolicyOptions["heuristic"]): RoutePolicy["heuristic"] => {
  if (option === undefined || option === false) return undefined
  const o = option === true ? {} : option
  const fraction = o.fraction ?? 0.1
  if (!(fraction > 0 && fraction <= 1))
    fail(`${prefix}heuristic.fraction`, `must be in (0, 1], got ${String(fraction)}`)
  return { fraction, max: millis(`${prefix}heuristic.max`, o.max, false) ?? 24 * 60 * 60 * 1000 }
}

const resolvePolicy = (
  prefix: string,
  options: PolicyOptions,
  base: RoutePolicy | undefined,
  targets: ReadonlyArray<string>
): RoutePolicy => {
  const ttl = millis(`${prefix}ttl`, options.ttl, false)
  const staleFor = millis(`${prefix}staleFor`, options.staleFor, true)
  const swr = millis(`${prefix}staleWhileRevalidate`, options.staleWhileRevalidate, true)
  const sie = millis(`${prefix}staleIfError`, options.staleIfError, true)
  const negativeTtl = millis(`${prefix}negativeTtl`, options.negativeTtl, true)
  if (options.vary !== undefined) {
    for (const name of options.vary) {
      if (typeof name !== "string" || !headerName.test(name))
        fail(`${prefix}vary`, `has an invalid header name: ${name}`)
    }
  }
  if (options.user !== undefined && typeof options.user !== "function") {
    fail(`${prefix}user`, "must be a function (request) => string | undefined")
  }
  statusList(`${prefix}statuses`, options.statuses)
  statusList(`${prefix}refuseStatuses`, options.refuseStatuses)
  return {
    ttl: ttl ?? base?.ttl,
    staleWhileRevalidate: swr ?? staleFor ?? base?.staleWhileRevalidate ?? 0,
    staleIfError: sie ?? staleFor ?? base?.staleIfError ?? 0,
    statuses: options.statuses !== undefined ? new Set(options.statuses) : (base?.statuses ?? new Set(defaultStatuses)),
    vary:
      options.vary !== undefined ? [...new Set(options.vary.map((n) => n.toLowerCase()))].sort() : (base?.vary ?? []),
    user: options.user ?? base?.user,
    negativeTtl: negativeTtl ?? base?.negativeTtl ?? 10_000,
    refuse: options.refuseStatuses !== undefined ? new Set(options.refuseStatuses) : base?.refuse,
    heuristic: options.heuristic !== undefined ? resolveHeuristic(prefix, options.heuristic) : base?.heuristic,
    targets
  }
}

export const resolve = (options: Options | undefined): Config => {
  const o = options ?? {}
  const maxTtl = millis("maxTtl", o.maxTtl, false) ?? 60 * 60 * 1000
  const maxBodyBytes = o.maxBodyBytes ?? 512 * 1024
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 0) {
    fail("maxBodyBytes", `must be a non-negative integer, got ${String(o.maxBodyBytes)}`)
  }
  const etag = o.etag ?? "strong"
  if (etag !== "strong" && etag !== "weak" && etag !== false) fail("etag", `must be "strong", "weak" or false`)
  const targetedFields = o.targetedFields ?? ["CDN-Cache-Control"]
  for (const name of targetedFields) {
    if (typeof name !== "string" || !headerName.test(name))
      fail("targetedFields", `has an invalid header name: ${name}`)
  }
  const targets = targetedFields.map((name) => name.toLowerCase())
  const requestDirectives = o.requestDirectives ?? "ignore"
  if (requestDirectives !== "ignore" && requestDirectives !== "freshness" && requestDirectives !== "all") {
    fail("requestDirectives", `must be "ignore", "freshness" or "all", got ${String(requestDirectives)}`)
  }
  const policy = resolvePolicy("", o, undefined, targets)
  let routes: Config["routes"]
  if (o.routes !== undefined) {
    routes = FindMyWay.make<RoutePolicy | false>()
    for (const [pattern, route] of Object.entries(o.routes)) {
      if (!(pattern === "*" || pattern.startsWith("/")))
        fail("routes", `keys must be paths starting with "/", got ${pattern}`)
      const resolved = route === false ? false : resolvePolicy(`routes["${pattern}"].`, route, policy, targets)
      try {
        routes.on("GET", pattern as FindMyWay.PathInput, resolved)
      } catch (cause) {
        fail("routes", `has an invalid path ${pattern}: ${String(cause)}`)
      }
    }
  }
  return {
    keyspace: keyspaceFor(o.name ?? "http", maxTtl),
    maxTtl,
    maxBodyBytes,
    etag,
    invalidateOnUnsafe: o.invalidateOnUnsafe ?? true,
    router: {
      ignoreTrailingSlash: o.router?.ignoreTrailingSlash ?? true,
      ignoreDuplicateSlashes: o.router?.ignoreDuplicateSlashes ?? true
    },
    policy,
    routes,
    loadWait: millis("loadWait", o.loadWait, false) ?? 10_000,
    maxEntries: positiveInt("HttpCache", "maxEntries", o.maxEntries, 1_000),
    maxBytes: positiveInt("HttpCache", "maxBytes", o.maxBytes, 32 * 1024 * 1024),
    advertise: o.advertise ?? false,
    dropped: o.forwardTargeted === false ? new Set(targets) : new Set(),
    requestDirectives
  }
}

// ---------------------------------------------------------------------------
// The stored response
// ---------------------------------------------------------------------------

/** A stored response: what was received, and its HTTP timeline. */
export const ResponseEntry = Schema.Struct({
  status: Schema.Number,
  /** The header fields as received (RFC 9111 §3.1), less hop-by-hop ones, `Age` and `Content-Length`; `Date` always. */
  headers: Schema.Array(Schema.Tuple([Schema.String, Schema.String])),
  body: Schema.Uint8Array,
  etag: Schema.String,
  /** When cachet received the response (epoch ms): `response_time` of RFC 9111 §4.2.3. */
  date: Schema.Number,
  /** Its `corrected_initial_age` in ms (§4.2.3): current age = age + (now - date). */
  age: Schema.Number,
  /** Fresh until then: `date` + freshness lifetime - `age`. */
  freshUntil: Schema.Number,
  /** Served stale with a background revalidation until then. */
  swrUntil: Schema.Number,
  /** Served stale when the origin fails (5xx, error) until then. */
  sieUntil: Schema.Number,
  /** Never used stale without a successful revalidation (no-cache, must-revalidate, proxy-revalidate, s-maxage). */
  revalidate: Schema.Boolean,
  /** Lowercase names of the response's `Vary`, and digests of the request's values of them. */
  vary: Schema.Array(Schema.String),
  varyValues: Schema.Array(Schema.NullOr(Schema.String)),
  /** `public` or `s-maxage`: may answer requests that carry credentials. */
  shared: Schema.Boolean,
  /** The normalised path, for invalidation. */
  path: Schema.String
})

/** The type of {@link ResponseEntry}. */
export type ResponseEntry = typeof ResponseEntry.Type

const registry = new Map<string, Keyspace<{ readonly key: string }, ResponseEntry>>()

/** The keyspace named `name`: the one in use, or a new one with `maxTtl` (default 1 hour). */
export const keyspaceNamed = (
  name: string,
  maxTtl: Duration.Input | undefined
): Keyspace<{ readonly key: string }, ResponseEntry> => {
  const existing = registry.get(name)
  if (existing !== undefined && maxTtl === undefined) return existing
  return keyspaceFor(name, millis("maxTtl", maxTtl, false) ?? 60 * 60 * 1000)
}

/**
 * The tag of every entry of a path (as the router matches it, lower-cased:
 * see `handlerTarget`). Long paths are hashed to keep tags short.
 */
const pathTag = (path: string): string =>
  path.length <= 400 ? `http:${path}` : `http:#${createHash("sha256").update(path).digest("base64url")}`

/**
 * How long a path invalidation must be remembered: the longest an HTTP entry
 * lives (the largest `maxTtl` in the process), not the runtime's day-long
 * tag retention, so that invalidations of random paths cannot pile up.
 */
const tagRetention = (): number => {
  let longest = 0
  for (const keyspace of registry.values()) longest = Math.max(longest, keyspace.ttl)
  return longest === 0 ? 60 * 60 * 1000 : longest
}

/** A digest of a credential for a key: the key identifies it without holding it. */
const digest = (value: string): string => createHash("sha256").update(value).digest("base64url")

/**
 * The keyspace of stored responses named `name`. One object per name in the
 * process (the runtime refuses two keyspaces with one name); its ttl is the
 * longest time an entry is kept (`maxTtl`).
 */
const keyspaceFor = (name: string, maxTtl: number): Keyspace<{ readonly key: string }, ResponseEntry> => {
  const existing = registry.get(name)
  if (existing !== undefined) {
    if (existing.ttl !== maxTtl) {
      fail(
        "maxTtl",
        `differs between two HttpCache middlewares named ${JSON.stringify(name)} (${existing.ttl} ms and ${maxTtl} ms): give them different names or the same maxTtl`
      )
    }
    return existing
  }
  let keyspace: Keyspace<{ readonly key: string }, ResponseEntry>
  try {
    keyspace = KeyspaceModule.make({
      name,
      key: (params: { readonly key: string }) => params.key,
      value: ResponseEntry,
      ttl: maxTtl,
      tags: (_params, entry) => [pathTag(entry.path)]
    })
  } catch (cause) {
    return fail("name", String(cause instanceof Error ? cause.message : cause))
  }
  registry.set(name, keyspace)
  return keyspace
}

// ---------------------------------------------------------------------------
// Responses to and from entries
// ---------------------------------------------------------------------------

// Hop-by-hop fields (RFC 9110 §7.6.1) and fields this cache sets itself.
const unstored = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "set-cookie",
  "age",
  "x-cache",
  "content-length"
])

// What a 304 to the client carries (RFC 9110 §15.4.5), plus Age and X-Cache.
const notModifiedFields = [
  "cache-control",
  "content-location",
  "date",
  "etag",
  "expires",
  "vary",
  "last-modified",
  "age",
  "x-cache"
]

// The client's own validators are answered by the cache from the stored
// response; the handler gets the cache's (or none, on a first load).
const conditionalFields = ["if-none-match", "if-modified-since"]

const encoder = new TextEncoder()

/** The body as bytes, or undefined when it is streamed (not storable). */
const bodyBytes = (body: HttpBody.HttpBody): Uint8Array | undefined => {
  switch (body._tag) {
    case "Empty":
      return new Uint8Array(0)
    case "Uint8Array":
      return body.body
    case "Raw": {
      const raw = body.body
      if (typeof raw === "string") return encoder.encode(raw)
      if (raw instanceof Uint8Array) return raw
      if (raw instanceof ArrayBuffer) return new Uint8Array(raw)
      return undefined
    }
    default:
      return undefined
  }
}

const contentTypeOf = (response: HttpServerResponse.HttpServerResponse): string | undefined =>
  response.headers["content-type"] ??
  (response.body._tag === "Uint8Array" || response.body._tag === "Raw" ? response.body.contentType : undefined)

/** A strong entity-tag from the representation (content type and bytes). */
const hashEtag = (contentType: string | undefined, body: Uint8Array, weak: boolean): string => {
  const hash = createHash("sha256")
    .update(contentType ?? "")
    .update("\0")
    .update(body)
    .digest("base64url")
    .slice(0, 27)
  return weak ? `W/"${hash}"` : `"${hash}"`
}

export const setsCookie = (response: HttpServerResponse.HttpServerResponse): boolean =>
  !Cookies.isEmpty(response.cookies) || response.headers["set-cookie"] !== undefined

/** A request header's value as it enters a key or an entry: a digest, never the value (it may be a credential). */
const headerDigest = (request: HttpServerRequest.HttpServerRequest, name: string): string | null => {
  const value = request.headers[name]
  return value === undefined ? null : digest(`${name}\0${value.trim()}`)
}

/** Whether a 304 answers `request` for a representation with this status and validators. */
const notModified = (
  request: HttpServerRequest.HttpServerRequest,
  status: number,
  etag: string | undefined,
  lastModified: string | undefined
): boolean => {
  if (status !== 200) return false
  const ifNoneMatch = request.headers["if-none-match"]
  if (ifNoneMatch !== undefined) return noneMatch(ifNoneMatch, etag)
  const since = request.headers["if-modified-since"]
  if (since === undefined || lastModified === undefined) return false
  const sinceAt = parseHttpDate(since)
  const modifiedAt = parseHttpDate(lastModified)
  return sinceAt !== undefined && modifiedAt !== undefined && modifiedAt <= sinceAt
}

const notModifiedResponse = (headers: Headers.Headers): HttpServerResponse.HttpServerResponse => {
  const kept: Record<string, string> = {}
  for (const name of notModifiedFields) {
    const value = headers[name]
    if (value !== undefined) kept[name] = value
  }
  return HttpServerResponse.empty({ status: 304, headers: kept })
}

/** The current age of an entry in ms (RFC 9111 §4.2.3). */
const currentAge = (entry: ResponseEntry, now: number): number => entry.age + Math.max(0, now - entry.date)

/** How the answer was made, for `X-Cache`. */
type Served = "HIT" | "STALE" | "MISS" | "REVALIDATED"

/**
 * The response for an entry, with its stored `Date` and an `Age` equal to
 * its current age (RFC 9111 §4, §5.1; on a MISS only when the response
 * arrived aged); 304 when the request's validators match.
 */
const respond = (
  request: HttpServerRequest.HttpServerRequest,
  entry: ResponseEntry,
  xCache: Served,
  now: number
): HttpServerResponse.HttpServerResponse => {
  const record: Record<string, string> = {}
  for (const [name, value] of entry.headers) record[name] = value
  if (entry.etag !== "") record["etag"] = entry.etag
  record["x-cache"] = xCache
  const age = Math.floor(currentAge(entry, now) / 1000)
  if (xCache !== "MISS" || age > 0) record["age"] = String(age)
  const headers = Headers.fromInput(record)
  if (notModified(request, entry.status, headers["etag"], headers["last-modified"])) return notModifiedResponse(headers)
  if (entry.body.length === 0 && headers["content-type"] === undefined) {
    return HttpServerResponse.empty({ status: entry.status, headers })
  }
  return HttpServerResponse.uint8Array(entry.body, { status: entry.status, headers })
}

const withXCache = (
  response: HttpServerResponse.HttpServerResponse,
  value: string
): HttpServerResponse.HttpServerResponse => HttpServerResponse.setHeader(response, "x-cache", value)

/** What an entry is built from: a handler's response, or a stored one with a 304's fields. */
interface Upstream {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  /** Undefined when streamed. */
  readonly body: Uint8Array | undefined
  readonly contentType: string | undefined
  readonly setsCookie: boolean
}

const upstreamOf = (response: HttpServerResponse.HttpServerResponse): Upstream => ({
  status: response.status,
  headers: response.headers,
  body: bodyBytes(response.body),
  contentType: contentTypeOf(response),
  setsCookie: setsCookie(response)
})

/**
 * A stored response's header fields updated from a 304 or a HEAD response
 * (RFC 9111 §4.3.4, §4.3.5): each field the update carries replaces the
 * stored one, except `Content-Length` (and the fields never stored).
 */
const updatedFields = (
  entry: ResponseEntry,
  update: Readonly<Record<string, string | undefined>>
): Record<string, string | undefined> => {
  const record: Record<string, string | undefined> = {}
  for (const [name, value] of entry.headers) record[name] = value
  if (entry.etag !== "") record["etag"] = entry.etag
  for (const name of Object.keys(update)) {
    if (unstored.has(name) && name !== "age") continue
    record[name] = update[name]
  }
  return record
}

/** Whether a response to a conditional or HEAD request describes the stored representation (§4.3.4). */
const sameRepresentation = (entry: ResponseEntry, headers: Readonly<Record<string, string | undefined>>): boolean => {
  const etag = headers["etag"]
  if (etag !== undefined) return entry.etag !== "" && noneMatch(etag, entry.etag)
  const lastModified = headers["last-modified"]
  if (lastModified === undefined) return true
  const stored = entry.headers.find(([name]) => name === "last-modified")?.[1]
  return stored === lastModified
}

/** The request the handler gets: the client's validators replaced by the stored entry's (or none). */
const handlerRequest = (
  request: HttpServerRequest.HttpServerRequest,
  stored: ResponseEntry | undefined
): HttpServerRequest.HttpServerRequest => {
  let headers = request.headers
  let changed = false
  for (const name of conditionalFields) {
    if (headers[name] !== undefined) {
      headers = Headers.remove(headers, name)
      changed = true
    }
  }
  if (stored !== undefined) {
    if (stored.etag !== "") {
      headers = Headers.set(headers, "if-none-match", stored.etag)
      changed = true
    }
    const lastModified = stored.headers.find(([name]) => name === "last-modified")?.[1]
    if (lastModified !== undefined) {
      headers = Headers.set(headers, "if-modified-since", lastModified)
      changed = true
    }
  }
  return changed ? request.modify({ headers }) : request
}

// ---------------------------------------------------------------------------
// The budget
// ---------------------------------------------------------------------------

/** The bytes an entry holds, roughly: body, headers, and a fixed overhead for the rest. */
const entrySize = (entry: ResponseEntry): number => {
  let size = entry.body.length + 256 + entry.etag.length + entry.path.length
  for (const [name, value] of entry.headers) size += name.length + value.length + 16
  return size
}

/**
 * The responses one middleware stored from this process, least recently
 * used first. HTTP entries share the store with data: without their own
 * bound, distinct URLs (`?cb=1`, `?cb=2`, ...) would fill memory and evict
 * data entries. Past `maxEntries` or `maxBytes` the least recently used are
 * deleted from the store.
 */
class Budget {
  readonly sizes = new Map<string, number>()
  bytes = 0
  evictions = 0
  readonly maxEntries: number
  readonly maxBytes: number
  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
  }
  touch(key: string): void {
    const size = this.sizes.get(key)
    if (size === undefined) return
    this.sizes.delete(key)
    this.sizes.set(key, size)
  }
  /** Records `key`; returns the keys to delete to stay inside the budget, if any. */
  add(key: string, size: number): Array<string> | undefined {
    const before = this.sizes.get(key)
    if (before !== undefined) {
      this.sizes.delete(key)
      this.bytes -= before
    }
    this.sizes.set(key, size)
    this.bytes += size
    let evicted: Array<string> | undefined
    while (this.sizes.size > this.maxEntries || (this.bytes > this.maxBytes && this.sizes.size > 1)) {
      const [oldest, oldSize] = this.sizes.entries().next().value as [string, number]
      if (oldest === key) break
      this.sizes.delete(oldest)
      this.bytes -= oldSize
      ;(evicted ??= []).push(oldest)
    }
    return evicted
  }
}

// ---------------------------------------------------------------------------
// The middleware
// ---------------------------------------------------------------------------

/** A loader's "this response may not be stored": it carries the response to its own request. */
class NotStorable extends Error {
  // The runtime does not count it as a load failure.
  readonly [NotStoredTypeId] = true
  readonly response: HttpServerResponse.HttpServerResponse
  readonly owner: object
  constructor(response: HttpServerResponse.HttpServerResponse, owner: object, reason: string) {
    super(`response not storable (${reason}; status ${response.status})`)
    this.name = "NotStorable"
    this.stack = `NotStorable: ${this.message}`
    this.response = response
    this.owner = owner
  }
}

// RFC 9110 §9.2.1: the only methods known to be safe. Every other one
// (WebDAV, M-SEARCH, custom verbs) invalidates its target (RFC 9111 §4.4).
const safeMethods = new Set(["GET", "HEAD", "OPTIONS", "TRACE"])

/** Runs `app` with `request` as the request in context. */
const withRequest = (app: App, request: HttpServerRequest.HttpServerRequest): App =>
  Effect.provideService(app, HttpServerRequest.HttpServerRequest, request)

// Request headers that some stacks use to build URLs or route: never cached
// under a key without them (cache poisoning). They are keyed when present.
const forwardingHeaders = [
  "forwarded",
  "x-forwarded-host",
  "x-forwarded-prefix",
  "x-forwarded-proto",
  "x-forwarded-port",
  "x-forwarded-scheme",
  "x-forwarded-server",
  "x-host",
  "x-original-url",
  "x-rewrite-url"
]

type App = Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, unknown>

/** The HTTP status a failed handler would answer with (for stale-if-error). */
const failureStatus = (cause: Cause.Cause<unknown>): Effect.Effect<number> =>
  Cause.hasInterruptsOnly(cause)
    ? Effect.succeed(0)
    : Effect.map(HttpServerError.causeResponse(cause), ([response]) => response.status)

export const make = (options: Options | undefined) => {
  const config = resolve(options)
  const keyspace = config.keyspace
  const budget = new Budget(config.maxEntries, config.maxBytes)

  /** Counts a stored response against the budget, dropping the least recently used ones over it. */
  const remember = (
    rt: RuntimeService,
    state: KeyspaceState,
    key: string,
    entry: ResponseEntry
  ): Effect.Effect<void> => {
    const evicted = budget.add(key, entrySize(entry))
    if (evicted === undefined) return Effect.void
    budget.evictions += evicted.length
    return Effect.forEach(evicted, (old) => rt.remove(state, old), { discard: true })
  }

  const policyFor = (url: string): RoutePolicy | false => {
    if (config.routes === undefined) return config.policy
    const found = config.routes.find("GET", url)
    return found === undefined ? config.policy : found.handler
  }

  const readEntry = (rt: RuntimeService, state: KeyspaceState, key: string): Effect.Effect<StoredEntry | undefined> =>
    rt.readSync !== null ? Effect.sync(() => rt.readSync!(state, key)) : Effect.orDie(rt.read(state, key, false))

  /**
   * Builds the entry of a response received at `at` for a handler run that
   * started at `requestAt`, or the reason it cannot be stored.
   */
  const toEntry = (
    request: HttpServerRequest.HttpServerRequest,
    facts: RequestFacts,
    policy: RoutePolicy,
    path: string,
    upstream: Upstream,
    requestAt: number,
    at: number
  ): ResponseEntry | string => {
    const body = upstream.body
    const ownEtag = upstream.headers["etag"]
    const validators =
      ownEtag !== undefined ||
      upstream.headers["last-modified"] !== undefined ||
      (config.etag !== false && body !== undefined)
    const decision = decide(
      facts,
      { status: upstream.status, headers: upstream.headers, setsCookie: upstream.setsCookie, validators },
      policy,
      at
    )
    if (!decision.store) return decision.reason
    if (body === undefined) return "streamed body"
    if (body.length > config.maxBodyBytes) return "body larger than maxBodyBytes"
    const headers: Array<readonly [string, string]> = []
    const connection = upstream.headers["connection"]
    const dropped =
      connection === undefined ? undefined : new Set(connection.split(",").map((name) => name.trim().toLowerCase()))
    let hasContentType = false
    let cacheControl: string | undefined
    let vary: string | undefined
    for (const name of Object.keys(upstream.headers)) {
      const value = upstream.headers[name]
      if (value === undefined || unstored.has(name) || dropped?.has(name) || name === "etag") continue
      if (config.dropped.has(name)) continue
      if (name === "cache-control") cacheControl = value
      else if (name === "vary") vary = value
      else {
        if (name === "content-type") hasContentType = true
        headers.push([name, value])
      }
    }
    if (!hasContentType && upstream.contentType !== undefined && body.length > 0) {
      headers.push(["content-type", upstream.contentType])
    }
    // A cache never changes Date (RFC 9110 §6.6.1); one without gets the
    // time it was received.
    const dateValue = parseHttpDate(upstream.headers["date"])
    if (upstream.headers["date"] === undefined) headers.push(["date", new Date(at).toUTCString()])
    // RFC 9111 §4.2.3: corrected_initial_age = max(apparent_age,
    // age_value + response_delay).
    const ageValue = parseAge(upstream.headers["age"]) ?? 0
    const apparentAge = dateValue === undefined ? 0 : Math.max(0, at - dateValue)
    const age = Math.max(apparentAge, ageValue * 1000 + Math.max(0, at - requestAt))
    const timeline = decision.timeline
    const cap = at + config.maxTtl
    const freshUntil = Math.min(at + timeline.lifetime - age, cap)
    const swrUntil = Math.min(freshUntil + timeline.staleWhileRevalidate, cap)
    const sieUntil = Math.min(freshUntil + timeline.staleIfError, cap)
    if (freshUntil <= at && swrUntil <= at && sieUntil <= at && !validators) return "already stale"
    // Cache-Control goes downstream as received. A per-user response is
    // marked private unless the handler said public or private itself; the
    // policy's freshness is advertised only when asked (`advertise`).
    const own = parseCacheControl(cacheControl)
    const parts: Array<string> = []
    if (facts.userKeyed && !own.public && !own.private) parts.push("private")
    if (cacheControl !== undefined) parts.push(cacheControl)
    if (!decision.explicit && config.advertise) {
      if (!facts.userKeyed && !own.public && !own.private) parts.push("public")
      parts.push(`max-age=${Math.ceil(timeline.lifetime / 1000)}`)
      if (timeline.staleWhileRevalidate > 0) {
        parts.push(`stale-while-revalidate=${Math.ceil(timeline.staleWhileRevalidate / 1000)}`)
      }
      if (timeline.staleIfError > 0) parts.push(`stale-if-error=${Math.ceil(timeline.staleIfError / 1000)}`)
    }
    if (parts.length > 0) headers.push(["cache-control", parts.join(", ")])
    // Vary goes out verbatim; names the policy keys on are appended.
    const extra = policy.vary.filter((name) => !decision.vary.includes(name))
    const varyOut = vary === undefined ? extra.join(", ") : extra.length === 0 ? vary : `${vary}, ${extra.join(", ")}`
    if (varyOut.length > 0) headers.push(["vary", varyOut])
    const etag = ownEtag ?? (config.etag === false ? "" : hashEtag(upstream.contentType, body, config.etag === "weak"))
    return {
      status: upstream.status,
      headers,
      body,
      etag,
      date: at,
      age,
      freshUntil,
      swrUntil,
      sieUntil,
      revalidate: decision.mustRevalidate,
      vary: decision.vary,
      varyValues: decision.vary.map((name) => headerDigest(request, name)),
      shared: decision.shared,
      path
    }
  }

  /** A stored entry updated by a 304 (or a matching HEAD response), or the reason it may no longer be stored. */
  const refreshed = (
    request: HttpServerRequest.HttpServerRequest,
    facts: RequestFacts,
    policy: RoutePolicy,
    stored: ResponseEntry,
    update: HttpServerResponse.HttpServerResponse,
    requestAt: number,
    at: number
  ): ResponseEntry | string => {
    const fields = updatedFields(stored, update.headers)
    // RFC 9110 §6.6.1: an update without Date is dated when received.
    if (update.headers["date"] === undefined) fields["date"] = new Date(at).toUTCString()
    const made = toEntry(
      request,
      facts,
      policy,
      stored.path,
      {
        status: stored.status,
        headers: fields,
        body: stored.body,
        contentType: undefined,
        setsCookie: setsCookie(update)
      },
      requestAt,
      at
    )
    // The same bytes: the answer is REVALIDATED, and the store keeps one copy.
    return typeof made === "string" ? made : { ...made, body: stored.body }
  }

  const bypass = (app: App): App => Effect.map(app, (r) => withXCache(r, "BYPASS"))

  const run = (rt: RuntimeService, request: HttpServerRequest.HttpServerRequest, app: App): App => {
    if (rt.isClosed()) return app
    const method = request.method
    // RFC 9111 §4.4: every method not known to be safe invalidates.
    if (!safeMethods.has(method)) return config.invalidateOnUnsafe ? invalidating(rt, request, app) : app
    if (method !== "GET" && method !== "HEAD") return app
    // Key, policy and invalidation path all come from the target the router
    // routes, never from a second parse of the request line (cache poisoning).
    const url = routedTarget(request.originalUrl)
    const policy = policyFor(url ?? request.url)
    if (policy === false) return app
    if (url === undefined || requestBypass(method, request.headers) !== undefined) return bypass(app)
    const target = handlerTarget(url, config.router)
    if (target === undefined) return bypass(app)
    if (policy.user === undefined) return lookup(rt, request, app, policy, target, undefined)
    return Effect.flatMap(
      Effect.suspend(() => {
        const key = policy.user!(request)
        return Effect.isEffect(key) ? key : Effect.succeed(key)
      }),
      (user: unknown) => {
        // "" (an empty session cookie) or a non-string is no user: never a
        // key that other requests with the same non-credential can share.
        const id = typeof user === "string" && user !== "" ? user : undefined
        const credentials = request.headers["authorization"] !== undefined || request.headers["cookie"] !== undefined
        // Credentials but no user: this request cannot be keyed safely.
        if (id === undefined && credentials) return bypass(app)
        return lookup(rt, request, app, policy, target, id)
      }
    )
  }

  const lookup = (
    rt: RuntimeService,
    request: HttpServerRequest.HttpServerRequest,
    app: App,
    policy: RoutePolicy,
    target: HandlerTarget,
    user: string | undefined
  ): App =>
    Effect.gen(function* () {
      const path = target.tagPath
      const state = rt.stateOf(keyspace)
      const headers = request.headers
      const method = request.method
      const credentials = headers["authorization"] !== undefined || headers["cookie"] !== undefined
      // A request with credentials and no user key may only see responses
      // stored as shared (public / s-maxage), and never joins a load.
      const sharedOnly = credentials && user === undefined
      const requestCc = parseCacheControl(headers["cache-control"])
      // Request header values enter keys and entries only as digests.
      const keyed: Array<readonly [string, string | null]> = []
      for (const name of policy.vary) keyed.push([name, headerDigest(request, name)])
      for (const name of forwardingHeaders) {
        if (headers[name] !== undefined) keyed.push([name, headerDigest(request, name)])
      }
      // Host as received and the scheme as `HttpServerRequest.toURL` derives
      // it: a handler that builds links from either must not share a key.
      const host = headers["host"] ?? ""
      const scheme = request.protocol ?? (/^https:/i.test(request.originalUrl) ? "https" : "http")
      // Per-user keys also carry a digest of Authorization, so that a user
      // function reading a cookie cannot hand one user's bearer-authenticated
      // response to another request with the same cookie.
      const auth =
        user !== undefined && headers["authorization"] !== undefined ? digest(headers["authorization"]) : null
      const userPart = user === undefined ? null : [digest(user), auth]
      const parts = (m: string): Array<unknown> => [m, scheme, host, target.path, target.query, userPart, keyed]
      const keyOf = (p: Array<unknown>): string | undefined => rt.keyOf(state, { key: JSON.stringify(p) })
      const facts: RequestFacts = { method, headers, userKeyed: user !== undefined }

      const matches = (entry: ResponseEntry): boolean => {
        if (sharedOnly && !entry.shared) return false
        for (let i = 0; i < entry.vary.length; i++) {
          if (headerDigest(request, entry.vary[i]!) !== entry.varyValues[i]) return false
        }
        return true
      }

      /** The stored response that may answer this request under `base`, and its key. */
      const find = (base: Array<unknown>) =>
        Effect.gen(function* () {
          const key0 = keyOf(base)
          if (key0 === undefined) return undefined
          const stored = yield* readEntry(rt, state, key0)
          if (stored === undefined || stored.negative) return { key: key0, entry: undefined, variantOf: undefined }
          const entry = stored.value as ResponseEntry
          if (matches(entry)) return { key: key0, entry, variantOf: undefined }
          if (entry.vary.length === 0) return { key: key0, entry: undefined, variantOf: undefined }
          // Another variant is stored under its own key.
          const key1 = keyOf([...base, entry.vary.map((name) => [name, headerDigest(request, name)])])
          if (key1 === undefined) return { key: key0, entry: undefined, variantOf: undefined }
          const variant = yield* readEntry(rt, state, key1)
          const value = variant === undefined || variant.negative ? undefined : (variant.value as ResponseEntry)
          return { key: key1, entry: value !== undefined && matches(value) ? value : undefined, variantOf: entry }
        })

      let found = yield* find(parts(method))
      if (found === undefined) return yield* bypass(app)
      // A stored GET response also answers HEAD; a HEAD response updates it (§4.3.5).
      let getKey: string | undefined
      if (method === "HEAD" && found.entry === undefined) {
        const viaGet = yield* find(parts("GET"))
        if (viaGet?.entry !== undefined) {
          getKey = viaGet.key
          found = { ...viaGet, key: found.key }
        }
      }
      const flightKey = found.key
      const candidate = found.entry
      const now = rt.clock.currentTimeMillisUnsafe()
      // Request directives (RFC 9111 §5.2.1), when the options honour them.
      const honour = config.requestDirectives
      const reload =
        honour === "all" && (requestCc.noCache || requestCc.maxAge === 0 || headers["pragma"] === "no-cache")
      if (candidate !== undefined && !reload) {
        let fresh = now < candidate.freshUntil
        if (fresh && honour !== "ignore") {
          const maxAge = requestCc.maxAge
          if (maxAge !== undefined && maxAge > 0 && currentAge(candidate, now) > maxAge * 1000) fresh = false
          const minFresh = requestCc.minFresh
          if (minFresh !== undefined && minFresh >= 0 && candidate.freshUntil - now < minFresh * 1000) fresh = false
        }
        if (fresh) {
          state.counters.hits++
          budget.touch(flightKey)
          return respond(request, candidate, "HIT", now)
        }
        const maxStale = honour === "ignore" ? undefined : requestCc.maxStale
        const staleOk =
          now < candidate.swrUntil ||
          (maxStale !== undefined &&
            maxStale >= 0 &&
            !candidate.revalidate &&
            now - candidate.freshUntil <= maxStale * 1000)
        if (staleOk && now >= candidate.freshUntil) {
          state.counters.staleHits++
          // Only a request whose response could be stored revalidates: not
          // one with credentials and no user key, nor one with no-store.
          if (!sharedOnly && !requestCc.noStore) {
            const started = rt.revalidate(
              state,
              flightKey,
              { key: "" },
              loader(rt, state, request, facts, policy, path, Effect.scoped(app) as App, {}, flightKey, true, candidate)
            )
            if (started !== undefined) yield* started
          }
          return respond(request, candidate, "STALE", now)
        }
      }
      if (requestCc.onlyIfCached) {
        state.counters.misses++
        return HttpServerResponse.empty({ status: 504, headers: { "x-cache": "MISS" } })
      }
      const staleIfError = (): ResponseEntry | undefined =>
        candidate !== undefined && rt.clock.currentTimeMillisUnsafe() < candidate.sieUntil ? candidate : undefined
      /** MISS, or REVALIDATED when the stored bytes were confirmed. */
      const served = (entry: ResponseEntry): Served =>
        candidate !== undefined && entry.body === candidate.body ? "REVALIDATED" : "MISS"

      // Requests that must not share a load: run the handler for this one.
      if (sharedOnly || requestCc.noStore) {
        state.counters.misses++
        const requestAt = rt.clock.currentTimeMillisUnsafe()
        const exit = yield* Effect.exit(withRequest(app, handlerRequest(request, undefined)))
        if (Exit.isFailure(exit)) return yield* serveStaleOrFail(rt, request, exit.cause, staleIfError)
        const response = exit.value
        const at = rt.clock.currentTimeMillisUnsafe()
        if (response.status >= 500) {
          const stale = staleIfError()
          if (stale !== undefined) return respond(request, stale, "STALE", at)
        }
        if (requestCc.noStore) return withXCache(response, "MISS")
        const made = toEntry(request, facts, policy, path, upstreamOf(response), requestAt, at)
        if (typeof made === "string") return withXCache(response, "MISS")
        const error = yield* rt.write(state, flightKey, { key: "" }, made, at, false)
        if (error === undefined) yield* remember(rt, state, flightKey, made)
        return respond(request, made, "MISS", at)
      }

      const owner = { started: false }
      const load = loader(rt, state, request, facts, policy, path, app, owner, flightKey, false, candidate)
      const flight = rt.load(
        state,
        flightKey,
        { key: "" },
        Effect.suspend(() => {
          owner.started = true
          return load
        })
      )
      // Waiting on another request's load is bounded: past `loadWait` this
      // request runs its own handler (its own load is never abandoned).
      const waited = yield* Effect.raceFirst(
        Effect.map(flight, Option.some),
        Effect.andThen(
          Effect.sleep(config.loadWait),
          Effect.suspend(() => (owner.started ? Effect.never : Effect.succeedNone))
        )
      )
      if (Option.isNone(waited)) {
        state.counters.misses++
        const own = yield* Effect.exit(withRequest(app, handlerRequest(request, undefined)))
        if (Exit.isFailure(own)) return yield* serveStaleOrFail(rt, request, own.cause, staleIfError)
        return withXCache(own.value, "MISS")
      }
      const exit = waited.value.exit as Exit.Exit<ResponseEntry, unknown>
      if (Exit.isSuccess(exit)) {
        state.counters.misses++
        const entry = exit.value
        const at = rt.clock.currentTimeMillisUnsafe()
        // A response stored from another request's load, for other values of
        // its Vary headers: not ours to use.
        if (!matches(entry)) return yield* Effect.map(app, (r) => withXCache(r, "MISS"))
        // Store it under its own variant key too, so variants accumulate.
        if (entry.vary.length > 0 && found.variantOf === undefined) {
          const variantKey = keyOf([...parts(method), entry.vary.map((name) => [name, headerDigest(request, name)])])
          if (variantKey !== undefined && variantKey !== flightKey) {
            const error = yield* rt.write(state, variantKey, { key: "" }, entry, entry.date, false)
            if (error === undefined) yield* remember(rt, state, variantKey, entry)
          }
        }
        // A HEAD revalidated the stored GET: the GET entry gets the update.
        if (getKey !== undefined && served(entry) === "REVALIDATED") {
          const error = yield* rt.write(state, getKey, { key: "" }, entry, entry.date, false)
          if (error === undefined) yield* remember(rt, state, getKey, entry)
        }
        return respond(request, entry, served(entry), at)
      }
      const failure = Cause.findErrorOption(exit.cause)
      if (failure._tag === "Some" && failure.value instanceof NotStorable) {
        const notStorable = failure.value
        state.counters.misses++
        let response: HttpServerResponse.HttpServerResponse
        if (notStorable.owner === owner) {
          // Not a loader failure: the response was fine, just not storable
          // (the runtime did not count it as one: NotStoredTypeId).
          response = notStorable.response
        } else {
          // Another request's response that may not be shared: run ours.
          const own = yield* Effect.exit(withRequest(app, handlerRequest(request, undefined)))
          if (Exit.isFailure(own)) return yield* serveStaleOrFail(rt, request, own.cause, staleIfError)
          response = own.value
        }
        if (response.status >= 500) {
          const stale = staleIfError()
          if (stale !== undefined) return respond(request, stale, "STALE", rt.clock.currentTimeMillisUnsafe())
        }
        return withXCache(response, "MISS")
      }
      state.counters.misses++
      return yield* serveStaleOrFail(rt, request, exit.cause, staleIfError)
    }) as App

  const serveStaleOrFail = (
    rt: RuntimeService,
    request: HttpServerRequest.HttpServerRequest,
    cause: Cause.Cause<unknown>,
    staleIfError: () => ResponseEntry | undefined
  ): App =>
    Effect.flatMap(failureStatus(cause), (status) => {
      const stale = status >= 500 ? staleIfError() : undefined
      return stale === undefined
        ? Effect.failCause(cause)
        : Effect.succeed(respond(request, stale, "STALE", rt.clock.currentTimeMillisUnsafe()))
    })

  /**
   * Runs the handler once for a key and builds its entry. With a `stored`
   * entry this is a revalidation (RFC 9111 §4.3): the handler gets the
   * entry's validators, and a 304 (or a 200 with the same ETag, or a HEAD
   * response that matches) updates the stored entry instead of replacing it.
   */
  const loader = (
    rt: RuntimeService,
    state: KeyspaceState,
    request: HttpServerRequest.HttpServerRequest,
    facts: RequestFacts,
    policy: RoutePolicy,
    path: string,
    app: App,
    owner: object,
    key: string,
    background: boolean,
    stored: ResponseEntry | undefined
  ): Effect.Effect<ResponseEntry, unknown, unknown> =>
    Effect.suspend(() => {
      const requestAt = rt.clock.currentTimeMillisUnsafe()
      const ask = Effect.flatMap(withRequest(app, handlerRequest(request, stored)), (response) =>
        // A 304 that does not confirm the stored response (another ETag, or
        // none stored): ask again without validators (RFC 9111 §4.3.3).
        response.status === 304 && (stored === undefined || !sameRepresentation(stored, response.headers))
          ? withRequest(app, handlerRequest(request, undefined))
          : Effect.succeed(response)
      )
      return Effect.flatMap(Effect.exit(ask), (exit) => {
        if (Exit.isFailure(exit)) return Effect.failCause(exit.cause)
        const response = exit.value
        const at = rt.clock.currentTimeMillisUnsafe()
        let made: ResponseEntry | string
        if (
          stored !== undefined &&
          (response.status === 304 || (request.method === "HEAD" && response.status === stored.status)) &&
          sameRepresentation(stored, response.headers)
        ) {
          made = refreshed(request, facts, policy, stored, response, requestAt, at)
          if (typeof made === "string") {
            // The update forbids storing: this answer is the stored body with
            // the new fields, once; the stored entry goes.
            const fields = updatedFields(stored, response.headers)
            const once = HttpServerResponse.uint8Array(stored.body, {
              status: stored.status,
              headers: Headers.fromInput(fields as Record<string, string>)
            })
            return Effect.andThen(rt.remove(state, key), Effect.fail(new NotStorable(once, owner, made)))
          }
        } else {
          made = toEntry(request, facts, policy, path, upstreamOf(response), requestAt, at)
          // The same representation again: keep the stored bytes (REVALIDATED).
          if (typeof made !== "string" && stored !== undefined && made.etag !== "" && made.etag === stored.etag) {
            made = { ...made, body: stored.body }
          }
        }
        if (typeof made !== "string") return Effect.as(remember(rt, state, key, made), made)
        const failure = Effect.fail(new NotStorable(response, owner, made))
        // A revalidation the origin answered, but with a response that may no
        // longer be stored: stop serving the old one.
        return (background || stored !== undefined) && response.status < 500
          ? Effect.andThen(rt.remove(state, key), failure)
          : failure
      })
    })

  const invalidating = (rt: RuntimeService, request: HttpServerRequest.HttpServerRequest, app: App): App =>
    Effect.tap(app, (response) => {
      if (response.status < 200 || response.status >= 400) return Effect.void
      const paths = new Set<string>()
      const url = routedTarget(request.originalUrl) ?? request.url
      const target = handlerTarget(url, config.router)
      if (target !== undefined) paths.add(target.tagPath)
      const host = (request.headers["host"] ?? "").toLowerCase()
      for (const name of ["location", "content-location"]) {
        const value = response.headers[name]
        if (value === undefined) continue
        const sameOrigin = sameOriginPath(value, host)
        if (sameOrigin === undefined) continue
        const other = handlerTarget(sameOrigin, config.router)
        if (other !== undefined) paths.add(other.tagPath)
      }
      return Effect.forEach(paths, (path) => invalidatePath(rt, path), { discard: true })
    })

  return { config, run }
}

/** A path as its invalidation tag names it (normalised as effect's router does by default, lower-cased), or undefined when it cannot be routed. */
export const normalize = (path: string): string | undefined =>
  handlerTarget(path, { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true })?.tagPath

/**
 * Invalidates every stored response of a path (normalised). When the store
 * does not take it, it is applied in this process at once and journalled
 * (replayed when the store answers); the store's error is returned.
 */
export const invalidatePath = (rt: RuntimeService, path: string): Effect.Effect<CacheStoreError | undefined> => {
  const tag = pathTag(path)
  const retainMillis = tagRetention()
  return rt.invalidateTag(tag, retainMillis).pipe(
    Effect.as(undefined),
    Effect.catch((error) =>
      rt
        .storeFailed(undefined, "tags", error)
        .pipe(Effect.andThen(rt.journal({ _tag: "Tag", tag, retainMillis })), Effect.as(error))
    )
  )
}

/** The path of a `Location` on the same host (relative or absolute), else undefined (RFC 9111 §4.4). */
const sameOriginPath = (location: string, host: string): string | undefined => {
  const value = location.trim()
  if (value.startsWith("//")) return undefined
  if (value.startsWith("/")) return value
  try {
    const url = new URL(value)
    return url.host.toLowerCase() === host ? url.pathname + url.search : undefined
  } catch {
    return undefined
  }
}

/** Reads the request and the Cachet runtime from context and runs the cache. */
export const fromContext =
  (run: (rt: RuntimeService, request: HttpServerRequest.HttpServerRequest, app: App) => App, rt?: RuntimeService) =>
  (app: App): App =>
    Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      const runtime = rt ?? Context.getUnsafe(fiber.context, Cachet)
      return run(runtime, request, app)
    })

// ---------------------------------------------------------------------------
// HttpCache.etag
// ---------------------------------------------------------------------------

/** Conditional GETs for one handler: an ETag from the body, and 304 when it matches. */
export const etag =
  (weak: boolean) =>
  (app: App): App =>
    Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      if (request.method !== "GET" && request.method !== "HEAD") return app
      return Effect.map(app, (response) => {
        if (response.status !== 200) return response
        let tag = response.headers["etag"]
        if (tag === undefined) {
          const body = bodyBytes(response.body)
          if (body === undefined) return response
          tag = hashEtag(contentTypeOf(response), body, weak)
          response = HttpServerResponse.setHeader(response, "etag", tag)
        }
        if (notModified(request, response.status, tag, response.headers["last-modified"])) {
          return notModifiedResponse(response.headers)
        }
        return response
      })
    })
