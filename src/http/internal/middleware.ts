/**
 * The HTTP cache over the Cachet runtime: keys, lookups, single-flight
 * loads, background revalidation, conditional answers and invalidation.
 * Public signatures and docs live in `HttpCache.ts`.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { Cause, Context, Duration, Effect, Exit, Schema } from "effect"
import {
  Cookies,
  FindMyWay,
  Headers,
  type HttpBody,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import type { StoredEntry } from "../../CacheStore.ts"
import {
  CachetService,
  type KeyspaceState,
  NotStoredTypeId,
  type RuntimeService
} from "../../internal/runtime/service.ts"
import type { Keyspace } from "../../Keyspace.ts"
import * as KeyspaceModule from "../../Keyspace.ts"
import { noneMatch, parseCacheControl, parseHttpDate } from "./headers.ts"
import {
  decide,
  defaultStatuses,
  normalizeTarget,
  originForm,
  type RequestFacts,
  type ResolvedPolicy,
  type RouterNormalisation,
  requestBypass
} from "./policy.ts"

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/** A per-user key: a string keys the response to that user; undefined means "no user". */
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
}

const fail = (option: string, message: string): never => {
  throw new Error(`cachet: HttpCache option "${option}" ${message}`)
}

const millis = (option: string, input: Duration.Input | undefined, allowZero: boolean): number | undefined => {
  if (input === undefined) return undefined
  let ms: number
  try {
    ms = Duration.toMillis(Duration.fromInputUnsafe(input))
  } catch {
    return fail(option, `is not a valid duration: ${String(input)}`)
  }
  if (!Number.isFinite(ms) || ms < 0 || (!allowZero && ms === 0)) {
    return fail(option, `must be a finite duration${allowZero ? "" : " above zero"}, got ${String(input)}`)
  }
  return ms
}

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

const resolvePolicy = (prefix: string, options: PolicyOptions, base: RoutePolicy | undefined): RoutePolicy => {
  const ttl = millis(`${prefix}ttl`, options.ttl, false)
  const staleFor = millis(`${prefix}staleFor`, options.staleFor, true)
  const swr = millis(`${prefix}staleWhileRevalidate`, options.staleWhileRevalidate, true)
  const sie = millis(`${prefix}staleIfError`, options.staleIfError, true)
  if (options.vary !== undefined) {
    for (const name of options.vary) {
      if (typeof name !== "string" || !headerName.test(name))
        fail(`${prefix}vary`, `has an invalid header name: ${name}`)
    }
  }
  if (options.user !== undefined && typeof options.user !== "function") {
    fail(`${prefix}user`, "must be a function (request) => string | undefined")
  }
  if (options.statuses !== undefined) {
    for (const status of options.statuses) {
      if (!Number.isInteger(status) || status < 200 || status > 599 || status === 206 || status === 304) {
        fail(`${prefix}statuses`, `must hold final statuses other than 206 and 304, got ${String(status)}`)
      }
    }
  }
  return {
    ttl: ttl ?? base?.ttl,
    staleWhileRevalidate: swr ?? staleFor ?? base?.staleWhileRevalidate ?? 0,
    staleIfError: sie ?? staleFor ?? base?.staleIfError ?? 0,
    statuses: options.statuses !== undefined ? new Set(options.statuses) : (base?.statuses ?? new Set(defaultStatuses)),
    vary:
      options.vary !== undefined ? [...new Set(options.vary.map((n) => n.toLowerCase()))].sort() : (base?.vary ?? []),
    user: options.user ?? base?.user
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
  const policy = resolvePolicy("", o, undefined)
  let routes: Config["routes"]
  if (o.routes !== undefined) {
    routes = FindMyWay.make<RoutePolicy | false>()
    for (const [pattern, route] of Object.entries(o.routes)) {
      if (!(pattern === "*" || pattern.startsWith("/")))
        fail("routes", `keys must be paths starting with "/", got ${pattern}`)
      const resolved = route === false ? false : resolvePolicy(`routes["${pattern}"].`, route, policy)
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
    routes
  }
}

// ---------------------------------------------------------------------------
// The stored response
// ---------------------------------------------------------------------------

/** A stored response: what was sent, and its HTTP timeline. */
export const ResponseEntry = Schema.Struct({
  status: Schema.Number,
  headers: Schema.Array(Schema.Tuple([Schema.String, Schema.String])),
  body: Schema.Uint8Array,
  etag: Schema.String,
  /** When the response was generated (epoch ms). */
  date: Schema.Number,
  freshUntil: Schema.Number,
  /** Served stale with a background revalidation until then. */
  swrUntil: Schema.Number,
  /** Served stale when the origin fails (5xx, error) until then. */
  sieUntil: Schema.Number,
  /** Lowercase names of the response's `Vary`, and the request's values of them. */
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

/** The tag of every entry of a path. Long paths are hashed to keep tags short. */
const pathTag = (path: string): string =>
  path.length <= 400 ? `http:${path}` : `http:#${createHash("sha256").update(path).digest("base64url")}`

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
  "content-length",
  "date"
])

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

const headerValue = (request: HttpServerRequest.HttpServerRequest, name: string): string | null => {
  const value = request.headers[name]
  return value === undefined ? null : value.trim()
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

/** The response for an entry, as HIT/STALE (with Age) or MISS; 304 when the request's validators match. */
const respond = (
  request: HttpServerRequest.HttpServerRequest,
  entry: ResponseEntry,
  xCache: "HIT" | "STALE" | "MISS",
  now: number
): HttpServerResponse.HttpServerResponse => {
  const record: Record<string, string> = {}
  for (const [name, value] of entry.headers) record[name] = value
  if (entry.etag !== "") record["etag"] = entry.etag
  record["x-cache"] = xCache
  if (xCache !== "MISS") record["age"] = String(Math.max(0, Math.floor((now - entry.date) / 1000)))
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

const unsafeMethods = new Set(["POST", "PUT", "PATCH", "DELETE"])

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

  const policyFor = (url: string): RoutePolicy | false => {
    if (config.routes === undefined) return config.policy
    const found = config.routes.find("GET", url)
    return found === undefined ? config.policy : found.handler
  }

  const readEntry = (rt: RuntimeService, state: KeyspaceState, key: string): Effect.Effect<StoredEntry | undefined> =>
    rt.readSync !== null ? Effect.sync(() => rt.readSync!(state, key)) : Effect.orDie(rt.read(state, key, false))

  /** Builds the entry of a response, or the reason it cannot be stored. */
  const toEntry = (
    request: HttpServerRequest.HttpServerRequest,
    facts: RequestFacts,
    policy: RoutePolicy,
    path: string,
    response: HttpServerResponse.HttpServerResponse,
    now: number
  ): ResponseEntry | string => {
    const decision = decide(
      facts,
      { status: response.status, headers: response.headers, setsCookie: setsCookie(response) },
      policy,
      now
    )
    if (!decision.store) return decision.reason
    const body = bodyBytes(response.body)
    if (body === undefined) return "streamed body"
    if (body.length > config.maxBodyBytes) return "body larger than maxBodyBytes"
    const headers: Array<readonly [string, string]> = []
    const connection = response.headers["connection"]
    const dropped =
      connection === undefined ? undefined : new Set(connection.split(",").map((name) => name.trim().toLowerCase()))
    let hasCacheControl = false
    let hasContentType = false
    for (const name of Object.keys(response.headers)) {
      if (unstored.has(name) || dropped?.has(name) || name === "vary" || name === "etag") continue
      const value = response.headers[name]!
      if (name === "cache-control") {
        hasCacheControl = true
        continue
      }
      if (name === "content-type") hasContentType = true
      headers.push([name, value])
    }
    const contentType = contentTypeOf(response)
    if (!hasContentType && contentType !== undefined && body.length > 0) headers.push(["content-type", contentType])
    const timeline = decision.timeline
    const cap = now + config.maxTtl
    const freshUntil = Math.min(now + timeline.lifetime, cap)
    const swrUntil = Math.min(freshUntil + timeline.staleWhileRevalidate, cap)
    const sieUntil = Math.min(freshUntil + timeline.staleIfError, cap)
    // Cache-Control: the response's own when it set its freshness;
    // otherwise the policy's, added to what the response said.
    const existing = hasCacheControl ? response.headers["cache-control"]! : undefined
    if (decision.explicit) {
      if (existing !== undefined) headers.push(["cache-control", existing])
    } else {
      const parts: Array<string> = []
      if (existing !== undefined) parts.push(existing)
      if (!decision.cacheControl.public && !decision.cacheControl.private) {
        parts.push(facts.userKeyed ? "private" : "public")
      }
      parts.push(`max-age=${Math.ceil(timeline.lifetime / 1000)}`)
      if (timeline.staleWhileRevalidate > 0) {
        parts.push(`stale-while-revalidate=${Math.ceil(timeline.staleWhileRevalidate / 1000)}`)
      }
      if (timeline.staleIfError > 0) parts.push(`stale-if-error=${Math.ceil(timeline.staleIfError / 1000)}`)
      headers.push(["cache-control", parts.join(", ")])
    }
    const varyOut = [...new Set([...decision.vary, ...policy.vary])]
    if (varyOut.length > 0) headers.push(["vary", varyOut.join(", ")])
    const etag =
      response.headers["etag"] ?? (config.etag === false ? "" : hashEtag(contentType, body, config.etag === "weak"))
    return {
      status: response.status,
      headers,
      body,
      etag,
      date: now,
      freshUntil,
      swrUntil,
      sieUntil,
      vary: decision.vary,
      varyValues: decision.vary.map((name) => headerValue(request, name)),
      shared: decision.shared,
      path
    }
  }

  const run = (rt: RuntimeService, request: HttpServerRequest.HttpServerRequest, app: App): App => {
    if (rt.isClosed()) return app
    const method = request.method
    if (unsafeMethods.has(method)) return config.invalidateOnUnsafe ? invalidating(rt, request, app) : app
    if (method !== "GET" && method !== "HEAD") return app
    const target0 = originForm(request.originalUrl)
    const policy = policyFor(target0)
    if (policy === false) return app
    if (requestBypass(method, request.headers) !== undefined) return Effect.map(app, (r) => withXCache(r, "BYPASS"))
    const target = normalizeTarget(request.originalUrl, config.router)
    if (target === undefined) return Effect.map(app, (r) => withXCache(r, "BYPASS"))
    if (policy.user === undefined) return lookup(rt, request, app, policy, target.path, target.query, undefined)
    return Effect.flatMap(
      Effect.suspend(() => {
        const key = policy.user!(request)
        return Effect.isEffect(key) ? key : Effect.succeed(key)
      }),
      (user) => {
        const credentials = request.headers["authorization"] !== undefined || request.headers["cookie"] !== undefined
        // Credentials but no user: this request cannot be keyed safely.
        if (user === undefined && credentials) return Effect.map(app, (r) => withXCache(r, "BYPASS"))
        return lookup(rt, request, app, policy, target.path, target.query, user)
      }
    )
  }

  const lookup = (
    rt: RuntimeService,
    request: HttpServerRequest.HttpServerRequest,
    app: App,
    policy: RoutePolicy,
    path: string,
    query: string,
    user: string | undefined
  ): App =>
    Effect.gen(function* () {
      const state = rt.stateOf(keyspace)
      const headers = request.headers
      const method = request.method
      const credentials = headers["authorization"] !== undefined || headers["cookie"] !== undefined
      // A request with credentials and no user key may only see responses
      // stored as shared (public / s-maxage), and never joins a load.
      const sharedOnly = credentials && user === undefined
      const requestCc = parseCacheControl(headers["cache-control"])
      const keyed: Array<readonly [string, string | null]> = []
      for (const name of policy.vary) keyed.push([name, headerValue(request, name)])
      for (const name of forwardingHeaders) {
        const value = headers[name]
        if (value !== undefined) keyed.push([name, value])
      }
      const host = (headers["host"] ?? "").toLowerCase()
      const parts = (m: string): Array<unknown> => [m, host, path, query, user ?? null, keyed]
      const keyOf = (p: Array<unknown>): string | undefined => rt.keyOf(state, { key: JSON.stringify(p) })
      const facts: RequestFacts = { method, headers, userKeyed: user !== undefined }

      const matches = (entry: ResponseEntry): boolean => {
        if (sharedOnly && !entry.shared) return false
        for (let i = 0; i < entry.vary.length; i++) {
          if (headerValue(request, entry.vary[i]!) !== entry.varyValues[i]) return false
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
          const key1 = keyOf([...base, entry.vary.map((name) => [name, headerValue(request, name)])])
          if (key1 === undefined) return { key: key0, entry: undefined, variantOf: undefined }
          const variant = yield* readEntry(rt, state, key1)
          const value = variant === undefined || variant.negative ? undefined : (variant.value as ResponseEntry)
          return { key: key1, entry: value !== undefined && matches(value) ? value : undefined, variantOf: entry }
        })

      let found = yield* find(parts(method))
      if (found === undefined) return yield* Effect.map(app, (r) => withXCache(r, "BYPASS"))
      // A stored GET response also answers HEAD.
      if (method === "HEAD" && found.entry === undefined) {
        const viaGet = yield* find(parts("GET"))
        if (viaGet?.entry !== undefined) found = { ...viaGet, key: found.key }
      }
      const flightKey = found.key
      const candidate = found.entry
      const now = rt.clock.currentTimeMillisUnsafe()
      if (candidate !== undefined) {
        if (now < candidate.freshUntil) {
          state.counters.hits++
          return respond(request, candidate, "HIT", now)
        }
        if (now < candidate.swrUntil) {
          state.counters.staleHits++
          // Only a request whose response could be stored revalidates: not
          // one with credentials and no user key, nor one with no-store.
          if (!sharedOnly && !requestCc.noStore) {
            const reload = rt.revalidate(
              state,
              flightKey,
              { key: "" },
              loader(rt, state, request, facts, policy, path, Effect.scoped(app) as App, {}, flightKey, true)
            )
            if (reload !== undefined) yield* reload
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

      // Requests that must not share a load: run the handler for this one.
      if (sharedOnly || requestCc.noStore) {
        state.counters.misses++
        const exit = yield* Effect.exit(app)
        if (Exit.isFailure(exit)) return yield* serveStaleOrFail(rt, request, exit.cause, staleIfError)
        const response = exit.value
        const at = rt.clock.currentTimeMillisUnsafe()
        if (response.status >= 500) {
          const stale = staleIfError()
          if (stale !== undefined) return respond(request, stale, "STALE", at)
        }
        if (requestCc.noStore) return withXCache(response, "MISS")
        const made = toEntry(request, facts, policy, path, response, at)
        if (typeof made === "string") return withXCache(response, "MISS")
        yield* rt.write(state, flightKey, { key: "" }, made, at, false)
        return respond(request, made, "MISS", at)
      }

      const owner = {}
      const result = yield* rt.load(
        state,
        flightKey,
        { key: "" },
        loader(rt, state, request, facts, policy, path, app, owner, flightKey, false)
      )
      const exit = result.exit as Exit.Exit<ResponseEntry, unknown>
      if (Exit.isSuccess(exit)) {
        state.counters.misses++
        const entry = exit.value
        const at = rt.clock.currentTimeMillisUnsafe()
        // A response stored from another request's load, for other values of
        // its Vary headers: not ours to use.
        if (!matches(entry)) return yield* Effect.map(app, (r) => withXCache(r, "MISS"))
        // Store it under its own variant key too, so variants accumulate.
        if (entry.vary.length > 0 && found.variantOf === undefined) {
          const variantKey = keyOf([...parts(method), entry.vary.map((name) => [name, headerValue(request, name)])])
          if (variantKey !== undefined && variantKey !== flightKey) {
            yield* rt.write(state, variantKey, { key: "" }, entry, entry.date, false)
          }
        }
        return respond(request, entry, "MISS", at)
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
          const own = yield* Effect.exit(app)
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
    background: boolean
  ): Effect.Effect<ResponseEntry, unknown, unknown> =>
    Effect.flatMap(Effect.exit(app), (exit) => {
      if (Exit.isFailure(exit)) return Effect.failCause(exit.cause)
      const response = exit.value
      const made = toEntry(request, facts, policy, path, response, rt.clock.currentTimeMillisUnsafe())
      if (typeof made !== "string") return Effect.succeed(made)
      const failure = Effect.fail(new NotStorable(response, owner, made))
      // A revalidation the origin answered, but with a response that may no
      // longer be stored: stop serving the old one.
      return background && response.status < 500 ? Effect.andThen(rt.remove(state, key), failure) : failure
    })

  const invalidating = (rt: RuntimeService, request: HttpServerRequest.HttpServerRequest, app: App): App =>
    Effect.tap(app, (response) => {
      if (response.status < 200 || response.status >= 400) return Effect.void
      const paths = new Set<string>()
      const target = normalizeTarget(request.originalUrl, config.router)
      if (target !== undefined) paths.add(target.path)
      const host = (request.headers["host"] ?? "").toLowerCase()
      for (const name of ["location", "content-location"]) {
        const value = response.headers[name]
        if (value === undefined) continue
        const sameOrigin = sameOriginPath(value, host)
        if (sameOrigin === undefined) continue
        const other = normalizeTarget(sameOrigin, config.router)
        if (other !== undefined) paths.add(other.path)
      }
      return Effect.forEach(paths, (path) => invalidatePath(rt, path), { discard: true })
    })

  return { config, run }
}

/** A path normalised as effect's router does by default, or undefined when it cannot be routed. */
export const normalize = (path: string): string | undefined =>
  normalizeTarget(path, { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true })?.path

/** Invalidates every stored response of a path (normalised). */
export const invalidatePath = (rt: RuntimeService, path: string): Effect.Effect<void> =>
  rt.invalidateTag(pathTag(path)).pipe(Effect.catch((error) => rt.storeFailed(undefined, "tags", error)))

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
      const runtime = rt ?? (Context.getUnsafe(fiber.context, CachetService) as RuntimeService)
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
