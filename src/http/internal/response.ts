/**
 * Responses to and from stored entries: what is stored of a response (and
 * for how long, RFC 9111 §4.2), what is sent for an entry (Age, Date, 304s),
 * and the requests a revalidation sends (§4.3).
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { Cookies, Headers, type HttpBody, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { digest, type ResponseEntry } from "./entry.ts"
import { noneMatch, parseAge, parseCacheControl, parseHttpDate } from "./headers.ts"
import type { RoutePolicy } from "./options.ts"
import { decide, type RequestFacts } from "./policy.ts"

/** What building an entry reads of the configuration. */
export interface BuildConfig {
  readonly maxTtl: number
  readonly maxBodyBytes: number
  readonly etag: "strong" | "weak" | false
  readonly advertise: boolean
  readonly dropped: ReadonlySet<string>
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
export const bodyBytes = (body: HttpBody.HttpBody): Uint8Array | undefined => {
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

export const contentTypeOf = (response: HttpServerResponse.HttpServerResponse): string | undefined =>
  response.headers["content-type"] ??
  (response.body._tag === "Uint8Array" || response.body._tag === "Raw" ? response.body.contentType : undefined)

/** A strong entity-tag from the representation (content type and bytes). */
export const hashEtag = (contentType: string | undefined, body: Uint8Array, weak: boolean): string => {
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
export const headerDigest = (request: HttpServerRequest.HttpServerRequest, name: string): string | null => {
  const value = request.headers[name]
  return value === undefined ? null : digest(`${name}\0${value.trim()}`)
}

/** Whether a 304 answers `request` for a representation with this status and validators. */
export const notModified = (
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

export const notModifiedResponse = (headers: Headers.Headers): HttpServerResponse.HttpServerResponse => {
  const kept: Record<string, string> = {}
  for (const name of notModifiedFields) {
    const value = headers[name]
    if (value !== undefined) kept[name] = value
  }
  return HttpServerResponse.empty({ status: 304, headers: kept })
}

/** The current age of an entry in ms (RFC 9111 §4.2.3). */
export const currentAge = (entry: ResponseEntry, now: number): number => entry.age + Math.max(0, now - entry.date)

/** How the answer was made, for `X-Cache`. */
export type Served = "HIT" | "STALE" | "MISS" | "REVALIDATED"

/**
 * The response for an entry, with its stored `Date` and an `Age` equal to
 * its current age (RFC 9111 §4, §5.1; on a MISS only when the response
 * arrived aged); 304 when the request's validators match.
 */
export const respond = (
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

export const withXCache = (
  response: HttpServerResponse.HttpServerResponse,
  value: string
): HttpServerResponse.HttpServerResponse => HttpServerResponse.setHeader(response, "x-cache", value)

/** What an entry is built from: a handler's response, or a stored one with a 304's fields. */
export interface Upstream {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  /** Undefined when streamed. */
  readonly body: Uint8Array | undefined
  readonly contentType: string | undefined
  readonly setsCookie: boolean
}

export const upstreamOf = (response: HttpServerResponse.HttpServerResponse): Upstream => ({
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
export const updatedFields = (
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
export const sameRepresentation = (
  entry: ResponseEntry,
  headers: Readonly<Record<string, string | undefined>>
): boolean => {
  const etag = headers["etag"]
  if (etag !== undefined) return entry.etag !== "" && noneMatch(etag, entry.etag)
  const lastModified = headers["last-modified"]
  if (lastModified === undefined) return true
  const stored = entry.headers.find(([name]) => name === "last-modified")?.[1]
  return stored === lastModified
}

/** The request the handler gets: the client's validators replaced by the stored entry's (or none). */
export const handlerRequest = (
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

/**
 * Builds the entry of a response received at `at` for a handler run that
 * started at `requestAt`, or the reason it cannot be stored.
 */
export const toEntry = (
  config: BuildConfig,
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
export const refreshed = (
  config: BuildConfig,
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
    config,
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
