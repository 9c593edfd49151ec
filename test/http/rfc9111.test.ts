import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer, Option } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import { HttpCache } from "../../src/http/index.ts"
import { RedisStore } from "../../src/redis/index.ts"
import { requireRedis } from "../harness/redis.ts"
import { rawClient, runId, sharedServer } from "../redis/helpers.ts"
import { get, type RawResponse, serveNodeApp } from "./raw.ts"

// The RFC 9111 conformance matrix: a real NodeHttpServer on a loopback port
// runs HttpCache.middleware around a scripted upstream handler whose
// responses carry the headers under test (Age, Date, Expires, validators,
// 304s, targeted fields). Each test cites its section and asserts what the
// client receives and how many times the upstream ran. Time is the TestClock.

interface Scripted {
  readonly status?: number
  readonly headers?: Record<string, string>
  readonly body?: string
}

type Script = (request: HttpServerRequest.HttpServerRequest, call: number, now: number) => Scripted

const upstream = () => {
  const scripts = new Map<string, Script>()
  const calls = new Map<string, number>()
  const seen = new Map<string, Array<Record<string, string | undefined>>>()
  const app = Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const now = yield* Clock.currentTimeMillis
    const path = request.url.split("?")[0]!
    const call = (calls.get(path) ?? 0) + 1
    calls.set(path, call)
    seen.set(path, [...(seen.get(path) ?? []), { ...request.headers, ":method": request.method }])
    const script = scripts.get(path)
    const out = script === undefined ? { body: "no script" } : script(request, call, now)
    const status = out.status ?? 200
    return status === 304 || status === 204 || request.method === "HEAD"
      ? HttpServerResponse.empty({ status, headers: out.headers ?? {} })
      : HttpServerResponse.text(out.body ?? `body ${call}`, { status, headers: out.headers ?? {} })
  })
  return {
    app,
    /** Sets the script of a path. */
    script: (path: string, script: Script) => scripts.set(path, script),
    calls: (path: string) => calls.get(path) ?? 0,
    /** The request headers the upstream saw, per call. */
    seen: (path: string) => seen.get(path) ?? []
  }
}

const start = (options: HttpCache.Options = {}, store: Layer.Layer<CacheStore.CacheStore> = CacheStore.layerMemory()) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(Cachet.layer().pipe(Layer.provideMerge(store)))
    const origin = upstream()
    const port = yield* serveNodeApp(HttpCache.middleware({ name: "rfc", ...options })(origin.app), context)
    const send = (path: string, headers: Record<string, string> = {}, method = "GET"): Effect.Effect<RawResponse> =>
      get(port, path, headers, method)
    return { ...origin, send, context }
  })

const httpDate = (ms: number) => new Date(ms).toUTCString()

describe("RFC 9111 §4.2, §4.2.3: freshness counts the response's age", () => {
  it.effect("max-age=3600 with Age: 7200 is stale on arrival: never served as fresh", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/aged", () => ({ headers: { "cache-control": "max-age=3600", age: "7200" } }))
      yield* c.send("/aged")
      const second = yield* c.send("/aged")
      assert.notStrictEqual(second.headers["x-cache"], "HIT")
      assert.strictEqual(c.calls("/aged"), 2)
    }).pipe(Effect.scoped)
  )

  it.effect("max-age=3600 with Age: 1800 is fresh for 1800 s more, and goes out with that age", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/half", () => ({ headers: { "cache-control": "max-age=3600", age: "1800" } }))
      yield* c.send("/half")
      yield* TestClock.adjust("1799 seconds")
      const hit = yield* c.send("/half")
      assert.strictEqual(hit.headers["x-cache"], "HIT")
      assert.strictEqual(hit.headers["age"], "3599")
      yield* TestClock.adjust("2 seconds")
      assert.notStrictEqual((yield* c.send("/half")).headers["x-cache"], "HIT")
      assert.strictEqual(c.calls("/half"), 2)
    }).pipe(Effect.scoped)
  )

  it.effect("Expires with a slow Date: apparent age counts (fresh 1 h, not 3 h)", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/slow-date", (_r, _c, now) => ({
        headers: { date: httpDate(now - 2 * 3600_000), expires: httpDate(now + 3600_000) }
      }))
      yield* c.send("/slow-date")
      yield* TestClock.adjust("59 minutes")
      assert.strictEqual((yield* c.send("/slow-date")).headers["x-cache"], "HIT")
      yield* TestClock.adjust("2 minutes")
      assert.notStrictEqual((yield* c.send("/slow-date")).headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )

  it.effect("Expires with a fast Date: lifetime is Expires - Date, counted from receipt", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/fast-date", (_r, _c, now) => ({
        headers: { date: httpDate(now + 3600_000), expires: httpDate(now + 2 * 3600_000) }
      }))
      yield* c.send("/fast-date")
      yield* TestClock.adjust("59 minutes")
      assert.strictEqual((yield* c.send("/fast-date")).headers["x-cache"], "HIT")
      yield* TestClock.adjust("2 minutes")
      assert.notStrictEqual((yield* c.send("/fast-date")).headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )

  it.effect("§5.1 malformed Age: a list uses its first member, invalid values are ignored, past 2^31 is 2^31", () =>
    Effect.gen(function* () {
      const c = yield* start()
      const cases: ReadonlyArray<readonly [string, string, string | undefined]> = [
        ["/age-list", "10, 20", "10"],
        ["/age-negative", "-5", "0"],
        ["/age-text", "soon", "0"],
        ["/age-huge", "99999999999999", undefined]
      ]
      for (const [path, age] of cases) c.script(path, () => ({ headers: { "cache-control": "max-age=60", age } }))
      for (const [path, , expected] of cases) {
        yield* c.send(path)
        const again = yield* c.send(path)
        if (expected === undefined) {
          assert.notStrictEqual(again.headers["x-cache"], "HIT", `${path}: 2^31 s old is stale`)
        } else {
          assert.strictEqual(again.headers["x-cache"], "HIT", path)
          assert.strictEqual(again.headers["age"], expected, path)
        }
      }
    }).pipe(Effect.scoped)
  )
})

describe("RFC 9111 §5.1 and RFC 9110 §6.6.1: Age and Date sent downstream", () => {
  it.effect("upstream Age: 30 goes out as 30 plus the time stored; a miss keeps Age: 2000", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/age30", () => ({ headers: { "cache-control": "max-age=3600", age: "30" } }))
      yield* c.send("/age30")
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual((yield* c.send("/age30")).headers["age"], "33")
      c.script("/age2000", () => ({ headers: { "cache-control": "max-age=3600", age: "2000" } }))
      const miss = yield* c.send("/age2000")
      assert.strictEqual(miss.headers["x-cache"], "MISS")
      assert.strictEqual(miss.headers["age"], "2000")
    }).pipe(Effect.scoped)
  )

  it.effect("Date is the upstream's (or the time received), never re-stamped", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/dated", (_r, _c, now) => ({ headers: { "cache-control": "max-age=600", date: httpDate(now) } }))
      const first = yield* c.send("/dated")
      yield* TestClock.adjust("10 seconds")
      const hit = yield* c.send("/dated")
      assert.strictEqual(hit.headers["x-cache"], "HIT")
      assert.strictEqual(hit.headers["date"], first.headers["date"])
      assert.strictEqual(hit.headers["date"], httpDate(0))
      c.script("/undated", () => ({ headers: { "cache-control": "max-age=600" } }))
      const stamped = yield* c.send("/undated")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* c.send("/undated")).headers["date"], stamped.headers["date"])
    }).pipe(Effect.scoped)
  )

  it.effect("§3.1: other header fields are stored and sent as received", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/fields", () => ({
        headers: { "cache-control": "max-age=60", "x-custom": "a b", link: "</s.css>; rel=preload" }
      }))
      yield* c.send("/fields")
      const hit = yield* c.send("/fields")
      assert.strictEqual(hit.headers["x-custom"], "a b")
      assert.strictEqual(hit.headers["link"], "</s.css>; rel=preload")
    }).pipe(Effect.scoped)
  )
})

describe("RFC 9111 §4.3: revalidation instead of refetching", () => {
  it.effect(
    "§4.3.1, §4.3.4: a stale entry is revalidated with If-None-Match; a 304 updates it and serves the body",
    () =>
      Effect.gen(function* () {
        const c = yield* start()
        c.script("/doc", (request, call) =>
          call === 1
            ? { headers: { "cache-control": "max-age=10", etag: '"v1"' }, body: "the document" }
            : request.headers["if-none-match"] === '"v1"'
              ? { status: 304, headers: { "cache-control": "max-age=100", etag: '"v1"', "x-updated": "yes" } }
              : { body: "refetched" }
        )
        yield* c.send("/doc")
        yield* TestClock.adjust("11 seconds")
        const revalidated = yield* c.send("/doc", { "if-none-match": '"someone-else"' })
        assert.strictEqual(revalidated.status, 200)
        assert.strictEqual(revalidated.body, "the document")
        assert.strictEqual(revalidated.headers["x-cache"], "REVALIDATED")
        assert.strictEqual(revalidated.headers["cache-control"], "max-age=100")
        assert.strictEqual(revalidated.headers["x-updated"], "yes")
        assert.strictEqual(revalidated.headers["content-length"], String("the document".length))
        assert.strictEqual(c.seen("/doc")[1]!["if-none-match"], '"v1"', "the cache's validator, not the client's")
        yield* TestClock.adjust("90 seconds")
        assert.strictEqual((yield* c.send("/doc")).headers["x-cache"], "HIT", "fresh again for the new max-age")
        assert.strictEqual(c.calls("/doc"), 2)
      }).pipe(Effect.scoped)
  )

  it.effect("§4.3.1: Last-Modified alone gives If-Modified-Since", () =>
    Effect.gen(function* () {
      const c = yield* start({ etag: false })
      const modified = httpDate(0)
      c.script("/lm", (request, call) =>
        call > 1 && request.headers["if-modified-since"] === modified
          ? { status: 304 }
          : { headers: { "cache-control": "max-age=1", "last-modified": modified } }
      )
      yield* c.send("/lm")
      yield* TestClock.adjust("2 seconds")
      const again = yield* c.send("/lm")
      assert.strictEqual(again.headers["x-cache"], "REVALIDATED")
      assert.strictEqual(again.body, "body 1")
    }).pipe(Effect.scoped)
  )

  it.effect("§5.2.2.4: no-cache is stored and revalidated on every use, never served unvalidated", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/nc", (request) =>
        request.headers["if-none-match"] === '"n"'
          ? { status: 304 }
          : { headers: { "cache-control": "no-cache, max-age=600", etag: '"n"' }, body: "nc" }
      )
      yield* c.send("/nc")
      for (let i = 0; i < 3; i++) {
        const r = yield* c.send("/nc")
        assert.strictEqual(r.headers["x-cache"], "REVALIDATED")
        assert.strictEqual(r.body, "nc")
      }
      assert.strictEqual(c.calls("/nc"), 4)
    }).pipe(Effect.scoped)
  )

  it.effect("§4.2.4: must-revalidate, proxy-revalidate and s-maxage are never served stale, even on errors", () =>
    Effect.gen(function* () {
      const c = yield* start({ staleFor: "1 hour" })
      for (const directive of ["max-age=5, must-revalidate", "max-age=5, proxy-revalidate", "s-maxage=5"]) {
        const path = `/strict-${directive.length}`
        c.script(path, (_r, call) =>
          call === 1 ? { headers: { "cache-control": directive }, body: "old" } : { status: 500, body: "down" }
        )
        yield* c.send(path)
        yield* TestClock.adjust("6 seconds")
        const after = yield* c.send(path)
        assert.strictEqual(after.status, 500, directive)
        assert.notStrictEqual(after.headers["x-cache"], "STALE", directive)
        assert.strictEqual(after.body, "down", directive)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("§4.3.5: a HEAD response with the same validator updates the stored GET", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/h", (request) =>
        request.method === "HEAD"
          ? { headers: { "cache-control": "max-age=100", etag: '"h1"', "x-head": "1" } }
          : { headers: { "cache-control": "max-age=10", etag: '"h1"' }, body: "full" }
      )
      yield* c.send("/h")
      yield* TestClock.adjust("11 seconds")
      const head = yield* c.send("/h", {}, "HEAD")
      assert.strictEqual(head.headers["x-cache"], "REVALIDATED")
      const afterHead = yield* c.send("/h")
      assert.strictEqual(afterHead.headers["x-cache"], "HIT")
      assert.strictEqual(afterHead.body, "full")
      assert.strictEqual(afterHead.headers["cache-control"], "max-age=100")
      assert.strictEqual(afterHead.headers["x-head"], "1")
      assert.strictEqual(c.calls("/h"), 2)
    }).pipe(Effect.scoped)
  )

  it.effect("§4.3.3: a 304 for another representation is not used: the full response is fetched", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/other", (request, call) =>
        call === 1
          ? { headers: { "cache-control": "max-age=1", etag: '"a"' }, body: "A" }
          : request.headers["if-none-match"] !== undefined
            ? { status: 304, headers: { etag: '"b"' } }
            : { headers: { "cache-control": "max-age=60", etag: '"b"' }, body: "B" }
      )
      yield* c.send("/other")
      yield* TestClock.adjust("2 seconds")
      const next = yield* c.send("/other")
      assert.strictEqual(next.status, 200)
      assert.strictEqual(next.body, "B")
      assert.strictEqual(c.calls("/other"), 3)
    }).pipe(Effect.scoped)
  )
})

describe("RFC 9111 §4.4: unsafe methods invalidate, including unknown ones", () => {
  it.effect("POST, DELETE, PROPFIND, M-SEARCH, MKCOL, PURGE, REPORT invalidate; OPTIONS and TRACE do not", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/r", () => ({ headers: { "cache-control": "max-age=600" } }))
      for (const method of ["POST", "DELETE", "PROPFIND", "M-SEARCH", "MKCOL", "PURGE", "REPORT"]) {
        yield* c.send("/r")
        assert.strictEqual((yield* c.send("/r")).headers["x-cache"], "HIT", method)
        yield* c.send("/r", {}, method)
        // An entry written in the invalidation's millisecond reads as
        // invalidated (it may hold what was read before): step past it.
        yield* TestClock.adjust(1)
        assert.notStrictEqual((yield* c.send("/r")).headers["x-cache"], "HIT", `${method} invalidated`)
      }
      for (const method of ["OPTIONS", "TRACE"]) {
        yield* c.send("/r", {}, method)
        assert.strictEqual((yield* c.send("/r")).headers["x-cache"], "HIT", `${method} is safe`)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("Location and Content-Location on the same origin are invalidated; another origin's are not", () =>
    Effect.gen(function* () {
      const c = yield* start()
      for (const path of ["/a", "/b", "/c"]) c.script(path, () => ({ headers: { "cache-control": "max-age=600" } }))
      c.script("/write", () => ({
        status: 201,
        headers: { location: "http://shop.test/a", "content-location": "/b" }
      }))
      c.script("/write2", () => ({ status: 201, headers: { location: "http://elsewhere.test/c" } }))
      for (const path of ["/a", "/b", "/c"]) yield* c.send(path)
      yield* c.send("/write", {}, "POST")
      yield* c.send("/write2", {}, "POST")
      assert.notStrictEqual((yield* c.send("/a")).headers["x-cache"], "HIT")
      assert.notStrictEqual((yield* c.send("/b")).headers["x-cache"], "HIT")
      assert.strictEqual((yield* c.send("/c")).headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )
})

describe("RFC 9213: targeted cache-control fields", () => {
  it.effect("CDN-Cache-Control private / no-store are never stored; no-cache revalidates; it beats Cache-Control", () =>
    Effect.gen(function* () {
      const c = yield* start()
      const cases: ReadonlyArray<readonly [string, Record<string, string>, "stored" | "not stored" | "revalidated"]> = [
        ["/t-private", { "cdn-cache-control": "private", "cache-control": "max-age=60" }, "not stored"],
        ["/t-nostore", { "cdn-cache-control": "no-store", "cache-control": "max-age=60" }, "not stored"],
        ["/t-nocache", { "cdn-cache-control": "no-cache", "cache-control": "max-age=60" }, "revalidated"],
        ["/t-wins", { "cdn-cache-control": "max-age=60", "cache-control": "no-store" }, "stored"],
        ["/t-expires", { "cdn-cache-control": "max-age=60", expires: "0" }, "stored"],
        ["/t-invalid", { "cdn-cache-control": "max-age=60,,", "cache-control": "no-store" }, "not stored"]
      ]
      for (const [path, headers] of cases) c.script(path, () => ({ headers, body: "same" }))
      for (const [path, , expected] of cases) {
        yield* c.send(path)
        const again = yield* c.send(path)
        const want = expected === "stored" ? "HIT" : expected === "revalidated" ? "REVALIDATED" : undefined
        if (want === undefined) assert.notInclude(["HIT", "REVALIDATED", "STALE"], again.headers["x-cache"], path)
        else assert.strictEqual(again.headers["x-cache"], want, path)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("a configurable target list, in precedence order; forwardTargeted: false keeps them from downstream", () =>
    Effect.gen(function* () {
      const c = yield* start({
        name: "rfc-targets",
        targetedFields: ["Acme-Cache-Control", "CDN-Cache-Control"],
        forwardTargeted: false
      })
      c.script("/acme", () => ({
        headers: { "acme-cache-control": "max-age=60", "cdn-cache-control": "no-store", "cache-control": "no-store" }
      }))
      const first = yield* c.send("/acme")
      assert.isUndefined(first.headers["acme-cache-control"])
      assert.isUndefined(first.headers["cdn-cache-control"])
      assert.strictEqual(first.headers["cache-control"], "no-store")
      assert.strictEqual((yield* c.send("/acme")).headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )
})

describe("RFC 9111 §4.1: Vary", () => {
  it.effect("Vary goes out verbatim, and a variant is never served to another value", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/v", (request) => ({
        headers: { "cache-control": "max-age=60", vary: "Foo, Accept-Language" },
        body: `lang ${request.headers["accept-language"]}`
      }))
      const fr = yield* c.send("/v", { "Accept-Language": "fr" })
      assert.strictEqual(fr.headers["vary"], "Foo, Accept-Language")
      const en = yield* c.send("/v", { "Accept-Language": "en" })
      assert.strictEqual(en.body, "lang en")
      assert.strictEqual((yield* c.send("/v", { "Accept-Language": "fr" })).body, "lang fr")
      assert.strictEqual((yield* c.send("/v", { "Accept-Language": "fr", Foo: "x" })).body, "lang fr")
      assert.strictEqual(c.calls("/v"), 3)
    }).pipe(Effect.scoped)
  )
})

describe("RFC 9111 §3: what is stored by default", () => {
  it.effect("ttl alone stores responses without freshness but advertises nothing downstream", () =>
    Effect.gen(function* () {
      const c = yield* start({ name: "rfc-ttl", ttl: "30 seconds" })
      c.script("/plain", () => ({}))
      const miss = yield* c.send("/plain")
      assert.isUndefined(miss.headers["cache-control"])
      const hit = yield* c.send("/plain")
      assert.strictEqual(hit.headers["x-cache"], "HIT")
      assert.isUndefined(hit.headers["cache-control"])
      const loud = yield* start({ name: "rfc-ttl-loud", ttl: "30 seconds", advertise: true })
      loud.script("/plain", () => ({}))
      assert.strictEqual((yield* loud.send("/plain")).headers["cache-control"], "public, max-age=30")
    }).pipe(Effect.scoped)
  )

  it.effect("explicitly fresh 204 and 5xx are stored; refuseStatuses refuses them", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/204", () => ({ status: 204, headers: { "cache-control": "max-age=60" } }))
      c.script("/503", () => ({ status: 503, headers: { "cache-control": "max-age=60" } }))
      for (const path of ["/204", "/503"]) {
        yield* c.send(path)
        assert.strictEqual((yield* c.send(path)).headers["x-cache"], "HIT", path)
      }
      const strict = yield* start({ name: "rfc-refuse", refuseStatuses: [503] })
      strict.script("/503", () => ({ status: 503, headers: { "cache-control": "max-age=60" } }))
      yield* strict.send("/503")
      yield* strict.send("/503")
      assert.strictEqual(strict.calls("/503"), 2)
    }).pipe(Effect.scoped)
  )

  it.effect("§3, §5.2.2.5, §5.2.2.7: private and no-store are never stored", () =>
    Effect.gen(function* () {
      const c = yield* start({ ttl: "1 hour" })
      c.script("/p", () => ({ headers: { "cache-control": "private, max-age=60" } }))
      c.script("/ns", () => ({ headers: { "cache-control": "no-store, max-age=60" } }))
      for (const path of ["/p", "/ns"]) {
        yield* c.send(path)
        yield* c.send(path)
        assert.strictEqual(c.calls(path), 2, path)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("§4.2.2 (opt-in): heuristic freshness is 10% of the time since Last-Modified, capped at a day", () =>
    Effect.gen(function* () {
      const c = yield* start({ name: "rfc-heuristic", heuristic: true, maxTtl: "2 days" })
      yield* TestClock.adjust("20 days")
      c.script("/lm", (_r, _c, now) => ({ headers: { "last-modified": httpDate(now - 5 * 86_400_000) } }))
      yield* c.send("/lm")
      yield* TestClock.adjust("11 hours")
      assert.strictEqual((yield* c.send("/lm")).headers["x-cache"], "HIT")
      yield* TestClock.adjust("2 hours")
      assert.notStrictEqual((yield* c.send("/lm")).headers["x-cache"], "HIT")
      const off = yield* start({ name: "rfc-no-heuristic" })
      off.script("/lm", (_r, _c, now) => ({ headers: { "last-modified": httpDate(now - 5 * 86_400_000) } }))
      yield* off.send("/lm")
      yield* off.send("/lm")
      assert.strictEqual(off.calls("/lm"), 2)
    }).pipe(Effect.scoped)
  )
})

describe("RFC 9111 §5.2.1: request directives", () => {
  it.effect("ignored by default: a reload (no-cache, max-age=0) does not bypass the shared cache", () =>
    Effect.gen(function* () {
      const c = yield* start()
      c.script("/rd", () => ({ headers: { "cache-control": "max-age=600" } }))
      yield* c.send("/rd")
      assert.strictEqual((yield* c.send("/rd", { "cache-control": "no-cache" })).headers["x-cache"], "HIT")
      assert.strictEqual((yield* c.send("/rd", { "cache-control": "max-age=0" })).headers["x-cache"], "HIT")
      assert.strictEqual(c.calls("/rd"), 1)
    }).pipe(Effect.scoped)
  )

  it.effect('"freshness" honours max-age, min-fresh and max-stale; "all" also no-cache', () =>
    Effect.gen(function* () {
      const c = yield* start({ name: "rfc-directives", requestDirectives: "freshness" })
      c.script("/rd", () => ({ headers: { "cache-control": "max-age=100" }, body: "same" }))
      yield* c.send("/rd")
      yield* TestClock.adjust("50 seconds")
      assert.notStrictEqual((yield* c.send("/rd", { "cache-control": "max-age=10" })).headers["x-cache"], "HIT")
      yield* TestClock.adjust("50 seconds")
      assert.notStrictEqual((yield* c.send("/rd", { "cache-control": "min-fresh=60" })).headers["x-cache"], "HIT")
      assert.strictEqual((yield* c.send("/rd", { "cache-control": "no-cache" })).headers["x-cache"], "HIT")
      yield* TestClock.adjust("101 seconds")
      assert.strictEqual((yield* c.send("/rd", { "cache-control": "max-stale=200" })).headers["x-cache"], "STALE")
      const all = yield* start({ name: "rfc-directives-all", requestDirectives: "all" })
      all.script("/rd", () => ({ headers: { "cache-control": "max-age=600" }, body: "same" }))
      yield* all.send("/rd")
      assert.strictEqual((yield* all.send("/rd", { "cache-control": "no-cache" })).headers["x-cache"], "REVALIDATED")
      assert.strictEqual(all.calls("/rd"), 2)
    }).pipe(Effect.scoped)
  )

  it.effect("only-if-cached: 504 when nothing usable is stored", () =>
    Effect.gen(function* () {
      const c = yield* start()
      const r = yield* c.send("/nothing", { "cache-control": "only-if-cached" })
      assert.strictEqual(r.status, 504)
      assert.strictEqual(c.calls("/nothing"), 0)
    }).pipe(Effect.scoped)
  )
})

// ---------------------------------------------------------------------------
// Credentials never reach the store (issue item 9)
// ---------------------------------------------------------------------------

const token = "Bearer tok-3b1f9c2e-secret"
const cookie = "sid=cookie-77aa-secret"

/** A memory store that also records every key and entry written to it. */
const recording = () => {
  const written: Array<string> = []
  const layer = Layer.effect(
    CacheStore.CacheStore,
    Effect.map(CacheStore.makeMemory(), (store) =>
      CacheStore.CacheStore.of({
        ...store,
        set: (key, entry, codec) => {
          written.push(key, JSON.stringify({ ...entry, value: { ...(entry.value as object), body: "" } }))
          return store.set(key, entry, codec)
        }
      })
    )
  )
  return { written, layer }
}

const credentialScript = (c: { script: (path: string, s: Script) => unknown }) => {
  c.script("/shared", () => ({ headers: { "cache-control": "public, max-age=60", vary: "Authorization" } }))
  c.script("/by-cookie", () => ({ headers: { "cache-control": "public, max-age=60" } }))
}

describe("§3.5 and the store: credentials are kept as digests, never as values", () => {
  it.effect("memory store: Vary: Authorization and policy.vary cookie write no token or cookie bytes", () =>
    Effect.gen(function* () {
      const rec = recording()
      const c = yield* start({ name: "rfc-creds", routes: { "/by-cookie": { vary: ["cookie"] } } }, rec.layer)
      credentialScript(c)
      yield* c.send("/shared", { authorization: token })
      assert.strictEqual((yield* c.send("/shared", { authorization: token })).headers["x-cache"], "HIT")
      assert.notStrictEqual((yield* c.send("/shared", { authorization: "Bearer other" })).headers["x-cache"], "HIT")
      yield* c.send("/by-cookie", { cookie })
      assert.strictEqual((yield* c.send("/by-cookie", { cookie })).headers["x-cache"], "HIT")
      const all = rec.written.join("\n")
      assert.isAbove(rec.written.length, 4)
      assert.notInclude(all, "tok-3b1f9c2e")
      assert.notInclude(all, "cookie-77aa")
    }).pipe(Effect.scoped)
  )
})

describe.skipIf(!requireRedis())("§3.5 on a real Redis: no credential bytes in any key or value", () => {
  const redis = sharedServer()
  it.live("SCAN of every key and value finds neither the token nor the cookie", () =>
    Effect.gen(function* () {
      const prefix = `rfc-${runId()}`
      const c = yield* start(
        { name: "rfc-creds-redis", routes: { "/by-cookie": { vary: ["cookie"] } } },
        RedisStore.layer({ url: redis.get().url, prefix }) as Layer.Layer<CacheStore.CacheStore>
      )
      credentialScript(c)
      yield* c.send("/shared", { authorization: token })
      assert.strictEqual((yield* c.send("/shared", { authorization: token })).headers["x-cache"], "HIT")
      yield* c.send("/by-cookie", { cookie })
      assert.strictEqual((yield* c.send("/by-cookie", { cookie })).headers["x-cache"], "HIT")
      const client = yield* rawClient(redis.get().port)
      const keys = yield* Effect.promise(() => client.keys("*"))
      const mine = keys.filter((k) => k.includes(prefix))
      assert.isAtLeast(mine.length, 2)
      for (const key of keys) {
        assert.notInclude(key, "tok-3b1f9c2e")
        assert.notInclude(key, "cookie-77aa")
        const type = yield* Effect.promise(() => client.type(key))
        if (type !== "string") continue
        const value = Option.getOrElse(Option.fromNullishOr(yield* Effect.promise(() => client.get(key))), () => "")
        assert.notInclude(value, "tok-3b1f9c2e", key)
        assert.notInclude(value, "cookie-77aa", key)
      }
    }).pipe(Effect.scoped)
  )
})
