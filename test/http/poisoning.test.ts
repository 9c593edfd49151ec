import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import { HttpCache } from "../../src/http/index.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import { get, type RawResponse, raw, serveNode } from "./raw.ts"

// The security review's raw requests, sent over TCP to a real NodeHttpServer
// running the README's setup (a global HttpCache layer, memory store). Each
// attack is sent first (twice, so that a stored answer would be reused), then
// the victim's clean request checks what it gets.

const origin = (request: HttpServerRequest.HttpServerRequest) =>
  Option.match(HttpServerRequest.toURL(request), { onNone: () => "?", onSome: (url) => url.origin })

const state = { version: 1, slowCalls: 0, slow: undefined as Deferred.Deferred<void> | undefined }

const Routes = HttpRouter.addAll([
  HttpRouter.route(
    "GET",
    "/",
    Effect.gen(function* () {
      const query = yield* HttpServerRequest.ParsedSearchParams
      return HttpServerResponse.html(`<h1>home</h1> q=${String(query["q"] ?? "")}`)
    })
  ),
  HttpRouter.route(
    "GET",
    "/page",
    Effect.map(Effect.service(HttpServerRequest.HttpServerRequest), (r) =>
      HttpServerResponse.html(`<a href="${origin(r)}/home">page</a>`)
    )
  ),
  HttpRouter.route(
    "GET",
    "/nocache",
    Effect.sync(() => HttpServerResponse.text(`fresh ${state.version++}`))
  ),
  HttpRouter.route(
    "GET",
    "/static/docs",
    // Like HttpStaticServer: the directory without its slash redirects to it.
    Effect.map(Effect.service(HttpServerRequest.HttpServerRequest), (r) =>
      r.url.endsWith("/")
        ? HttpServerResponse.text("docs index")
        : HttpServerResponse.empty({ status: 301, headers: { location: "/static/docs/" } })
    )
  ),
  HttpRouter.route(
    "GET",
    "/me",
    Effect.map(Effect.service(HttpServerRequest.HttpServerRequest), (r) =>
      HttpServerResponse.text(`balance of ${r.headers["authorization"] ?? r.cookies["session"] ?? "nobody"}`)
    )
  ),
  HttpRouter.route(
    "GET",
    "/account",
    Effect.map(Effect.service(HttpServerRequest.HttpServerRequest), (r) =>
      HttpServerResponse.text(`account of ${r.cookies["session"]}`, { headers: { "cache-control": "max-age=60" } })
    )
  ),
  HttpRouter.route(
    "GET",
    "/echo",
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const body = yield* Effect.orElseSucceed(request.text, () => "")
      return HttpServerResponse.html(`body=${body}`)
    })
  ),
  HttpRouter.route(
    "GET",
    "/items/:id",
    Effect.gen(function* () {
      const { id } = yield* HttpRouter.params
      if (id === "missing") return HttpServerResponse.text("no such item", { status: 404 })
      return HttpServerResponse.text(`item ${id} v${state.version}`)
    })
  ),
  HttpRouter.route(
    "DELETE",
    "/items/:id",
    Effect.sync(() => {
      state.version++
      return HttpServerResponse.empty()
    })
  ),
  HttpRouter.route(
    "GET",
    "/slow",
    Effect.gen(function* () {
      const call = ++state.slowCalls
      if (call === 1 && state.slow !== undefined) yield* Deferred.await(state.slow)
      return HttpServerResponse.text(`slow ${call}`)
    })
  ),
  HttpRouter.route(
    "GET",
    "/big",
    Effect.sync(() => HttpServerResponse.text("x".repeat(50_000)))
  ),
  HttpRouter.route(
    "GET",
    "/host",
    Effect.map(Effect.service(HttpServerRequest.HttpServerRequest), (r) =>
      HttpServerResponse.text(`host ${r.headers.host}`)
    )
  )
])

const startWith = (options: HttpCache.Options, store = CacheStore.layerMemory()) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(Cachet.layer().pipe(Layer.provideMerge(store)))
    const port = yield* serveNode(
      Layer.mergeAll(Routes, HttpCache.layer({ ttl: "1 hour", ...options })).pipe(
        Layer.provide(Layer.succeedContext(context))
      )
    )
    return { port, context }
  })

const start = (options: HttpCache.Options, store = CacheStore.layerMemory()) =>
  Effect.map(startWith(options, store), ({ port }) => port)

describe("absolute-form targets: the key, scheme and policy are what the router routes", () => {
  it.effect("GET http://host?q=<payload>&/page is not stored under /page (stored XSS)", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-xss" })
      const payload = "<script>alert(1)</script>"
      for (let i = 0; i < 2; i++) {
        const attack = yield* get(port, `http://shop.test?q=${payload}&/page`)
        assert.include(attack.body, payload, "the router served / with the payload")
      }
      const victim = yield* get(port, "/page")
      assert.strictEqual(victim.body, '<a href="http://shop.test/home">page</a>')
      assert.notInclude(victim.body, "script")
      assert.notInclude((yield* get(port, "/page")).body, "script")
      // The API root is not poisoned by it either.
      assert.strictEqual((yield* get(port, "/")).body, "<h1>home</h1> q=")
    }).pipe(Effect.scoped)
  )

  it.effect("HTTP:// (upper case) gets the routes policy: a route set to false is never stored", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-upper", routes: { "/nocache": false } })
      const a = yield* get(port, "HTTP://shop.test/nocache")
      const b = yield* get(port, "HTTP://shop.test/nocache")
      assert.notStrictEqual(a.body, b.body)
      assert.isUndefined(b.headers["x-cache"])
      const c = yield* get(port, "/nocache")
      assert.notStrictEqual(c.body, b.body)
    }).pipe(Effect.scoped)
  )

  it.effect("http://h/x/../page does not store /page under /x/../page", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-dots" })
      const attack = yield* get(port, "http://shop.test/x/../page")
      assert.strictEqual(attack.status, 200)
      assert.strictEqual(attack.headers["x-cache"], "BYPASS")
      yield* get(port, "http://shop.test/x/../page")
      // The router does not resolve dot segments in an origin-form target.
      const origin = yield* get(port, "/x/../page")
      assert.strictEqual(origin.status, 404)
    }).pipe(Effect.scoped)
  )

  it.effect("GET https://host/link over plain HTTP does not give later visitors https links", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-scheme" })
      const attack = yield* get(port, "https://shop.test/page")
      assert.strictEqual(attack.body, '<a href="https://shop.test/home">page</a>')
      yield* get(port, "https://shop.test/page")
      const victim = yield* get(port, "/page")
      assert.strictEqual(victim.body, '<a href="http://shop.test/home">page</a>')
      // Keyed apart, each is still cached.
      assert.strictEqual((yield* get(port, "https://shop.test/page")).headers["x-cache"], "HIT")
      assert.strictEqual((yield* get(port, "/page")).headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )

  it.effect("property: over real TCP, every cached answer equals what the uncached server answers", () =>
    Effect.gen(function* () {
      const cached = yield* start({ name: "raw-property" })
      const plain = yield* serveNode(Routes)
      const scheme = fc.constantFrom("http://", "HTTP://", "Http://", "https://", "")
      const host = fc.constantFrom("shop.test", "SHOP.test", "evil.test")
      const segment = fc.constantFrom("page", "Page", "x", "..", ".", "%2e%2e", "items", "5", "", "static", "docs")
      const query = fc.constantFrom("", "?q=1", "?q=<b>", "?q=1&/page", "?a=1&b=2", "?b=2&a=1", ";q=2", "#f")
      const target = fc
        .record({ scheme, host, segments: fc.array(segment, { minLength: 0, maxLength: 3 }), query })
        .map(({ scheme, host, segments, query }) => {
          const path = `/${segments.join("/")}`
          if (scheme === "") return path + query
          return `${scheme}${host}${segments.length === 0 && query.startsWith("?") ? "" : path}${query}`
        })
      const targets = fc.sample(target, { numRuns: 250, seed: 16 })
      let compared = 0
      let hits = 0
      const mismatches: Array<string> = []
      // Twice over: the first pass stores, the second is answered from what
      // any target stored; both must equal the handler's own answer.
      for (const pass of [0, 1]) {
        for (const t of targets) {
          const [a, b] = [yield* get(cached, t), yield* get(plain, t)]
          compared++
          if (a.headers["x-cache"] === "HIT") hits++
          if (a.status !== b.status || a.body !== b.body) {
            mismatches.push(`pass ${pass} ${t}: cached ${a.status} ${a.body} / handler ${b.status} ${b.body}`)
          }
        }
      }
      console.log(`absolute-form property: ${compared} compared, ${hits} hits, ${mismatches.length} mismatches`)
      assert.deepStrictEqual(mismatches.slice(0, 10), [])
      assert.isAbove(hits, 50, "the cache did answer")
    }).pipe(Effect.scoped)
  )
})

describe("paths are keyed as the handler sees them", () => {
  it.effect("a redirect from /static/docs never answers /static/docs/ (no redirect loop)", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-slash" })
      const redirect = yield* get(port, "/static/docs")
      assert.strictEqual(redirect.status, 301)
      assert.strictEqual((yield* get(port, "/static/docs")).headers["x-cache"], "HIT")
      const index = yield* get(port, "/static/docs/")
      assert.strictEqual(index.status, 200)
      assert.strictEqual(index.body, "docs index")
      assert.strictEqual((yield* get(port, "//static/docs/")).body, "docs index")
    }).pipe(Effect.scoped)
  )
})

describe("per-user keys are the credential the handler uses", () => {
  const user = (request: HttpServerRequest.HttpServerRequest) => request.cookies["session"]

  it.effect('an empty session cookie is no user: Alice\'s page never reaches "Cookie: session="', () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-user", user })
      const alice = yield* get(port, "/me", { Cookie: "session=", Authorization: "Bearer alice" })
      assert.strictEqual(alice.body, "balance of Bearer alice")
      assert.strictEqual(alice.headers["x-cache"], "BYPASS")
      yield* get(port, "/me", { Cookie: "session=", Authorization: "Bearer alice" })
      const bob = yield* get(port, "/me", { Cookie: "session=", Authorization: "Bearer bob" })
      assert.strictEqual(bob.body, "balance of Bearer bob")
      const anyone = yield* get(port, "/me", { Cookie: "session=" })
      assert.strictEqual(anyone.body, "balance of ")
    }).pipe(Effect.scoped)
  )

  it.effect("one session cookie with two Authorization headers: two entries (a digest of Authorization is keyed)", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-user-auth", user })
      const alice = yield* get(port, "/me", { Cookie: "session=s1", Authorization: "Bearer alice" })
      assert.strictEqual(alice.body, "balance of Bearer alice")
      assert.strictEqual(
        (yield* get(port, "/me", { Cookie: "session=s1", Authorization: "Bearer alice" })).headers["x-cache"],
        "HIT"
      )
      const bob = yield* get(port, "/me", { Cookie: "session=s1", Authorization: "Bearer bob" })
      assert.strictEqual(bob.body, "balance of Bearer bob")
      assert.notStrictEqual(bob.headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )

  it.effect("a user-keyed response goes out private, even with the handler's own max-age", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-private", user })
      const first = yield* get(port, "/account", { Cookie: "session=alice" })
      assert.strictEqual(first.headers["cache-control"], "private, max-age=60")
      const hit = yield* get(port, "/account", { Cookie: "session=alice" })
      assert.strictEqual(hit.headers["x-cache"], "HIT")
      assert.strictEqual(hit.headers["cache-control"], "private, max-age=60")
    }).pipe(Effect.scoped)
  )
})

describe("GET with a body", () => {
  it.effect("a Content-Length or Transfer-Encoding body bypasses: never answers bodyless GETs", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-body" })
      const payload = "<script>x</script>"
      const withLength = yield* raw(
        port,
        `GET /echo HTTP/1.1\r\nHost: shop.test\r\nContent-Length: ${payload.length}\r\n\r\n${payload}`
      )
      assert.strictEqual(withLength.body, `body=${payload}`)
      assert.strictEqual(withLength.headers["x-cache"], "BYPASS")
      const chunked = yield* raw(
        port,
        `GET /echo HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n${payload.length.toString(16)}\r\n${payload}\r\n0\r\n\r\n`
      )
      assert.strictEqual(chunked.headers["x-cache"], "BYPASS")
      const clean = yield* get(port, "/echo")
      assert.strictEqual(clean.body, "body=")
      assert.strictEqual((yield* get(port, "/echo")).headers["x-cache"], "HIT")
      assert.strictEqual((yield* get(port, "/echo", { "Content-Length": "0" })).headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )

  it.effect("a request waits on another request's load at most loadWait, then runs its own handler", () =>
    Effect.gen(function* () {
      state.slowCalls = 0
      state.slow = yield* Deferred.make<void>()
      const port = yield* start({ name: "raw-wait", loadWait: "2 seconds" })
      const first = yield* Effect.forkChild(get(port, "/slow"))
      // Real-time polling (bounded): the first request must have reached the handler.
      for (let i = 0; i < 200 && state.slowCalls === 0; i++) yield* Effect.promise(() => sleepReal(5))
      assert.strictEqual(state.slowCalls, 1)
      const second = yield* Effect.forkChild(get(port, "/slow"))
      // Move the TestClock until the second request gives up waiting (bounded).
      let answer: Option.Option<RawResponse> = Option.none()
      for (let i = 0; i < 100 && Option.isNone(answer); i++) {
        yield* TestClock.adjust("1 second")
        yield* Effect.promise(() => sleepReal(10))
        const exit = second.pollUnsafe()
        if (exit !== undefined && exit._tag === "Success") answer = Option.some(exit.value)
      }
      assert.isTrue(Option.isSome(answer), "the second request was answered while the first load still ran")
      const secondAnswer = Option.getOrThrow(answer)
      assert.strictEqual(secondAnswer.body, "slow 2")
      assert.strictEqual(secondAnswer.headers["x-cache"], "MISS")
      assert.strictEqual(state.slowCalls, 2)
      yield* Deferred.succeed(state.slow, undefined)
      const firstAnswer = yield* Fiber.join(first)
      assert.strictEqual(firstAnswer.body, "slow 1")
      state.slow = undefined
    }).pipe(Effect.scoped)
  )
})

const sleepReal = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const Data = Keyspace.make({ name: "raw-data", key: "d:{id}", value: Schema.Number, ttl: "1 hour" })

describe("HTTP entries have their own budget", () => {
  it.effect("distinct ?cb= URLs of a 50 KB page stay inside maxBytes and never evict data entries", () =>
    Effect.gen(function* () {
      const { port, context } = yield* startWith(
        { name: "raw-budget", maxBytes: 1024 * 1024 },
        CacheStore.layerMemory({ capacity: 500 })
      )
      const inCache = <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet | CacheStore.CacheStore>) =>
        Effect.provide(effect, context)
      yield* inCache(
        Effect.forEach(
          Array.from({ length: 300 }, (_, i) => i),
          (id) => Cachet.set(Data, { id }, id)
        )
      )
      for (let i = 0; i < 400; i++) assert.strictEqual((yield* get(port, `/big?cb=${i}`)).status, 200)
      const info = yield* inCache(
        Effect.flatMap(Effect.service(CacheStore.CacheStore), (store) => Effect.map(store.info, (info) => info!))
      )
      // 300 data entries and at most 1 MiB of 50 KB pages (~20).
      assert.isAtMost(info.entries, 300 + 21)
      assert.isAtLeast(info.entries, 300 + 10, "the budget keeps the most recent pages")
      const present = yield* inCache(
        Effect.forEach(
          Array.from({ length: 300 }, (_, i) => i),
          (id) => Cachet.get(Data, { id })
        )
      )
      assert.strictEqual(present.filter(Option.isSome).length, 300, "no data entry was evicted")
      // The most recent page is still served from the cache.
      assert.strictEqual((yield* get(port, "/big?cb=399")).headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )

  it.effect("by default at most 1,000 HTTP entries", () =>
    Effect.gen(function* () {
      const { port, context } = yield* startWith({ name: "raw-budget-default" })
      for (let i = 0; i < 1_100; i++) yield* get(port, `/items/${i}?cb=${i}`)
      const info = yield* Effect.provide(
        Effect.flatMap(Effect.service(CacheStore.CacheStore), (store) => Effect.map(store.info, (info) => info!)),
        context
      )
      assert.strictEqual(info.entries, 1_000)
    }).pipe(Effect.scoped)
  )
})

describe("invalidation tags, case, Host and error statuses", () => {
  it.effect("DELETEs of random paths: tag records capped by the store and kept only for maxTtl", () =>
    Effect.gen(function* () {
      const { port, context } = yield* startWith(
        { name: "raw-tags", maxTtl: "10 minutes" },
        CacheStore.layerMemory({ maxTags: 500 })
      )
      const tags = Effect.provide(
        Effect.flatMap(Effect.service(CacheStore.CacheStore), (store) => Effect.map(store.info, (info) => info!.tags)),
        context
      )
      for (let i = 0; i < 1_500; i++) yield* get(port, `/items/r${i}x${(i * 7919) % 1000}`, {}, "DELETE")
      assert.strictEqual(yield* tags, 500)
      // Invalidation still works past the cap...
      yield* TestClock.adjust("1 second")
      yield* get(port, "/items/kept")
      assert.strictEqual((yield* get(port, "/items/kept")).headers["x-cache"], "HIT")
      yield* get(port, "/items/kept", {}, "DELETE")
      assert.strictEqual((yield* get(port, "/items/kept")).headers["x-cache"], "MISS")
      // ...and records go once no HTTP entry they cover can be alive: after
      // the longest maxTtl of the HTTP keyspaces in the process (1 hour: the
      // other tests' default), not the runtime's 1-day tag retention.
      yield* TestClock.adjust("61 minutes")
      yield* get(port, "/items/one-more", {}, "DELETE")
      assert.strictEqual(yield* tags, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("DELETE /items/5 also drops /ITEMS/5 and /items/5/, which the router sends to the same handler", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-case" })
      for (const path of ["/items/5", "/ITEMS/5", "/items/5/"]) {
        yield* get(port, path)
        assert.strictEqual((yield* get(port, path)).headers["x-cache"], "HIT", path)
      }
      assert.strictEqual((yield* get(port, "/items/5", {}, "DELETE")).status, 204)
      for (const path of ["/items/5", "/ITEMS/5", "/items/5/"]) {
        const after = yield* get(port, path)
        assert.strictEqual(after.headers["x-cache"], "MISS", path)
        assert.match(after.body, /v\d+$/)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("Host is keyed as received", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-host" })
      assert.strictEqual((yield* get(port, "/host", { Host: "Shop.test" })).body, "host Shop.test")
      assert.strictEqual((yield* get(port, "/host", { Host: "shop.test" })).body, "host shop.test")
      assert.strictEqual((yield* get(port, "/host", { Host: "Shop.test" })).body, "host Shop.test")
    }).pipe(Effect.scoped)
  )

  it.effect("a 404 is cached for the short negativeTtl (10 s by default), longer only when asked", () =>
    Effect.gen(function* () {
      const port = yield* start({ name: "raw-404" })
      assert.strictEqual((yield* get(port, "/items/missing")).status, 404)
      assert.strictEqual((yield* get(port, "/items/missing")).headers["x-cache"], "HIT")
      yield* TestClock.adjust("11 seconds")
      assert.strictEqual(
        (yield* get(port, "/items/missing")).headers["x-cache"],
        "REVALIDATED",
        "the handler was asked"
      )
      const longer = yield* start({ name: "raw-404-long", negativeTtl: "1 hour" })
      yield* get(longer, "/items/missing")
      yield* TestClock.adjust("11 seconds")
      assert.strictEqual((yield* get(longer, "/items/missing")).headers["x-cache"], "HIT")
    }).pipe(Effect.scoped)
  )
})
