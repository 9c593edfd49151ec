/**
 * Raw HTTP/1.1 over TCP to a real effect `NodeHttpServer` on a loopback
 * port: request lines and headers exactly as written (absolute-form
 * targets, odd casing, bodies), responses parsed from the bytes.
 */
import { createServer } from "node:http"
import * as net from "node:net"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, type Scope } from "effect"
import { HttpRouter, HttpServer } from "effect/http"

export interface RawResponse {
  readonly status: number
  /** Lower-cased names; repeated fields joined with ", ". */
  readonly headers: Readonly<Record<string, string>>
  /** Field names as sent, in order (to check that a value went out verbatim). */
  readonly rawHeaders: ReadonlyArray<readonly [string, string]>
  readonly body: string
}

const parse = (data: Buffer): RawResponse => {
  const end = data.indexOf("\r\n\r\n")
  const head = data.subarray(0, end === -1 ? data.length : end).toString("latin1")
  let rest = end === -1 ? Buffer.alloc(0) : data.subarray(end + 4)
  const [statusLine, ...lines] = head.split("\r\n")
  const status = Number(statusLine!.split(" ")[1])
  const headers: Record<string, string> = {}
  const rawHeaders: Array<readonly [string, string]> = []
  for (const line of lines) {
    const colon = line.indexOf(":")
    const name = line.slice(0, colon)
    const value = line.slice(colon + 1).trim()
    rawHeaders.push([name, value])
    const lower = name.toLowerCase()
    headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`
  }
  if (headers["transfer-encoding"]?.includes("chunked")) {
    const chunks: Array<Buffer> = []
    for (;;) {
      const lineEnd = rest.indexOf("\r\n")
      const size = Number.parseInt(rest.subarray(0, lineEnd).toString("latin1"), 16)
      if (!(size > 0)) break
      chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size))
      rest = rest.subarray(lineEnd + 2 + size + 2)
    }
    rest = Buffer.concat(chunks)
  }
  return { status, headers, rawHeaders, body: rest.toString("utf8") }
}

/**
 * Sends `text` (a whole request, `Connection: close` added unless present)
 * and reads the response until the server closes. `body` chunks, when given,
 * are written one by one `gapMillis` apart after the head (a trickled body).
 */
export const raw = (
  port: number,
  text: string,
  options?: { readonly body?: ReadonlyArray<string>; readonly gapMillis?: number }
): Effect.Effect<RawResponse> =>
  Effect.callback<RawResponse>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    const parts: Array<Buffer> = []
    let timer: ReturnType<typeof setTimeout> | undefined
    socket.on("data", (chunk) => parts.push(chunk))
    socket.on("end", () => resume(Effect.succeed(parse(Buffer.concat(parts)))))
    socket.on("error", (error) => resume(Effect.die(error)))
    const end = text.indexOf("\r\n\r\n")
    const head = text.slice(0, end)
    socket.write(/\r\nconnection:/i.test(head) ? text : `${head}\r\nConnection: close${text.slice(end)}`)
    const body = [...(options?.body ?? [])]
    const next = () => {
      const chunk = body.shift()
      if (chunk === undefined) return
      socket.write(chunk)
      timer = setTimeout(next, options?.gapMillis ?? 0)
    }
    next()
    return Effect.sync(() => {
      if (timer !== undefined) clearTimeout(timer)
      socket.destroy()
    })
  })

/** `GET <target>` with a Host header and extra header lines. */
export const get = (
  port: number,
  target: string,
  headers: Record<string, string> = {},
  method = "GET"
): Effect.Effect<RawResponse> => {
  const lines = [`${method} ${target} HTTP/1.1`]
  if (!Object.keys(headers).some((name) => name.toLowerCase() === "host")) lines.push("Host: shop.test")
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  return raw(port, `${lines.join("\r\n")}\r\n\r\n`)
}

/**
 * Serves `app` (router layers, and whatever they need) with effect's
 * `NodeHttpServer` on an ephemeral port of 127.0.0.1, for the enclosing
 * scope; answers the port.
 */
export const serveNode = (app: Layer.Layer<never, unknown, unknown>): Effect.Effect<number, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const router = app as Layer.Layer<never, never, HttpRouter.HttpRouter>
    const served = HttpRouter.serve(router, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    )
    const context = yield* Layer.build(served)
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag === "UnixPathAddress") return yield* Effect.die("unexpected unix socket")
    return address.port
  })

/**
 * Serves one response effect (no router: every method and path reaches it)
 * with `NodeHttpServer` on an ephemeral port of 127.0.0.1; answers the port.
 */
export const serveNodeApp = <E, R>(
  app: Effect.Effect<import("effect/http").HttpServerResponse.HttpServerResponse, E, R>,
  context: Context.Context<never>
): Effect.Effect<number, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const served = (HttpServer.serve()(app) as Layer.Layer<never, never, HttpServer.HttpServer>).pipe(
      Layer.provide(Layer.succeedContext(context)),
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    )
    const built = yield* Layer.build(served)
    const address = Context.get(built, HttpServer.HttpServer).address
    if (address._tag === "UnixPathAddress") return yield* Effect.die("unexpected unix socket")
    return address.port
  })
