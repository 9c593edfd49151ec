import { createServer } from "node:http"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import { TestClock } from "effect/testing"
import * as Example from "../../examples/http-server.ts"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import { requireRedis } from "../harness/redis.ts"
import { sharedServer } from "../redis/helpers.ts"

// The example service on an ephemeral port of 127.0.0.1, over real HTTP
// (fetch). Under `it.effect` the server's fibers run on the TestClock, so
// Age and the stale windows move only when the test moves the clock.

const start = (options: Example.ServeOptions = {}) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Example.layer({ store: CacheStore.layerMemory(), dbLatency: 0, ...options, port: 0, host: "127.0.0.1" })
    )
    const server = Context.get(context, HttpServer.HttpServer)
    const address = server.address
    if (address._tag === "UnixPathAddress") return yield* Effect.die("unexpected unix socket")
    return { base: `http://127.0.0.1:${address.port}`, context }
  })

interface Got {
  readonly status: number
  readonly headers: Headers
  readonly body: string
}

const get = (url: string, init?: RequestInit): Effect.Effect<Got> =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

const json = (url: string, init?: RequestInit) => Effect.map(get(url, init), (r) => JSON.parse(r.body))

/** Real-time wait for background work that runs over sockets and the event loop. */
const pause = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

describe("the example service over real HTTP", () => {
  it.effect("MISS then HIT; 304 carries no body; Age grows with time", () =>
    Effect.gen(function* () {
      const { base } = yield* start()
      const first = yield* get(`${base}/users/1`)
      assert.strictEqual(first.status, 200)
      assert.strictEqual(first.headers.get("x-cache"), "MISS")
      assert.deepStrictEqual(JSON.parse(first.body), { id: 1, name: "Ada 1", email: "ada1@example.com" })
      const etag = first.headers.get("etag")!
      assert.match(etag, /^"[\w-]+"$/)

      const hit = yield* get(`${base}/users/1`)
      assert.strictEqual(hit.headers.get("x-cache"), "HIT")
      assert.strictEqual(hit.headers.get("age"), "0")

      const notModified = yield* get(`${base}/users/1`, { headers: { "if-none-match": etag } })
      assert.strictEqual(notModified.status, 304)
      assert.strictEqual(notModified.body, "")
      assert.strictEqual(notModified.headers.get("etag"), etag)
      assert.isNull(notModified.headers.get("content-type"))

      const ages: Array<string | null> = []
      for (const step of [1, 1, 2]) {
        yield* TestClock.adjust(`${step} seconds`)
        ages.push((yield* get(`${base}/users/1`)).headers.get("age"))
      }
      assert.deepStrictEqual(ages, ["1", "2", "4"])

      const head = yield* get(`${base}/users/1`, { method: "HEAD" })
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.body, "")
      assert.strictEqual(head.headers.get("x-cache"), "HIT")
    }).pipe(Effect.scoped)
  )

  it.effect("stale inside the window, one revalidation, then the new response replaces it", () =>
    Effect.gen(function* () {
      const { base, context } = yield* start()
      const db = Context.get(context, Example.Db)
      assert.strictEqual(JSON.parse((yield* get(`${base}/users/2`)).body).name, "Grace 2")
      // The source changes behind the caches' back (no HTTP write, no invalidation of the page).
      yield* db.save(new Example.User({ id: 2, name: "Grace Hopper", email: "grace@example.com" }))
      yield* Cachet.invalidate(Example.Users, { id: 2 }).pipe(Effect.provideContext(context))

      yield* TestClock.adjust("6 seconds") // past the route's 5 s ttl, inside its 30 s stale window
      const stale = yield* get(`${base}/users/2`)
      assert.strictEqual(stale.headers.get("x-cache"), "STALE")
      assert.strictEqual(JSON.parse(stale.body).name, "Grace 2")
      assert.strictEqual(stale.headers.get("age"), "6")

      let replaced: Got | undefined
      for (let i = 0; i < 100 && replaced === undefined; i++) {
        yield* pause(10)
        const r = yield* get(`${base}/users/2`)
        if (r.headers.get("x-cache") === "HIT") replaced = r
        else assert.strictEqual(r.headers.get("x-cache"), "STALE")
      }
      assert.isDefined(replaced, "the revalidation replaced the stale response")
      assert.strictEqual(JSON.parse(replaced!.body).name, "Grace Hopper")
      assert.strictEqual(replaced!.headers.get("age"), "0")
      const stats = yield* json(`${base}/cache/stats`)
      assert.strictEqual(stats.keyspaces.http.revalidations, 1, "one background revalidation")

      yield* TestClock.adjust("40 seconds") // past the stale window: the reader waits for the origin
      // The handler answers the cache's conditional request with 304
      // (HttpCache.etag on the route): nothing changed, the stored body is served.
      const revalidated = yield* get(`${base}/users/2`)
      assert.strictEqual(revalidated.headers.get("x-cache"), "REVALIDATED")
      assert.strictEqual(JSON.parse(revalidated.body).name, "Grace Hopper")
      const after = yield* json(`${base}/cache/stats`)
      assert.strictEqual(after.http.handlerNotModified, 1, "the handler answered 304")
      assert.strictEqual(after.http.byCache.REVALIDATED, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("writes: POST is write-through (201, Location), PUT is write-behind; both invalidate the page", () =>
    Effect.gen(function* () {
      const { base } = yield* start()
      const post = yield* get(`${base}/users`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "Lin", email: "lin@example.com" })
      })
      assert.strictEqual(post.status, 201)
      const location = post.headers.get("location")!
      assert.match(location, /^\/users\/\d+$/)
      const created = yield* get(`${base}${location}`)
      assert.strictEqual(JSON.parse(created.body).name, "Lin")
      const stats = yield* json(`${base}/cache/stats`)
      assert.strictEqual(stats.keyspaces.user.hits, 1, "the page was built from the write-through entry")
      assert.strictEqual(stats.keyspaces.user.loads, 0)

      yield* get(`${base}/users/3`)
      assert.strictEqual((yield* get(`${base}/users/3`)).headers.get("x-cache"), "HIT")
      yield* TestClock.adjust(1)
      const put = yield* get(`${base}/users/3`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "Edsger D.", email: "ewd@example.com" })
      })
      assert.strictEqual(put.status, 202)
      yield* TestClock.adjust(1)
      const after = yield* get(`${base}/users/3`)
      assert.strictEqual(after.headers.get("x-cache"), "MISS", "the PUT invalidated the page")
      assert.strictEqual(JSON.parse(after.body).name, "Edsger D.", "read-your-writes before the flush")
      const bad = yield* get(`${base}/users`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}"
      })
      assert.strictEqual(bad.status, 400)
    }).pipe(Effect.scoped)
  )
})

describe("the example service's cache endpoints", () => {
  it.live("stats, invalidate, clear, health, benchmark, metrics, dashboard", () =>
    Effect.gen(function* () {
      const { base } = yield* start({ dbLatency: "5 millis" })
      for (let i = 0; i < 3; i++) yield* get(`${base}/users/4`)
      yield* get(`${base}/users-aside/4`)
      yield* get(`${base}/users-aside/999`)

      const stats = yield* json(`${base}/cache/stats`)
      assert.strictEqual(stats.store.name, "memory")
      assert.strictEqual(stats.keyspaces.http.hits, 2)
      assert.strictEqual(stats.keyspaces.http.misses, 1)
      assert.strictEqual(stats.http.requests, 5)
      assert.strictEqual(stats.http.byCache.HIT, 2)
      assert.isAbove(stats.http.latencyMsTotal, 0)

      assert.deepStrictEqual(yield* json(`${base}/cache/invalidate?tag=users`, { method: "POST" }), {
        invalidated: "users"
      })
      assert.strictEqual((yield* get(`${base}/cache/invalidate`, { method: "POST" })).status, 400)
      const cleared = yield* json(`${base}/cache/clear`, { method: "POST" })
      assert.deepStrictEqual(Object.keys(cleared.cleared).sort(), ["bench", "http", "user"])
      assert.strictEqual((yield* get(`${base}/users/4`)).headers.get("x-cache"), "MISS")

      const health = yield* json(`${base}/cache/health`)
      assert.strictEqual(health.status, "ok")
      assert.strictEqual(health.store.name, "memory")
      assert.isTrue(health.store.ok)
      assert.isAtLeast(health.store.latencyMillis, 0)
      assert.deepStrictEqual(health.breakers, [])
      assert.strictEqual(health.journalDepth, 0)
      assert.strictEqual(health.storeErrors, 0)

      const bench = yield* json(`${base}/benchmark`)
      assert.isAtLeast(bench.uncachedMs, 4)
      assert.isAtLeast(bench.missMs, 4)
      assert.isBelow(bench.hitMs, bench.uncachedMs / 10)
      assert.isAbove(bench.speedup, 10)

      const metrics = yield* get(`${base}/metrics`)
      assert.strictEqual(metrics.status, 200)
      assert.include(metrics.headers.get("content-type")!, "text/plain")
      assert.match(metrics.body, /cachet_requests_total\{keyspace="http",result="hit"\} \d+/)
      assert.match(metrics.body, /cachet_load_duration_seconds_bucket\{/)

      const dashboard = yield* get(`${base}/cache/dashboard`)
      assert.strictEqual(dashboard.status, 200)
      assert.include(dashboard.headers.get("content-type")!, "text/html")
      assert.notMatch(dashboard.body, /<script[^>]+src=|<link[^>]+href=["']https?:/, "no external resources")
    }).pipe(Effect.scoped)
  )

  // Real time: the exporter posts over real HTTP to a collector on loopback.
  it.live("with an OTLP endpoint, the request's spans and cachet's are exported", () =>
    Effect.gen(function* () {
      const bodies: Array<{ readonly path: string; readonly body: string }> = []
      const collector = yield* Effect.acquireRelease(
        Effect.promise(
          () =>
            new Promise<import("node:http").Server>((resolve) => {
              const s = createServer((req, res) => {
                let body = ""
                req.on("data", (chunk) => (body += chunk))
                req.on("end", () => {
                  bodies.push({ path: req.url ?? "", body })
                  res.writeHead(200, { "content-type": "application/json" }).end("{}")
                })
              })
              s.listen(0, "127.0.0.1", () => resolve(s))
            })
        ),
        (s) => Effect.promise(() => new Promise<void>((resolve) => s.close(() => resolve())))
      )
      const address = collector.address()
      if (address === null || typeof address === "string") return yield* Effect.die("no collector port")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { base } = yield* start({ otlpEndpoint: `http://127.0.0.1:${address.port}` })
          assert.strictEqual((yield* get(`${base}/users-aside/3`)).status, 200)
        })
      )
      // Closing the service flushed the exporter.
      const traces = bodies.filter((b) => b.path === "/v1/traces").map((b) => b.body)
      assert.isAbove(traces.length, 0, "traces were posted")
      const all = traces.join("\n")
      assert.include(all, '"cachet.load"')
      assert.include(all, '"cachet.keyspace"')
      assert.include(all, '"cachet-example"')
      assert.notInclude(all, '"cachet.key"', "no key values unless asked")
    })
  )

  it("CACHET_TIERED=1 without REDIS_URL says so and uses memory", () => {
    const warnings: Array<string> = []
    const original = console.warn
    console.warn = (message: string) => void warnings.push(message)
    try {
      Example.storeFromEnv({ CACHET_TIERED: "1" })
    } finally {
      console.warn = original
    }
    assert.match(warnings.join("\n"), /CACHET_TIERED=1 needs REDIS_URL/)
  })
})

describe.skipIf(!requireRedis())("the example service on Redis", () => {
  const redis = sharedServer()

  for (const [name, env] of [
    ["REDIS_URL", {}],
    ["CACHET_TIERED=1", { CACHET_TIERED: "1" }]
  ] as const) {
    it.live(`${name}: responses and users are cached in Redis`, () =>
      Effect.gen(function* () {
        const store = Example.storeFromEnv({
          REDIS_URL: redis.get().url,
          CACHET_REDIS_PREFIX: `example-${name.length}-${Date.now()}`,
          ...env
        })
        const { base } = yield* start({ store })
        assert.strictEqual((yield* get(`${base}/users/5`)).headers.get("x-cache"), "MISS")
        assert.strictEqual((yield* get(`${base}/users/5`)).headers.get("x-cache"), "HIT")
        const health = yield* json(`${base}/cache/health`)
        assert.strictEqual(health.status, "ok")
        assert.notStrictEqual(health.store, "memory")
      }).pipe(Effect.scoped)
    )
  }
})
