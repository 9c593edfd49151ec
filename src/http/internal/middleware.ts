/**
 * The HTTP cache over the Cachet runtime: lookups, single-flight loads,
 * background revalidation, conditional answers and invalidation. Options,
 * entries and responses have files of their own; public signatures and docs
 * live in `HttpCache.ts`.
 *
 * @internal
 */
import { Cause, Context, Effect, Exit, Option } from "effect"
import { Headers, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { CacheStoreError } from "../../CacheError.ts"
import type { StoredEntry } from "../../CacheStore.ts"
import { Cachet, type KeyspaceState, NotStoredTypeId, type RuntimeService } from "../../internal/runtime/service.ts"
import { Budget, entrySize } from "./budget.ts"
import { digest, pathTag, type ResponseEntry, tagRetention } from "./entry.ts"
import { parseCacheControl } from "./headers.ts"
import { type Options, type RoutePolicy, resolve } from "./options.ts"
import { type HandlerTarget, handlerTarget, type RequestFacts, requestBypass, routedTarget } from "./policy.ts"
import {
  bodyBytes,
  contentTypeOf,
  currentAge,
  handlerRequest,
  hashEtag,
  headerDigest,
  notModified,
  notModifiedResponse,
  refreshed,
  respond,
  type Served,
  sameRepresentation,
  toEntry,
  updatedFields,
  upstreamOf,
  withXCache
} from "./response.ts"

export { keyspaceNamed, ResponseEntry } from "./entry.ts"
export type { Options, PolicyOptions, UserKey } from "./options.ts"
export { resolve } from "./options.ts"
export { setsCookie } from "./response.ts"

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
    // Counted as the keyspace's deletes by the runtime.
    if (evicted === undefined) return Effect.void
    return Effect.forEach(evicted, (old) => rt.remove(state, old), { discard: true })
  }

  const policyFor = (url: string): RoutePolicy | false => {
    if (config.routes === undefined) return config.policy
    const found = config.routes.find("GET", url)
    return found === undefined ? config.policy : found.handler
  }

  const readEntry = (rt: RuntimeService, state: KeyspaceState, key: string): Effect.Effect<StoredEntry | undefined> =>
    rt.readSync !== null ? Effect.sync(() => rt.readSync!(state, key)) : Effect.orDie(rt.read(state, key, false))

  const bypass = (app: App): App => Effect.map(app, (r) => withXCache(r, "BYPASS"))

  const run = (rt: RuntimeService, request: HttpServerRequest.HttpServerRequest, app: App): App => {
    if (rt.closed) return app
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
          rt.observe.emitKey("Hit", state, flightKey)
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
          rt.observe.emitKey("Stale", state, flightKey)
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
        rt.observe.emitKey("Miss", state, flightKey)
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
        rt.observe.emitKey("Miss", state, flightKey)
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
        const made = toEntry(config, request, facts, policy, path, upstreamOf(response), requestAt, at)
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
        rt.observe.emitKey("Miss", state, flightKey)
        const own = yield* Effect.exit(withRequest(app, handlerRequest(request, undefined)))
        if (Exit.isFailure(own)) return yield* serveStaleOrFail(rt, request, own.cause, staleIfError)
        return withXCache(own.value, "MISS")
      }
      const exit = waited.value.exit as Exit.Exit<ResponseEntry, unknown>
      if (Exit.isSuccess(exit)) {
        state.counters.misses++
        rt.observe.emitKey("Miss", state, flightKey)
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
        rt.observe.emitKey("Miss", state, flightKey)
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
      rt.observe.emitKey("Miss", state, flightKey)
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
          made = refreshed(config, request, facts, policy, stored, response, requestAt, at)
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
          made = toEntry(config, request, facts, policy, path, upstreamOf(response), requestAt, at)
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
