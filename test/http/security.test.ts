import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Cachet from "../../src/Cachet.ts"
import { HttpCache } from "../../src/http/index.ts"

// A router app behind the global cache, served by effect's web handler:
// routing, prefixes, parsed query and request headers are the real ones.

const reflect = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const query = yield* HttpServerRequest.ParsedSearchParams
  if (request.headers["x-http-method-override"] === "DELETE") {
    return HttpServerResponse.text("deleted everything", { status: 200 })
  }
  const host = request.headers["x-forwarded-host"] ?? request.headers["host"] ?? "?"
  const prefix = request.headers["x-forwarded-prefix"] ?? ""
  const lang = typeof query["lang"] === "string" ? query["lang"] : "en"
  return HttpServerResponse.html(`<a href="https://${host}${prefix}/home">home</a> lang=${lang}`)
})

const account = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const who = request.cookies["session"] ?? request.headers["authorization"] ?? "nobody"
  return HttpServerResponse.text(`balance of ${who}: 1000`, { contentType: "text/css" })
})

const accountWithMaxAge = Effect.map(account, (r) => HttpServerResponse.setHeader(r, "cache-control", "max-age=600"))

const Routes = HttpRouter.addAll([
  HttpRouter.route("GET", "/page", reflect),
  HttpRouter.route("GET", "/account/*", account),
  HttpRouter.route("GET", "/profile/*", accountWithMaxAge),
  HttpRouter.route("GET", "/me", account)
])

const makeApp = (options: HttpCache.Options) => {
  const app = HttpRouter.toWebHandler(
    Layer.mergeAll(Routes, HttpCache.layer(options)).pipe(Layer.provideMerge(Cachet.layerMemory())),
    { disableLogger: true }
  )
  afterAll(() => app.dispose())
  const fetch = async (path: string, headers: Record<string, string> = {}) => {
    const response = await app.handler(
      new Request(`http://shop.test${path}`, { headers: { host: "shop.test", ...headers } })
    )
    return { status: response.status, xCache: response.headers.get("x-cache"), body: await response.text() }
  }
  return fetch
}

describe("cache poisoning: unkeyed inputs never reach a clean request", () => {
  // An aggressive policy (a CDN told to cache everything for an hour).
  const fetch = makeApp({ ttl: "1 hour", name: "http-poison" })
  const clean = '<a href="https://shop.test/home">home</a> lang=en'

  it("X-Forwarded-Host, X-Forwarded-Prefix, X-HTTP-Method-Override, Host, ;-cloaked params", async () => {
    const attacks: Array<readonly [string, Record<string, string>]> = [
      ["/page", { "x-forwarded-host": "evil.test" }],
      ["/page", { "x-forwarded-prefix": "/evil" }],
      ["/page", { "x-forwarded-host": "evil.test", "x-forwarded-prefix": "/x" }],
      ["/page", { "x-http-method-override": "DELETE" }],
      ["/page", { host: "evil.test" }],
      ["/page;lang=evil", {}],
      ["/page?lang=evil", {}],
      ["//page/", { "x-forwarded-host": "evil.test" }]
    ]
    // Each attack twice: the second would be served from the cache if it was stored.
    for (const [path, headers] of attacks) {
      await fetch(path, headers)
      await fetch(path, headers)
    }
    const victim = await fetch("/page")
    assert.strictEqual(victim.body, clean)
    const again = await fetch("/page")
    assert.strictEqual(again.body, clean)
    assert.strictEqual(again.xCache, "HIT")
    // The override request itself was never answered from, nor stored into, the cache.
    const override = await fetch("/page", { "x-http-method-override": "DELETE" })
    assert.strictEqual(override.xCache, "BYPASS")
  })

  it("the poisoned variants stay with the requests that carry them", async () => {
    const evil = await fetch("/page", { "x-forwarded-host": "evil.test" })
    assert.include(evil.body, "evil.test")
    assert.strictEqual((await fetch("/page")).body, clean)
  })
})

describe("cache deception: path confusion with a victim's credentials stores nothing", () => {
  const fetch = makeApp({ ttl: "1 hour", name: "http-deception" })

  it("/account/x.css with the victim's cookie is not stored; the attacker gets their own page", async () => {
    for (const path of ["/account/x.css", "/account/profile.css", "/account/x.css?v=1", "/profile/x.css"]) {
      const victim = await fetch(path, { cookie: "session=victim" })
      assert.strictEqual(victim.body, "balance of victim: 1000")
      assert.notStrictEqual(victim.xCache, "HIT")
      const attacker = await fetch(path)
      assert.strictEqual(attacker.body, "balance of nobody: 1000", `${path} leaked`)
      const attacker2 = await fetch(path, { cookie: "session=attacker" })
      assert.strictEqual(attacker2.body, "balance of attacker: 1000")
    }
  })
})

describe("credentials: one user's response is never served to another", () => {
  it("without a per-user key: Authorization requests are not stored", async () => {
    const fetch = makeApp({ ttl: "1 hour", name: "http-auth" })
    assert.strictEqual((await fetch("/me", { authorization: "Bearer alice" })).body, "balance of Bearer alice: 1000")
    assert.strictEqual((await fetch("/me", { authorization: "Bearer bob" })).body, "balance of Bearer bob: 1000")
    assert.strictEqual((await fetch("/me")).body, "balance of nobody: 1000")
    assert.strictEqual((await fetch("/me", { authorization: "Bearer bob" })).body, "balance of Bearer bob: 1000")
  })

  it("with a per-user key: 200 interleaved concurrent requests of 5 users each get their own", async () => {
    const fetch = makeApp({
      ttl: "1 hour",
      name: "http-users",
      user: (request) => request.headers["authorization"]?.replace(/^Bearer /, "")
    })
    const users = ["alice", "bob", "carol", "dave", "erin"]
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => users[i % users.length]!).map(async (user) => ({
        user,
        response: await fetch("/me", { authorization: `Bearer ${user}` })
      }))
    )
    for (const { user, response } of results) assert.strictEqual(response.body, `balance of Bearer ${user}: 1000`)
    assert.isTrue(
      results.some((r) => r.response.xCache === "HIT"),
      "per-user entries are reused"
    )
    assert.strictEqual((await fetch("/me")).body, "balance of nobody: 1000")
  })
})
