/**
 * The HTTP cache's options: their types, their validation (at the call,
 * naming the option), and the resolved configuration `make` runs on.
 *
 * @internal
 */
import type { Duration, Effect } from "effect"
import { FindMyWay, type HttpServerRequest } from "effect/http"
import { millisOption } from "../../internal/duration.ts"
import { positiveInt } from "../../internal/numbers.ts"
import type { Keyspace } from "../../Keyspace.ts"
import { keyspaceFor, type ResponseEntry } from "./entry.ts"
import { defaultStatuses, type ResolvedPolicy, type RouterNormalisation } from "./policy.ts"

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
export interface RoutePolicy extends ResolvedPolicy {
  readonly vary: ReadonlyArray<string>
  readonly user: UserKey | undefined
}

export interface Config {
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

export const millis = (option: string, input: Duration.Input | undefined, allowZero: boolean): number | undefined =>
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
