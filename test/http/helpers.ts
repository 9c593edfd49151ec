/**
 * In-process HTTP for the cache tests: requests built from Web `Request`s,
 * handlers run under the middleware with the request in context, responses
 * read back as text. Time is Effect's `Clock` (a `TestClock` in `it.effect`).
 */
import { Effect } from "effect"
import { HttpServerRequest, type HttpServerResponse } from "effect/http"
import * as Cachet from "../../src/Cachet.ts"

export type Handler = (
  request: HttpServerRequest.HttpServerRequest
) => Effect.Effect<HttpServerResponse.HttpServerResponse, unknown>

export type Middleware = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest | Cachet.Cachet>

/** A request to `path` on `http://example.test`. */
export const request = (
  path: string,
  init?: { readonly method?: string; readonly headers?: Record<string, string> }
): HttpServerRequest.HttpServerRequest =>
  HttpServerRequest.fromWeb(
    new Request(`http://example.test${path}`, {
      method: init?.method ?? "GET",
      headers: { host: "example.test", ...init?.headers }
    })
  )

/** Serves `request` with `handler` behind `middleware`; counts handler runs in `calls`. */
export const server = (middleware: Middleware, handler: Handler) => {
  const counter = { calls: 0 }
  const app = Effect.flatMap(Effect.service(HttpServerRequest.HttpServerRequest), (req) =>
    Effect.suspend(() => {
      counter.calls++
      return handler(req)
    })
  )
  const serve = (req: HttpServerRequest.HttpServerRequest) =>
    middleware(app).pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, req))
  return { counter, serve }
}

const decoder = new TextDecoder()

/** The body of a response as text ("" when empty). */
export const text = (response: HttpServerResponse.HttpServerResponse): string => {
  const body = response.body
  if (body._tag === "Uint8Array") return decoder.decode(body.body)
  if (body._tag === "Empty") return ""
  if (body._tag === "Raw" && typeof body.body === "string") return body.body
  return `<${body._tag}>`
}

const zero: Cachet.KeyspaceStats = {
  hits: 0,
  misses: 0,
  staleHits: 0,
  loads: 0,
  loadFailures: 0,
  sets: 0,
  deletes: 0,
  errors: 0,
  storeErrors: 0,
  decodeErrors: 0,
  encodeErrors: 0,
  keyErrors: 0,
  revalidations: 0,
  revalidationFailures: 0,
  fencedWrites: 0,
  versionMisses: 0,
  duplicateKeyspaces: 0,
  journaled: 0,
  journalOverflows: 0,
  writeBehindQueued: 0,
  writeBehindWrites: 0,
  writeBehindRetries: 0,
  softTimeouts: 0,
  hardTimeouts: 0,
  backoffSkips: 0,
  writeBehindCoalesced: 0,
  writeBehindDeadLetters: 0,
  hitRate: 0
}

/** The counters of a keyspace of responses (default `http`), zeros before its first use. */
export const httpStats = (name = "http") => Effect.map(Cachet.stats, (s) => s.keyspaces[name] ?? zero)

/** Lets forked fibers run without moving the clock. */
export const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})
