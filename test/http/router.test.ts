import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import * as Cachet from "../../src/Cachet.ts"
import { HttpCache } from "../../src/http/index.ts"

// effect/http integration: route-level middleware (with router prefixes) and
// HttpApi groups, through effect's web handler.

const webApp = (appLayer: Layer.Layer<never, never, any>) => {
  const app = HttpRouter.toWebHandler(appLayer as Layer.Layer<never, never, HttpRouter.HttpRouter>, {
    disableLogger: true
  })
  afterAll(() => app.dispose())
  return async (path: string, init?: RequestInit) => {
    const response = await app.handler(new Request(`http://api.test${path}`, init))
    return { status: response.status, xCache: response.headers.get("x-cache"), body: await response.text() }
  }
}

describe("HttpCache.layerRoute with HttpRouter", () => {
  let calls = 0
  const handler = Effect.gen(function* () {
    calls++
    const { id } = yield* HttpRouter.params
    return HttpServerResponse.text(`item ${id} (${calls})`)
  })
  const Cached = HttpCache.layerRoute({ name: "http-routes", ttl: "1 minute" })
  const V1 = HttpRouter.addAll([HttpRouter.route("GET", "/items/:id", handler)], { prefix: "/v1" }).pipe(
    Layer.provide(Cached)
  )
  const V2 = HttpRouter.addAll(
    [
      HttpRouter.route("GET", "/items/:id", handler),
      HttpRouter.route("PUT", "/items/:id", Effect.succeed(HttpServerResponse.empty()))
    ],
    { prefix: "/v2" }
  ).pipe(Layer.provide(Cached))
  const Plain = HttpRouter.addAll([HttpRouter.route("GET", "/plain/:id", handler)])
  const fetch = webApp(Layer.mergeAll(V1, V2, Plain).pipe(Layer.provide(Cachet.layerMemory())))

  it("caches the routes it is provided to, keyed on the full path (prefixes included)", async () => {
    const v1 = await fetch("/v1/items/1")
    const v2 = await fetch("/v2/items/1")
    assert.notStrictEqual(v1.body, v2.body, "the handler sees /items/1 for both, the cache does not mix them")
    assert.strictEqual((await fetch("/v1/items/1")).xCache, "HIT")
    assert.strictEqual((await fetch("/v2/items/1")).body, v2.body)
    const plain = await fetch("/plain/1")
    assert.isNull(plain.xCache)
    assert.notStrictEqual((await fetch("/plain/1")).body, plain.body)
  })

  it("a write through a cached route invalidates its path", async () => {
    await fetch("/v2/items/9")
    assert.strictEqual((await fetch("/v2/items/9")).xCache, "HIT")
    assert.strictEqual((await fetch("/v2/items/9", { method: "PUT" })).status, 204)
    assert.strictEqual((await fetch("/v2/items/9")).xCache, "MISS")
  })
})

describe("HttpCache with an HttpApi", () => {
  class Item extends Schema.Class<Item>("Item")({ id: Schema.Number, label: Schema.String }) {}
  const Items = HttpApiGroup.make("items")
    .add(HttpApiEndpoint.get("get", "/items/:id", { params: { id: Schema.NumberFromString }, success: Item }))
    .add(HttpApiEndpoint.get("health", "/health", { success: Schema.String }))
  class Api extends HttpApi.make("api").add(Items) {}

  let loads = 0
  const Handlers = HttpApiBuilder.group(Api, "items", (handlers) =>
    handlers
      .handle("get", ({ params }) =>
        Effect.sync(() => new Item({ id: params.id, label: `item ${params.id} #${++loads}` }))
      )
      .handle("health", () => Effect.succeed(`ok ${++loads}`))
  )

  const fetch = webApp(
    HttpApiBuilder.layer(Api).pipe(
      Layer.provide(Handlers),
      Layer.provide(HttpCache.layerRoute({ name: "http-api", ttl: "1 minute", routes: { "/health": false } })),
      Layer.provide(HttpServer.layerServices),
      Layer.provide(Cachet.layerMemory())
    )
  )

  it("the API's endpoints are cached by the route middleware; route policies apply", async () => {
    const first = await fetch("/items/3")
    assert.strictEqual(first.status, 200)
    assert.deepStrictEqual(JSON.parse(first.body), { id: 3, label: "item 3 #1" })
    const second = await fetch("/items/3")
    assert.strictEqual(second.xCache, "HIT")
    assert.strictEqual(second.body, first.body)
    assert.notStrictEqual((await fetch("/health")).body, (await fetch("/health")).body, "routes: false")
  })
})
