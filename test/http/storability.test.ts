import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import * as Cachet from "../../src/Cachet.ts"
import { HttpCache } from "../../src/http/index.ts"
import { decide } from "../../src/http/internal/policy.ts"
import { httpStats, request, server, settle } from "./helpers.ts"

// ---------------------------------------------------------------------------
// The reference: written from the RFC text, independently of src/http.
//
// RFC 9111 §3 (a shared cache MUST NOT store unless ...), §3.5 (requests
// with Authorization), §4.1 (Vary: * never matches), §4.2.1 (freshness:
// s-maxage, then max-age, then Expires - Date; invalid Expires = expired),
// §4.2.4 (no stale when must-revalidate; proxy-revalidate and s-maxage for a
// shared cache), §5.2.1.5 (request no-store), §5.2.2.4-7 (no-cache, no-store,
// private), RFC 5861 (stale-while-revalidate, stale-if-error).
// Plus the stricter rules: no Set-Cookie, credentials (Authorization
// or Cookie) only per user or when the response is public or has s-maxage,
// Range and method-override requests bypass, policy freshness only for the
// configured statuses (204 and 5xx only when listed). Explicitly fresh
// responses of any final status are storable (RFC 9111 §3); no-cache and
// already-stale ones are stored and revalidated on use (§4.3, §5.2.2.4),
// since every body here has a validator (the middleware's ETag).
// ---------------------------------------------------------------------------

interface RefPolicy {
  readonly name: string
  readonly ttl?: number
  readonly staleFor?: number
  readonly user?: boolean
  readonly statuses?: ReadonlyArray<number>
}

const heuristic = [200, 203, 300, 301, 308, 404, 405, 410, 414]

/** Directives of a Cache-Control value: lowercase name -> raw argument (quotes removed), first one kept; "conflict" marks a repeated numeric one with another value. */
const directives = (value: string | undefined): Map<string, string | true> => {
  const out = new Map<string, string | true>()
  if (value === undefined) return out
  const re = /\s*([^=,\s"]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,\s"]*))?[^,]*(?:,|$)/g
  for (const m of value.matchAll(re)) {
    const name = m[1]!.toLowerCase()
    const raw = m[2] === undefined ? true : m[2].startsWith('"') ? m[2].slice(1, -1) : m[2]
    const before = out.get(name)
    if (before !== undefined && before !== raw) out.set(name, "conflict")
    else out.set(name, raw)
  }
  return out
}

const seconds = (raw: string | true | undefined): number | undefined => {
  if (raw === undefined) return undefined
  if (raw === true || !/^\d+$/.test(raw)) return 0 // invalid: treat as stale
  return Number(raw)
}

const httpDate = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined
  const t = Date.parse(s)
  return /GMT$/.test(s) && !Number.isNaN(t) ? t : undefined
}

interface RefCase {
  readonly method: string
  readonly status: number
  readonly reqHeaders: Record<string, string>
  readonly resHeaders: Record<string, string>
  readonly cookieApi: boolean
  readonly policy: RefPolicy
}

/** [may store, may reuse for the same request right away] */
const reference = (c: RefCase, now: number): readonly [boolean, boolean] => {
  const no = [false, false] as const
  if (c.method !== "GET" && c.method !== "HEAD") return no
  const rq = c.reqHeaders
  if (rq["range"] !== undefined || rq["x-http-method-override"] !== undefined) return no
  if (directives(rq["cache-control"]).has("no-store")) return no
  if (c.status < 200 || c.status === 206 || c.status === 304) return no
  const d = directives(c.resHeaders["cache-control"])
  if (d.has("no-store") || d.has("private")) return no
  if ((c.resHeaders["vary"] ?? "").split(",").some((v) => v.trim() === "*")) return no
  if (c.resHeaders["set-cookie"] !== undefined || c.cookieApi) return no
  const credentials = rq["authorization"] !== undefined || rq["cookie"] !== undefined
  const userKeyed = credentials && c.policy.user === true
  if (credentials && !userKeyed && !(d.has("public") || d.has("s-maxage"))) return no
  const listed = (c.policy.statuses ?? heuristic).includes(c.status)
  let lifetime: number
  if (d.has("s-maxage")) lifetime = seconds(d.get("s-maxage"))! * 1000
  else if (d.has("max-age")) lifetime = seconds(d.get("max-age"))! * 1000
  else if (c.resHeaders["expires"] !== undefined) {
    const expires = httpDate(c.resHeaders["expires"])
    lifetime = expires === undefined ? 0 : Math.max(0, expires - (httpDate(c.resHeaders["date"]) ?? now))
  } else {
    if (c.policy.ttl === undefined || !listed) return no
    lifetime = c.policy.ttl
  }
  const noCache = d.has("no-cache")
  const noStale = d.has("must-revalidate") || noCache
  const policyStale = noStale || d.has("proxy-revalidate") || d.has("s-maxage") ? 0 : (c.policy.staleFor ?? 0)
  const swr = noStale
    ? 0
    : d.has("stale-while-revalidate")
      ? seconds(d.get("stale-while-revalidate"))! * 1000
      : policyStale
  // Stored even when already stale: it has a validator, so it is revalidated.
  return [true, !noCache && (lifetime > 0 || swr > 0)]
}

// ---------------------------------------------------------------------------
// The generated table
// ---------------------------------------------------------------------------

const methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
const statuses = [200, 203, 204, 206, 301, 302, 304, 404, 429, 500, 503]
const requestVariants: ReadonlyArray<readonly [string, Record<string, string>]> = [
  ["plain", {}],
  ["authorization", { authorization: "Bearer alice" }],
  ["cookie", { cookie: "session=alice" }],
  ["no-store", { "cache-control": "no-store" }],
  ["no-cache", { "cache-control": "no-cache, max-age=0" }],
  ["range", { range: "bytes=0-1" }],
  ["method-override", { "x-http-method-override": "DELETE" }],
  ["accept-encoding", { "accept-encoding": "gzip" }]
]
const EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
const IN_60S = "Thu, 01 Jan 1970 00:01:00 GMT"
const responseVariants: ReadonlyArray<readonly [string, Record<string, string>, boolean]> = [
  ["none", {}, false],
  ["max-age", { "cache-control": "max-age=60" }, false],
  ["s-maxage", { "cache-control": "s-maxage=60" }, false],
  ["public max-age", { "cache-control": "public, max-age=60" }, false],
  ["public only", { "cache-control": "public" }, false],
  ["private", { "cache-control": "private, max-age=60" }, false],
  ["private qualified", { "cache-control": 'private="x-user", max-age=60' }, false],
  ["no-store", { "cache-control": "no-store, max-age=60" }, false],
  ["no-cache", { "cache-control": "no-cache, max-age=60" }, false],
  ["max-age=0", { "cache-control": "max-age=0" }, false],
  ["max-age=0 swr", { "cache-control": "max-age=0, stale-while-revalidate=30" }, false],
  ["max-age=0 sie", { "cache-control": "max-age=0, stale-if-error=30" }, false],
  ["must-revalidate swr", { "cache-control": "must-revalidate, max-age=0, stale-while-revalidate=30" }, false],
  ["unknown quoted", { "cache-control": 'Max-Age=60, x-ext="a, no-store, private"' }, false],
  ["quoted max-age", { "cache-control": 'max-age="60"' }, false],
  ["conflicting max-age", { "cache-control": "max-age=60, max-age=120" }, false],
  ["invalid max-age", { "cache-control": "max-age=soon" }, false],
  ["expires", { expires: IN_60S, date: EPOCH }, false],
  ["expires no date", { expires: IN_60S }, false],
  ["expires 0", { expires: "0" }, false],
  ["vary accept-encoding", { "cache-control": "max-age=60", vary: "Accept-Encoding" }, false],
  ["vary star", { "cache-control": "max-age=60", vary: "accept-language, *" }, false],
  ["set-cookie header", { "cache-control": "public, max-age=60", "set-cookie": "sid=1" }, false],
  ["set-cookie api", { "cache-control": "public, max-age=60" }, true],
  ["proxy-revalidate", { "cache-control": "proxy-revalidate, max-age=0" }, false]
]
const policies: ReadonlyArray<RefPolicy> = [
  { name: "explicit only" },
  { name: "ttl", ttl: 60_000 },
  { name: "ttl + stale + 204/5xx", ttl: 60_000, staleFor: 30_000, statuses: [...heuristic, 204, 500, 503] },
  { name: "per user", ttl: 60_000, user: true }
]

const allCases: Array<RefCase & { readonly label: string }> = []
for (const method of methods) {
  for (const status of statuses) {
    for (const [reqName, reqHeaders] of requestVariants) {
      for (const [resName, resHeaders, cookieApi] of responseVariants) {
        for (const policy of policies) {
          allCases.push({
            label: `${method} ${status} req=${reqName} res=${resName} policy=${policy.name}`,
            method,
            status,
            reqHeaders,
            resHeaders,
            cookieApi,
            policy
          })
        }
      }
    }
  }
}

const toOptions = (p: RefPolicy): HttpCache.Options => ({
  ...(p.ttl !== undefined ? { ttl: p.ttl } : {}),
  ...(p.staleFor !== undefined ? { staleFor: p.staleFor } : {}),
  ...(p.statuses !== undefined ? { statuses: p.statuses } : {}),
  ...(p.user ? { user: (r) => r.headers["authorization"] ?? r.cookies["session"] } : {})
})

const resolved = (p: RefPolicy) => ({
  ttl: p.ttl,
  staleWhileRevalidate: p.staleFor ?? 0,
  staleIfError: p.staleFor ?? 0,
  statuses: new Set(p.statuses ?? heuristic),
  negativeTtl: 10_000
})

// A seeded PRNG (mulberry32), so the sample is the same on every run.
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

describe("storability (RFC 9111 §3, §3.5, §4.1) against an independent reference", () => {
  it("decide agrees with the reference on every generated combination", () => {
    const violations: Array<string> = []
    let stored = 0
    for (const c of allCases) {
      const facts = {
        method: c.method,
        headers: c.reqHeaders,
        userKeyed: c.policy.user === true && (c.reqHeaders["authorization"] ?? c.reqHeaders["cookie"]) !== undefined
      }
      const mine = decide(
        facts,
        {
          status: c.status,
          headers: c.resHeaders,
          setsCookie: c.cookieApi || c.resHeaders["set-cookie"] !== undefined,
          validators: true
        },
        resolved(c.policy),
        0
      ).store
      const [ref] = reference(c, 0)
      if (mine !== ref) violations.push(`${c.label}: cachet ${mine}, reference ${ref}`)
      if (ref) stored++
    }
    console.log(`storability: ${allCases.length} combinations, ${stored} storable, ${violations.length} violations`)
    assert.isAtLeast(allCases.length, 200)
    assert.isAbove(stored, 100, "the table exercises storable responses too")
    assert.deepStrictEqual(violations.slice(0, 20), [])
  })

  it.effect("the middleware stores and reuses exactly what the reference allows (sampled, end to end)", () =>
    Effect.gen(function* () {
      const random = rng(9111)
      // Half from the whole table, half from what the reference would store,
      // so that both outcomes are well represented.
      const storable = allCases.filter((c) => reference(c, 0)[0])
      const sample = [
        ...Array.from({ length: 300 }, () => allCases[Math.floor(random() * allCases.length)]!),
        ...Array.from({ length: 300 }, () => storable[Math.floor(random() * storable.length)]!)
      ]
      const violations: Array<string> = []
      let stored = 0
      let reused = 0
      const middlewares = new Map(policies.map((p) => [p.name, HttpCache.middleware(toOptions(p))]))
      for (let i = 0; i < sample.length; i++) {
        const c = sample[i]!
        const { counter, serve } = server(middlewares.get(c.policy.name)!, () =>
          Effect.sync(() => {
            const base =
              c.status === 204 || c.status === 304
                ? HttpServerResponse.empty({ status: c.status, headers: c.resHeaders })
                : HttpServerResponse.text(`case ${i}`, { status: c.status, headers: c.resHeaders })
            return c.cookieApi ? HttpServerResponse.setCookieUnsafe(base, "sid", "1") : base
          })
        )
        const req = () => request(`/case/${i}`, { method: c.method, headers: c.reqHeaders })
        // Background revalidations of earlier cases finish first (they count sets too).
        yield* settle
        const before = (yield* httpStats()).sets
        yield* serve(req())
        const didStore = (yield* httpStats()).sets > before
        yield* serve(req())
        const didReuse = counter.calls === 1
        const [mayStore, mayReuse] = reference(c, 0)
        if (didStore !== mayStore) violations.push(`${c.label}: stored ${didStore}, reference ${mayStore}`)
        if (didReuse !== mayReuse) violations.push(`${c.label}: reused ${didReuse}, reference ${mayReuse}`)
        if (didStore) stored++
        if (didReuse) reused++
      }
      console.log(
        `storability end to end: ${sample.length} sampled, ${stored} stored, ${reused} reused, ${violations.length} violations`
      )
      assert.isAbove(stored, 300)
      assert.deepStrictEqual(violations.slice(0, 20), [])
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )
})
