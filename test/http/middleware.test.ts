import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { FindMyWay, HttpServerRequest, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Cachet from "../../src/Cachet.ts"
import { HttpCache } from "../../src/http/index.ts"
import { normalizeTarget, routedTarget } from "../../src/http/internal/policy.ts"
import { RedisStore } from "../../src/redis/index.ts"
import { requireRedis } from "../harness/redis.ts"
import { rawClient, runId, sharedServer } from "../redis/helpers.ts"
import { httpStats, request, server, settle, text } from "./helpers.ts"

const Memory = Cachet.layerMemory()

describe("HttpCache: hits, misses, headers", () => {
  it.effect("MISS then HIT; Age grows with the clock; ETag, and Cache-Control from the policy when advertised", () =>
    Effect.gen(function* () {
      const quiet = server(HttpCache.middleware({ name: "http-quiet", ttl: "60 seconds" }), () =>
        Effect.succeed(HttpServerResponse.text("x"))
      )
      // By default the policy's ttl is the cache's own decision: nothing
      // tells downstream caches to share the response.
      assert.isUndefined((yield* quiet.serve(request("/q"))).headers["cache-control"])
      const { counter, serve } = server(
        HttpCache.middleware({ ttl: "60 seconds", staleFor: "30 seconds", advertise: true }),
        () => Effect.succeed(HttpServerResponse.jsonUnsafe({ id: 1, name: "Ada" }))
      )
      const miss = yield* serve(request("/users/1"))
      assert.strictEqual(miss.headers["x-cache"], "MISS")
      assert.isUndefined(miss.headers["age"], "a response from the origin has no Age")
      assert.strictEqual(
        miss.headers["cache-control"],
        "public, max-age=60, stale-while-revalidate=30, stale-if-error=30"
      )
      assert.match(miss.headers["etag"]!, /^"[A-Za-z0-9_-]{27}"$/)
      yield* TestClock.adjust("12 seconds")
      const hit = yield* serve(request("/users/1"))
      assert.strictEqual(hit.headers["x-cache"], "HIT")
      assert.strictEqual(hit.headers["age"], "12")
      assert.strictEqual(hit.headers["etag"], miss.headers["etag"])
      assert.strictEqual(hit.headers["content-type"], "application/json")
      assert.strictEqual(text(hit), '{"id":1,"name":"Ada"}')
      yield* TestClock.adjust("40 seconds")
      assert.strictEqual((yield* serve(request("/users/1"))).headers["age"], "52")
      assert.strictEqual(counter.calls, 1)
      const stats = yield* httpStats()
      assert.strictEqual(stats.hits, 2)
      assert.strictEqual(stats.misses, 1)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("If-None-Match: 304 without a body on a hit and on a miss; other tags get the body", () =>
    Effect.gen(function* () {
      const { serve } = server(HttpCache.middleware({ ttl: "1 minute" }), () =>
        Effect.succeed(HttpServerResponse.text("report", { headers: { "cache-control": "max-age=60" } }))
      )
      const first = yield* serve(request("/report"))
      const etag = first.headers["etag"]!
      const notModified = yield* serve(request("/report", { headers: { "if-none-match": `"other", W/${etag}` } }))
      assert.strictEqual(notModified.status, 304)
      assert.strictEqual(notModified.body._tag, "Empty")
      assert.strictEqual(notModified.headers["etag"], etag)
      assert.strictEqual(notModified.headers["x-cache"], "HIT")
      assert.isDefined(notModified.headers["cache-control"])
      assert.isUndefined(notModified.headers["content-type"])
      const changed = yield* serve(request("/report", { headers: { "if-none-match": '"other"' } }))
      assert.strictEqual(changed.status, 200)
      assert.strictEqual(text(changed), "report")
      // A miss whose fresh response has the client's tag is a 304 too.
      const { serve: serve2 } = server(HttpCache.middleware({ ttl: "1 minute" }), () =>
        Effect.succeed(HttpServerResponse.text("report"))
      )
      const missed = yield* serve2(request("/report-2", { headers: { "if-none-match": etag } }))
      assert.strictEqual(missed.status, 304)
      assert.strictEqual(missed.headers["x-cache"], "MISS")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a handler's own Cache-Control freshness and ETag win; must-revalidate turns stale off", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 hour", staleFor: "1 hour" }), () =>
        Effect.succeed(
          HttpServerResponse.text("v", {
            headers: { "cache-control": "public, max-age=5, must-revalidate", etag: '"v1"' }
          })
        )
      )
      const first = yield* serve(request("/doc"))
      assert.strictEqual(first.headers["cache-control"], "public, max-age=5, must-revalidate")
      assert.strictEqual(first.headers["etag"], '"v1"')
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual((yield* serve(request("/doc"))).headers["x-cache"], "HIT")
      yield* TestClock.adjust("1 second")
      // No stale use after must-revalidate: the handler is asked (with the
      // stored ETag) and its unchanged answer revalidates the entry.
      assert.strictEqual(
        (yield* serve(request("/doc"))).headers["x-cache"],
        "REVALIDATED",
        "no stale after must-revalidate"
      )
      assert.strictEqual(counter.calls, 2)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("maxTtl caps what a response asks for", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(HttpCache.middleware({ name: "http-capped", maxTtl: "10 seconds" }), () =>
        Effect.succeed(HttpServerResponse.text("x", { headers: { "cache-control": "max-age=31536000" } }))
      )
      yield* serve(request("/asset"))
      yield* TestClock.adjust("9 seconds")
      assert.strictEqual((yield* serve(request("/asset"))).headers["x-cache"], "HIT")
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* serve(request("/asset"))).headers["x-cache"], "MISS")
      assert.strictEqual(counter.calls, 2)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("HEAD is answered from a stored GET; the server omits the body", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute" }), () =>
        Effect.succeed(HttpServerResponse.text("body"))
      )
      yield* serve(request("/h"))
      const head = yield* serve(request("/h", { method: "HEAD" }))
      assert.strictEqual(head.headers["x-cache"], "HIT")
      assert.strictEqual(counter.calls, 1)
    }).pipe(Effect.provide(Memory))
  )

  it("invalid options throw at the call, naming the option", () => {
    assert.throws(() => HttpCache.middleware({ ttl: 0 }), /option "ttl"/)
    assert.throws(() => HttpCache.middleware({ staleFor: "soon" as never }), /option "staleFor"/)
    assert.throws(() => HttpCache.middleware({ statuses: [206] }), /option "statuses"/)
    assert.throws(() => HttpCache.middleware({ vary: ["bad header"] }), /option "vary"/)
    assert.throws(() => HttpCache.middleware({ name: "bad:name" }), /option "name"/)
    assert.throws(() => HttpCache.middleware({ routes: { "users/:id": {} } }), /option "routes"/)
    assert.throws(() => HttpCache.middleware({ routes: { "/a": { ttl: -1 } } }), /routes\["\/a"\]\.ttl/)
    HttpCache.middleware({ name: "http-maxttl", maxTtl: "1 minute" })
    assert.throws(() => HttpCache.middleware({ name: "http-maxttl", maxTtl: "2 minutes" }), /option "maxTtl"/)
  })
})

describe("HttpCache: stale windows and single flight", () => {
  it.effect("stale-while-revalidate: stale served at once, one revalidation per key, then the new response", () =>
    Effect.gen(function* () {
      let version = 0
      const { counter, serve } = server(HttpCache.middleware({ ttl: "10 seconds", staleFor: "20 seconds" }), () =>
        Effect.sleep("1 second").pipe(Effect.as(HttpServerResponse.text(`v${++version}`)))
      )
      const first = yield* Effect.forkChild(serve(request("/swr")))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(text(yield* Fiber.join(first)), "v1")
      yield* TestClock.adjust("10 seconds") // stale
      const stale = yield* Effect.all(
        Array.from({ length: 50 }, () => serve(request("/swr"))),
        { concurrency: "unbounded" }
      )
      assert.isTrue(stale.every((r) => r.headers["x-cache"] === "STALE" && text(r) === "v1"))
      yield* settle
      assert.strictEqual(counter.calls, 2, "50 stale readers started one revalidation")
      yield* TestClock.adjust("1 second") // the revalidation finishes
      yield* settle
      const fresh = yield* serve(request("/swr"))
      assert.strictEqual(fresh.headers["x-cache"], "HIT")
      assert.strictEqual(text(fresh), "v2")
      // RFC 9111 §4.2.3: the handler's 1 s is its response_delay.
      assert.strictEqual(fresh.headers["age"], "1")
      const stats = yield* httpStats()
      assert.strictEqual(stats.staleHits, 50)
      assert.strictEqual(stats.revalidations, 1)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("past the stale window the reader waits for the origin", () =>
    Effect.gen(function* () {
      let version = 0
      const { serve } = server(HttpCache.middleware({ ttl: "10 seconds", staleFor: "5 seconds" }), () =>
        Effect.succeed(HttpServerResponse.text(`v${++version}`))
      )
      yield* serve(request("/gone"))
      yield* TestClock.adjust("15 seconds")
      const after = yield* serve(request("/gone"))
      assert.strictEqual(after.headers["x-cache"], "MISS")
      assert.strictEqual(text(after), "v2")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("stale-if-error: a 5xx or a failure inside the window serves the stale response", () =>
    Effect.gen(function* () {
      let mode: "ok" | "500" | "fail" | "404" = "ok"
      const { serve } = server(
        HttpCache.middleware({ ttl: "10 seconds", staleWhileRevalidate: 0, staleIfError: "1 minute" }),
        () =>
          mode === "ok"
            ? Effect.succeed(HttpServerResponse.text("good"))
            : mode === "500"
              ? Effect.succeed(HttpServerResponse.text("oops", { status: 500 }))
              : mode === "404"
                ? Effect.succeed(
                    HttpServerResponse.text("gone", { status: 404, headers: { "cache-control": "no-store" } })
                  )
                : Effect.die("database down")
      )
      yield* serve(request("/sie"))
      yield* TestClock.adjust("20 seconds")
      mode = "500"
      const on500 = yield* serve(request("/sie"))
      assert.strictEqual(on500.headers["x-cache"], "STALE")
      assert.strictEqual(text(on500), "good")
      mode = "fail"
      const onDefect = yield* serve(request("/sie"))
      assert.strictEqual(onDefect.headers["x-cache"], "STALE")
      mode = "404"
      const on404 = yield* serve(request("/sie"))
      assert.strictEqual(on404.status, 404, "a 4xx is an answer, not an error")
      yield* TestClock.adjust("1 minute")
      mode = "500"
      const late = yield* serve(request("/sie"))
      assert.strictEqual(late.status, 500)
      mode = "fail"
      const exit = yield* Effect.exit(serve(request("/sie")))
      assert.strictEqual(exit._tag, "Failure")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("single flight: 30 concurrent misses of a key run the handler once", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute" }), () =>
        Effect.as(Deferred.await(gate), HttpServerResponse.text("once"))
      )
      const fibers = yield* Effect.forEach(Array.from({ length: 30 }), () => Effect.forkChild(serve(request("/hot"))))
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      const responses = yield* Effect.forEach(fibers, Fiber.join)
      assert.strictEqual(counter.calls, 1)
      assert.isTrue(responses.every((r) => text(r) === "once"))
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a response that may not be stored is never handed to the other requests of a flight", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute" }), (req) =>
        Effect.as(
          Deferred.await(gate),
          HttpServerResponse.setCookieUnsafe(HttpServerResponse.text(`for ${req.headers["x-who"]}`), "sid", "secret")
        )
      )
      const fibers = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => Effect.forkChild(serve(request("/welcome", { headers: { "x-who": `client-${i}` } })))
      )
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      const responses = yield* Effect.forEach(fibers, Fiber.join)
      responses.forEach((r, i) => {
        assert.strictEqual(text(r), `for client-${i}`)
      })
      assert.strictEqual(counter.calls, 10)
      const stats = yield* httpStats()
      assert.strictEqual(stats.sets, 0)
      assert.strictEqual(stats.loadFailures, 0, "not storable is not a failure")
    }).pipe(Effect.provide(Memory))
  )
})

describe("HttpCache: keys", () => {
  it.effect("Vary: each variant is stored and served to its own requests", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute" }), (req) =>
        Effect.succeed(
          HttpServerResponse.text(req.headers["accept-language"] === "fr" ? "bonjour" : "hello", {
            headers: { vary: "Accept-Language" }
          })
        )
      )
      const en = { headers: { "accept-language": "en" } }
      const fr = { headers: { "accept-language": "fr" } }
      assert.strictEqual(text(yield* serve(request("/greet", en))), "hello")
      assert.strictEqual(text(yield* serve(request("/greet", fr))), "bonjour")
      const again = yield* Effect.all([serve(request("/greet", en)), serve(request("/greet", fr))])
      assert.deepStrictEqual(again.map(text), ["hello", "bonjour"])
      assert.deepStrictEqual(
        again.map((r) => r.headers["x-cache"]),
        ["HIT", "HIT"]
      )
      assert.strictEqual(counter.calls, 2)
      assert.strictEqual(again[0]!.headers["vary"], "Accept-Language", "Vary goes out as received")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("policy vary: keyed on the header and added to Vary", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute", vary: ["X-Tenant"] }), (req) =>
        Effect.succeed(HttpServerResponse.text(`tenant ${req.headers["x-tenant"] ?? "none"}`))
      )
      for (const tenant of ["a", "b", "a", "b"]) {
        assert.strictEqual(text(yield* serve(request("/t", { headers: { "x-tenant": tenant } }))), `tenant ${tenant}`)
      }
      assert.strictEqual(text(yield* serve(request("/t"))), "tenant none")
      assert.strictEqual(counter.calls, 3)
      assert.strictEqual((yield* serve(request("/t"))).headers["vary"], "x-tenant")
    }).pipe(Effect.provide(Memory))
  )

  it.effect("the URL as the handler sees it: query order shares a key; extra slashes and case do not", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute" }), (req) =>
        Effect.succeed(HttpServerResponse.text(req.url.split("?")[0]!))
      )
      yield* serve(request("/search?b=2&a=1"))
      assert.strictEqual((yield* serve(request("/search?a=1&b=2"))).headers["x-cache"], "HIT")
      // The handler sees the raw path: a handler that redirects /docs to
      // /docs/ must never have one answer the other (a redirect loop).
      const slashes = yield* serve(request("//search/?a=1&b=2"))
      assert.strictEqual(slashes.headers["x-cache"], "MISS")
      assert.strictEqual(text(slashes), "//search/")
      assert.strictEqual((yield* serve(request("/search?a=1&b=2&a=0"))).headers["x-cache"], "MISS")
      assert.strictEqual((yield* serve(request("/search?a=0&b=2&a=1"))).headers["x-cache"], "MISS", "value order kept")
      assert.strictEqual((yield* serve(request("/Search?a=1&b=2"))).headers["x-cache"], "MISS")
      assert.strictEqual(text(yield* serve(request("/search?b=2&a=1"))), "/search")
      assert.strictEqual(counter.calls, 5)
    }).pipe(Effect.provide(Memory))
  )

  it("property: two targets share a key only when the router gives them the same route, params and query", () => {
    const router = FindMyWay.make<string>()
    for (const path of ["/users/:id", "/users/:id/posts/:post", "/files/*", "/static/app.css", "/a/b"] as const) {
      router.on("GET", path, path)
    }
    const segment = fc.constantFrom(
      "users",
      "Users",
      "files",
      "static",
      "app.css",
      "a",
      "b",
      "1",
      "Ab",
      "x%2Fy",
      "%41",
      "posts",
      ""
    )
    const target = fc
      .record({
        segments: fc.array(segment, { minLength: 1, maxLength: 4 }),
        slashes: fc.array(fc.constantFrom("/", "//"), { minLength: 4, maxLength: 4 }),
        trailing: fc.boolean(),
        query: fc.array(fc.tuple(fc.constantFrom("a", "b", "c%20d"), fc.constantFrom("1", "2", "x+y", "%3D")), {
          maxLength: 3
        })
      })
      .map(({ segments, slashes, trailing, query }) => {
        const path = segments.map((s, i) => slashes[i]! + s).join("") + (trailing ? "/" : "")
        return query.length === 0 ? path : `${path}?${query.map(([k, v]) => `${k}=${v}`).join("&")}`
      })
    const seen = new Map<string, { url: string; view: string }>()
    const norm = { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true }
    fc.assert(
      fc.property(target, (url) => {
        const found = router.find("GET", url)
        const key = normalizeTarget(url, norm)
        if (found === undefined || key === undefined) return
        const sortedQuery = Object.keys(found.searchParams)
          .sort()
          .map((k) => [k, found.searchParams[k]])
        const view = JSON.stringify([found.handler, { ...found.params }, sortedQuery])
        const id = JSON.stringify(key)
        const before = seen.get(id)
        if (before === undefined) seen.set(id, { url, view })
        else assert.strictEqual(view, before.view, `${url} and ${before.url} share a key but route differently`)
      }),
      { numRuns: 3_000 }
    )
    assert.isAbove(seen.size, 50)
  })

  it("property: absolute-form and mixed-case targets get the key of what the router routes, or none", () => {
    // Node's adapter routes an absolute-form target as new URL(target)'s
    // pathname + search; an origin-form one as written. The key's target
    // must be exactly that, or the request bypasses.
    const routerView = (target: string): string => {
      if (!/^https?:\/\//i.test(target)) return target
      const url = new URL(target)
      return url.pathname + url.search
    }
    const originalUrl = (target: string) => (target.startsWith("/") ? `http://shop.test${target}` : target)
    const part = fc.constantFrom("page", "Page", "..", ".", "%2e", "a\\b", "x", "", "%70age", "q=1&", "<b>")
    const target = fc
      .record({
        scheme: fc.constantFrom("", "http://", "HTTP://", "hTtP://", "https://", "HTTPS://"),
        host: fc.constantFrom("shop.test", "Shop.Test", "h:8080"),
        segments: fc.array(part, { maxLength: 4 }),
        tail: fc.constantFrom("", "?q=1", "?q=1&/page", "?&/x/../y", "#frag", ";p=1", "?a=<b>")
      })
      .map(({ scheme, host, segments, tail }) => {
        const path = segments.length === 0 ? "" : `/${segments.join("/")}`
        return scheme === "" ? `${path || "/"}${tail}` : `${scheme}${host}${path}${tail}`
      })
    let keyed = 0
    let bypassed = 0
    fc.assert(
      fc.property(target, (t) => {
        let view: string
        try {
          view = routerView(t)
        } catch {
          return
        }
        const routed = routedTarget(originalUrl(t))
        if (routed === undefined) {
          bypassed++
          return
        }
        keyed++
        assert.strictEqual(routed, view, `${t}: keyed as ${routed}, routed as ${view}`)
      }),
      { numRuns: 5_000 }
    )
    assert.isAbove(keyed, 500)
    assert.isAbove(bypassed, 100)
  })

  it.effect("routes: a policy per router pattern; false never caches", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(
        HttpCache.middleware({
          ttl: "1 minute",
          routes: { "/live/*": false, "/slow/:id": { ttl: "1 hour" } }
        }),
        () => Effect.succeed(HttpServerResponse.text("x"))
      )
      yield* serve(request("/live/feed"))
      const live = yield* serve(request("/live/feed"))
      assert.isUndefined(live.headers["x-cache"])
      yield* serve(request("/slow/1"))
      yield* TestClock.adjust("30 minutes")
      assert.strictEqual((yield* serve(request("/slow/1"))).headers["x-cache"], "HIT")
      yield* serve(request("/other"))
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual((yield* serve(request("/other"))).headers["x-cache"], "REVALIDATED")
      assert.strictEqual(counter.calls, 5)
    }).pipe(Effect.provide(Memory))
  )
})

describe("HttpCache: users and invalidation", () => {
  it.effect("per-user key: each user gets their own entry, marked private; no user with credentials bypasses", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(
        HttpCache.middleware({
          ttl: "1 minute",
          user: (req) => {
            const auth = req.headers["authorization"]
            return auth?.startsWith("Bearer ") ? auth.slice(7) : undefined
          }
        }),
        (req) => Effect.succeed(HttpServerResponse.text(`me: ${req.headers["authorization"] ?? "anonymous"}`))
      )
      const alice = { headers: { authorization: "Bearer alice" } }
      const bob = { headers: { authorization: "Bearer bob" } }
      const a1 = yield* serve(request("/me", alice))
      assert.strictEqual(a1.headers["cache-control"], "private")
      assert.strictEqual(text(yield* serve(request("/me", bob))), "me: Bearer bob")
      assert.strictEqual(text(yield* serve(request("/me", alice))), "me: Bearer alice")
      assert.strictEqual(text(yield* serve(request("/me"))), "me: anonymous")
      assert.strictEqual((yield* serve(request("/me", alice))).headers["x-cache"], "HIT")
      const basic = yield* serve(request("/me", { headers: { authorization: "Basic eA==" } }))
      assert.strictEqual(basic.headers["x-cache"], "BYPASS")
      assert.strictEqual(counter.calls, 4)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("a successful unsafe request invalidates its path (every query) and a same-host Location", () =>
    Effect.gen(function* () {
      let version = 1
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute" }), (req) => {
        if (req.method === "POST") {
          return Effect.succeed(
            HttpServerResponse.text("created", { status: 201, headers: { location: "http://example.test/users/7" } })
          )
        }
        if (req.method === "DELETE") return Effect.succeed(HttpServerResponse.text("no", { status: 403 }))
        if (req.method === "PUT") {
          version++
          return Effect.succeed(
            HttpServerResponse.empty({ status: 204, headers: { location: "https://other.test/users" } })
          )
        }
        return Effect.succeed(HttpServerResponse.text(`${req.url} v${version}`))
      })
      const get = (path: string) => Effect.map(serve(request(path)), (r) => r.headers["x-cache"])
      for (const path of ["/users", "/users?page=2", "/users/7", "/users/8"]) yield* get(path)
      assert.deepStrictEqual(yield* Effect.forEach(["/users", "/users?page=2", "/users/7"], get), ["HIT", "HIT", "HIT"])
      yield* serve(request("/users", { method: "POST" }))
      // An invalidation wins a tie: entries stored in its millisecond count as invalidated.
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(yield* Effect.forEach(["/users", "/users?page=2", "/users/7", "/users/8"], get), [
        "MISS",
        "MISS",
        "MISS",
        "HIT"
      ])
      yield* serve(request("/users/8", { method: "DELETE" })) // 403: nothing changes
      assert.strictEqual(yield* get("/users/8"), "HIT")
      yield* serve(request("/users/8", { method: "PUT" })) // other host in Location: ignored
      assert.deepStrictEqual(yield* Effect.forEach(["/users/8", "/users"], get), ["MISS", "HIT"])
      assert.strictEqual(counter.calls, 4 + 3 + 1 + 1 + 1 + 1)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("invalidatePath and invalidateKeyspace", () =>
    Effect.gen(function* () {
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute" }), () =>
        Effect.succeed(HttpServerResponse.text("x"))
      )
      yield* serve(request("/p/1"))
      yield* serve(request("/p/2"))
      yield* HttpCache.invalidatePath("/p//1/")
      assert.strictEqual((yield* serve(request("/p/1"))).headers["x-cache"], "MISS")
      assert.strictEqual((yield* serve(request("/p/2"))).headers["x-cache"], "HIT")
      yield* Cachet.invalidateKeyspace(HttpCache.keyspace())
      assert.strictEqual((yield* serve(request("/p/2"))).headers["x-cache"], "MISS")
      assert.strictEqual(counter.calls, 4)
    }).pipe(Effect.provide(Memory))
  )

  it.effect("HttpCache.etag alone: ETag from the body and 304s, no Cachet needed", () =>
    Effect.gen(function* () {
      const app = HttpCache.etag()(Effect.succeed(HttpServerResponse.text("hello")))
      const first = yield* app.pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, request("/e")))
      const again = yield* app.pipe(
        Effect.provideService(
          HttpServerRequest.HttpServerRequest,
          request("/e", { headers: { "if-none-match": first.headers["etag"]! } })
        )
      )
      assert.strictEqual(again.status, 304)
      assert.strictEqual(again.body._tag, "Empty")
      const weak = HttpCache.etag({ weak: true })(Effect.succeed(HttpServerResponse.text("hello")))
      const w = yield* weak.pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, request("/e")))
      assert.match(w.headers["etag"]!, /^W\/"/)
    })
  )
})

describe.skipIf(!requireRedis())("HttpCache on Redis", () => {
  const redis = sharedServer()
  const prefix = `http-${runId()}`
  const Live = Layer.unwrap(
    Effect.sync(() => Cachet.layer().pipe(Layer.provide(RedisStore.layer({ url: redis.get().url, prefix }))))
  )

  it.live("responses are stored in Redis as data: binary bodies round-trip, base64 in the envelope", () =>
    Effect.gen(function* () {
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i)
      const { counter, serve } = server(HttpCache.middleware({ ttl: "1 minute" }), () =>
        Effect.succeed(HttpServerResponse.uint8Array(bytes, { contentType: "application/octet-stream" }))
      )
      const miss = yield* serve(request("/blob"))
      const hit = yield* serve(request("/blob"))
      assert.strictEqual(miss.headers["x-cache"], "MISS")
      assert.strictEqual(hit.headers["x-cache"], "HIT")
      assert.strictEqual(counter.calls, 1)
      assert.deepStrictEqual(hit.body._tag === "Uint8Array" ? [...hit.body.body] : [], [...bytes])
      const client = yield* rawClient(redis.get().port)
      const keys = yield* Effect.promise(() => client.keys(`${prefix}:http:*`))
      assert.strictEqual(keys.length, 1)
      const stored = JSON.parse((yield* Effect.promise(() => client.get(keys[0]!)))!)
      assert.strictEqual(stored.d.body, Buffer.from(bytes).toString("base64"))
      assert.strictEqual(stored.d.status, 200)
      assert.deepStrictEqual(stored.t, ["http:/blob"])
    }).pipe(Effect.provide(Live), Effect.scoped)
  )
})
