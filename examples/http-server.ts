/**
 * `npm run serve`: an HTTP service on cachet, to try with curl and a browser.
 *
 * - `GET  /users/:id`        stale-while-revalidate over the "database", behind the HTTP cache
 * - `GET  /users-aside/:id`  cache-aside (the HTTP cache is off for this route)
 * - `POST /users`            write-through: the saved user is cached at once (201, Location)
 * - `PUT  /users/:id`        write-behind: cached at once, written to the database later (202)
 * - `GET  /cache/stats`      counters per keyspace, HTTP request counts and latency
 * - `POST /cache/clear`      empties every keyspace
 * - `POST /cache/invalidate?tag=users`  invalidates a tag
 * - `GET  /cache/health`     `Cachet.health`: store ping and latency, breakers, bus, journal, write-behind (503 when down)
 * - `GET  /cache/dashboard`  a live page over /cache/stats
 * - `GET  /benchmark`        uncached vs miss vs hit timings, and the speedup
 * - `GET  /metrics`          Prometheus text (effect's PrometheusMetrics)
 *
 * Store: memory by default; Redis with REDIS_URL; tiered (L1 memory + L2
 * Redis) with CACHET_TIERED=1 and REDIS_URL. PORT (default 3000), HOST
 * (default 127.0.0.1), DB_LATENCY_MS (default 30). With
 * OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) the service
 * exports its traces, metrics and logs over OTLP/HTTP (effect/observability's
 * `Otlp`): the HTTP server's request spans with cachet's `cachet.load`,
 * `cachet.revalidate` and `cachet.store.*` under them. OTEL_SERVICE_NAME
 * names it (default "cachet-example").
 *
 * Tests start it with {@link layer} on port 0.
 */
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Clock, Context, Duration, Effect, Layer, Schema } from "effect"
import {
  FetchHttpClient,
  HttpMiddleware,
  HttpRouter,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse
} from "effect/http"
import { Otlp, PrometheusMetrics } from "effect/observability"
import * as CacheStore from "../src/CacheStore.ts"
import * as Cachet from "../src/Cachet.ts"
import { HttpCache } from "../src/http/index.ts"
import * as Keyspace from "../src/Keyspace.ts"
import * as RedisStore from "../src/redis/RedisStore.ts"
import * as Strategy from "../src/Strategy.ts"

// ---------------------------------------------------------------------------
// The domain: users in a slow "database"
// ---------------------------------------------------------------------------

export class User extends Schema.Class<User>("User")({
  id: Schema.Number,
  name: Schema.String,
  email: Schema.String
}) {}

export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", { id: Schema.Number }) {}

const UserInput = Schema.Struct({ name: Schema.String, email: Schema.String })

/** An in-memory table whose every query takes `latency` and is counted. */
export class Db extends Context.Service<
  Db,
  {
    readonly find: (id: number) => Effect.Effect<User, UserNotFound>
    /** A new id (the row is written by `save`). */
    readonly nextId: Effect.Effect<number>
    /** Writes a row; returns it as saved. */
    readonly save: (user: User) => Effect.Effect<User>
    readonly queries: () => number
  }
>()("example/Db") {
  static readonly layer = (latency: Duration.Input): Layer.Layer<Db> =>
    Layer.sync(Db, () => {
      const names = ["Ada", "Grace", "Edsger", "Barbara", "Alan", "Frances", "Donald", "Margaret"]
      const rows = new Map<number, User>()
      for (let id = 1; id <= 100; id++) {
        const name = `${names[(id - 1) % names.length]} ${id}`
        rows.set(id, new User({ id, name, email: `${name.split(" ")[0]!.toLowerCase()}${id}@example.com` }))
      }
      let nextId = 101
      let queries = 0
      const wait = Duration.isZero(Duration.fromInputUnsafe(latency)) ? Effect.void : Effect.sleep(latency)
      const slow = <A, E>(effect: Effect.Effect<A, E>) =>
        wait.pipe(
          Effect.andThen(Effect.suspend(() => effect)),
          Effect.tap(() => Effect.sync(() => queries++))
        )
      return {
        find: (id) =>
          slow(
            Effect.suspend(() => {
              const row = rows.get(id)
              return row === undefined ? Effect.fail(new UserNotFound({ id })) : Effect.succeed(row)
            })
          ),
        nextId: Effect.sync(() => nextId++),
        save: (user) =>
          slow(
            Effect.sync(() => {
              rows.set(user.id, user)
              return user
            })
          ),
        queries: () => queries
      }
    })
}

/** What is cached: users, fresh 30 s, served stale up to 5 min more. */
export const Users = Keyspace.make({
  name: "user",
  key: "user:{id}",
  value: User,
  ttl: "30 seconds",
  staleFor: "5 minutes",
  tags: () => ["users"]
})

/** For /benchmark only. */
const BenchValues = Keyspace.make({ name: "bench", key: "{n}", value: Schema.String, ttl: "1 minute" })

// ---------------------------------------------------------------------------
// HTTP request counters (for /cache/stats and the dashboard)
// ---------------------------------------------------------------------------

/** Counts requests to the app's routes (not /cache/*, /metrics, /benchmark) and their latency. */
export class RequestStats extends Context.Service<
  RequestStats,
  {
    readonly record: (path: string, millis: number, xCache: string | undefined) => void
    /** A handler answered a conditional request (the cache's revalidation) with 304. */
    readonly recordNotModified: () => void
    readonly snapshot: () => {
      readonly requests: number
      readonly latencyMsTotal: number
      readonly maxMs: number
      readonly p50Ms: number
      readonly p95Ms: number
      readonly byCache: Readonly<Record<string, number>>
      readonly handlerNotModified: number
    }
  }
>()("example/RequestStats") {
  static readonly layer: Layer.Layer<RequestStats> = Layer.sync(RequestStats, () => {
    let requests = 0
    let latencyMsTotal = 0
    let maxMs = 0
    let handlerNotModified = 0
    const recent: Array<number> = []
    const byCache: Record<string, number> = { HIT: 0, STALE: 0, REVALIDATED: 0, MISS: 0, BYPASS: 0, NONE: 0 }
    const quantile = (q: number) => {
      if (recent.length === 0) return 0
      const sorted = [...recent].sort((a, b) => a - b)
      return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
    }
    return {
      record: (path, millis, xCache) => {
        if (path.startsWith("/cache/") || path === "/metrics" || path === "/benchmark") return
        requests++
        latencyMsTotal += millis
        maxMs = Math.max(maxMs, millis)
        recent.push(millis)
        if (recent.length > 1000) recent.shift()
        const key = xCache ?? "NONE"
        byCache[key] = (byCache[key] ?? 0) + 1
      },
      recordNotModified: () => {
        handlerNotModified++
      },
      snapshot: () => ({
        handlerNotModified,
        requests,
        latencyMsTotal,
        maxMs,
        p50Ms: quantile(0.5),
        p95Ms: quantile(0.95),
        byCache: { ...byCache }
      })
    }
  })
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

const json = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })

const userId = HttpRouter.schemaPathParams(Schema.Struct({ id: Schema.NumberFromString }))

const notFound = (e: UserNotFound) => Effect.succeed(json({ error: "not found", id: e.id }, 404))
const badRequest = (e: { readonly message: string }) => Effect.succeed(json({ error: e.message }, 400))

const dashboardHtml = readFileSync(new URL("./dashboard/index.html", import.meta.url), "utf8")

const benchmark = Effect.gen(function* () {
  const db = yield* Db
  const run = 5
  const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.map(Effect.timed(effect), ([d]) => Duration.toMillis(d))
  const loader = (n: number) => Effect.map(db.find((n % 100) + 1), (u) => u.name)
  const salt = yield* Clock.currentTimeMillis
  let uncached = 0
  let miss = 0
  let hit = 0
  for (let i = 0; i < run; i++) uncached += yield* timed(loader(i))
  for (let i = 0; i < run; i++) {
    miss += yield* timed(loader(i).pipe(Strategy.cacheAside(BenchValues, { n: `${salt}-${i}` })))
  }
  const hits = 1_000
  for (let i = 0; i < hits; i++) {
    hit += yield* timed(loader(0).pipe(Strategy.cacheAside(BenchValues, { n: `${salt}-0` })))
  }
  const result = { uncachedMs: uncached / run, missMs: miss / run, hitMs: hit / hits }
  return json({
    ...result,
    samples: { uncached: run, miss: run, hit: hits },
    speedup: Math.round((result.uncachedMs / Math.max(result.hitMs, 1e-6)) * 10) / 10
  })
})

const routeList = [
  HttpRouter.route(
    "GET",
    "/users/:id",
    Effect.gen(function* () {
      const { id } = yield* userId
      const db = yield* Db
      return json(yield* db.find(id).pipe(Strategy.staleWhileRevalidate(Users, { id })))
    }).pipe(
      Effect.catchTag("UserNotFound", notFound),
      Effect.catchTag("SchemaError", badRequest),
      // Conditional GETs: when the HTTP cache revalidates a stale page it
      // sends the stored ETag, and an unchanged user answers 304 (no body
      // goes back into the store): X-Cache: REVALIDATED.
      HttpCache.etag(),
      Effect.tap((response) =>
        response.status === 304 ? Effect.map(Effect.service(RequestStats), (s) => s.recordNotModified()) : Effect.void
      )
    )
  ),
  HttpRouter.route(
    "GET",
    "/users-aside/:id",
    Effect.gen(function* () {
      const { id } = yield* userId
      const db = yield* Db
      return json(yield* db.find(id).pipe(Strategy.cacheAside(Users, { id })))
    }).pipe(Effect.catchTag("UserNotFound", notFound), Effect.catchTag("SchemaError", badRequest))
  ),
  HttpRouter.route(
    "POST",
    "/users",
    Effect.gen(function* () {
      const input = yield* HttpServerRequest.schemaBodyJson(UserInput)
      const db = yield* Db
      const id = yield* db.nextId
      // Write-through: the database write, then the saved row into the cache.
      const saved = yield* db.save(new User({ id, ...input })).pipe(Strategy.writeThrough(Users, { id }))
      return HttpServerResponse.jsonUnsafe(saved, { status: 201, headers: { location: `/users/${saved.id}` } })
    }).pipe(
      Effect.catchTag("SchemaError", badRequest),
      Effect.catchTag("HttpServerError", (e) => badRequest({ message: e.message }))
    )
  ),
  HttpRouter.route(
    "PUT",
    "/users/:id",
    Effect.gen(function* () {
      const { id } = yield* userId
      const input = yield* HttpServerRequest.schemaBodyJson(UserInput)
      const db = yield* Db
      const user = new User({ id, ...input })
      yield* Strategy.writeBehind(Users, { id }, user, Effect.asVoid(db.save(user)))
      return json({ accepted: user, note: "cached now; written to the database within the flush interval" }, 202)
    }).pipe(
      Effect.catchTag("SchemaError", badRequest),
      Effect.catchTag("HttpServerError", (e) => badRequest({ message: e.message })),
      Effect.catch((e) => Effect.succeed(json({ error: String((e as { message?: string }).message ?? e) }, 503)))
    )
  ),
  HttpRouter.route(
    "GET",
    "/cache/stats",
    Effect.gen(function* () {
      const stats = yield* Cachet.stats
      const runtime = yield* Cachet.Cachet
      const requests = yield* RequestStats
      const db = yield* Db
      const { keyspaces, store, ...totals } = stats
      return json({
        at: yield* Clock.currentTimeMillis,
        store: { name: runtime.store.name, ...store },
        totals,
        keyspaces,
        http: requests.snapshot(),
        dbQueries: db.queries()
      })
    })
  ),
  HttpRouter.route(
    "POST",
    "/cache/clear",
    Effect.gen(function* () {
      const deleted = yield* Effect.forEach([Users, BenchValues, HttpCache.keyspace()] as const, (ks) =>
        Effect.map(Cachet.invalidateKeyspace(ks as Keyspace.Any), (n) => [ks.name, n] as const)
      )
      return json({ cleared: Object.fromEntries(deleted) })
    })
  ),
  HttpRouter.route(
    "POST",
    "/cache/invalidate",
    Effect.gen(function* () {
      const query = yield* HttpServerRequest.ParsedSearchParams
      const tag = query["tag"]
      if (typeof tag !== "string" || tag.length === 0) return json({ error: "give one ?tag=" }, 400)
      yield* Cachet.invalidateTag(tag)
      return json({ invalidated: tag })
    })
  ),
  HttpRouter.route(
    "GET",
    "/cache/health",
    Effect.gen(function* () {
      const health = yield* Cachet.health
      const stats = yield* Cachet.stats
      // Down is a 503 for load balancers; requests are still answered by
      // the loaders (degrade mode). Degraded stays 200: the cache works.
      return json({ ...health, storeErrors: stats.storeErrors }, health.status === "down" ? 503 : 200)
    })
  ),
  HttpRouter.route("GET", "/cache/dashboard", HttpServerResponse.html(dashboardHtml)),
  HttpRouter.route("GET", "/benchmark", benchmark)
] as const
const Routes = HttpRouter.addAll(routeList)

/**
 * The HTTP cache: global, so writes invalidate; per-route policies. Only
 * GET /users/:id is cached by default; the rest unless a handler says so.
 */
const HttpCacheLive = HttpCache.layer({
  routes: {
    "/users/:id": { ttl: "5 seconds", staleFor: "30 seconds" },
    "/users-aside/*": false,
    "/cache/*": false,
    "/metrics": false,
    "/benchmark": false
  }
})

/** The routes, the HTTP cache and /metrics: needs `Cachet`, `Db`, `RequestStats`. */
export const AppLive = Layer.mergeAll(Routes, HttpCacheLive, PrometheusMetrics.layerHttp({ path: "/metrics" }))

// ---------------------------------------------------------------------------
// Stores and the server
// ---------------------------------------------------------------------------

/** The store from the environment: memory; Redis with REDIS_URL; tiered with CACHET_TIERED=1. */
export const storeFromEnv = (env: Readonly<Record<string, string | undefined>> = process.env) => {
  const url = env["REDIS_URL"]
  const prefix = env["CACHET_REDIS_PREFIX"] ?? "cachet-example"
  if (env["CACHET_TIERED"] === "1") {
    if (!url) {
      console.warn("CACHET_TIERED=1 needs REDIS_URL for its L2: using the memory store")
      return CacheStore.layerMemory({ capacity: 50_000 })
    }
    return Layer.unwrap(
      Effect.tryPromise(() => import("../src/redis/TieredStore.ts")).pipe(
        Effect.map(
          (TieredStore) =>
            TieredStore.layer({ l1: { capacity: 10_000 }, l2: { url, prefix } }) as Layer.Layer<CacheStore.CacheStore>
        ),
        Effect.catch((error) =>
          Effect.sync(() => {
            console.warn(
              `CACHET_TIERED=1: the tiered store is not available (${String(error.cause ?? error)}); using RedisStore at ${url}`
            )
            return RedisStore.layer({ url, prefix })
          })
        )
      )
    )
  }
  if (url) return RedisStore.layer({ url, prefix })
  return CacheStore.layerMemory({ capacity: 50_000 })
}

/** Options of {@link layer}. */
export interface ServeOptions {
  readonly port?: number | undefined
  readonly host?: string | undefined
  readonly dbLatency?: Duration.Input | undefined
  readonly store?: Layer.Layer<CacheStore.CacheStore, unknown> | undefined
  readonly cache?: Cachet.Options | undefined
  readonly logRequests?: boolean | undefined
  /** The OTLP/HTTP endpoint to export to (default: OTEL_EXPORTER_OTLP_ENDPOINT; none: no export). */
  readonly otlpEndpoint?: string | undefined
}

/**
 * OTLP export (traces, metrics, logs) to `endpoint`, or nothing. Spans are
 * sent every second and on shutdown.
 */
export const otlpLayer = (endpoint: string | undefined, serviceName = "cachet-example") =>
  endpoint === undefined || endpoint === ""
    ? Layer.empty
    : Otlp.layerJson({ baseUrl: endpoint, resource: { serviceName }, tracerExportInterval: "1 second" }).pipe(
        Layer.provide(FetchHttpClient.layer)
      )

// Times every request at the server (after the HTTP cache answered) and
// records the X-Cache it got.
const timing = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest | RequestStats> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const stats = yield* RequestStats
    const start = performance.now()
    return yield* Effect.onExit(app, (exit) =>
      Effect.sync(() => {
        const path = request.url.split("?")[0] ?? request.url
        stats.record(
          path,
          performance.now() - start,
          exit._tag === "Success" ? exit.value.headers["x-cache"] : undefined
        )
      })
    )
  })

/**
 * The whole service as a layer: the Node server on `port` (0 for an
 * ephemeral one), the Cachet runtime, the database. Provides the
 * `HttpServer` (its `address` says where it listens).
 */
export const layer = (options: ServeOptions = {}) => {
  const CacheLive = Cachet.layer({ writeBehind: { flushInterval: "1 second" }, ...options.cache }).pipe(
    Layer.provideMerge(options.store ?? storeFromEnv())
  )
  const served = HttpRouter.serve(AppLive, {
    disableLogger: true,
    disableListenLog: true,
    middleware: options.logRequests === true ? (app) => timing(HttpMiddleware.logger(app)) : timing
  })
  return served.pipe(
    Layer.provideMerge(
      NodeHttpServer.layer(createServer, { port: options.port ?? 0, host: options.host ?? "127.0.0.1" })
    ),
    Layer.provideMerge(CacheLive),
    Layer.provideMerge(Db.layer(options.dbLatency ?? "30 millis")),
    Layer.provideMerge(RequestStats.layer),
    Layer.provide(
      otlpLayer(
        options.otlpEndpoint ?? process.env["OTEL_EXPORTER_OTLP_ENDPOINT"],
        process.env["OTEL_SERVICE_NAME"] ?? "cachet-example"
      )
    )
  )
}

if (import.meta.main) {
  const env = process.env
  const port = Number(env["PORT"] ?? 3000)
  const host = env["HOST"] ?? "127.0.0.1"
  const latency = Duration.millis(Number(env["DB_LATENCY_MS"] ?? 30))
  const main = Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const runtime = yield* Cachet.Cachet
    const address =
      server.address._tag === "UnixPathAddress" ? server.address.path : `http://${host}:${server.address.port}`
    yield* Effect.log(
      `cachet example on ${address} (store: ${runtime.store.name}); dashboard: ${address}/cache/dashboard`
    )
    return yield* Effect.never
  })
  NodeRuntime.runMain(
    main.pipe(Effect.provide(layer({ port, host, dbLatency: latency, logRequests: env["LOG_REQUESTS"] === "1" })))
  )
}
