import { existsSync, mkdirSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import { type Browser, chromium } from "playwright-core"
import * as Example from "../../examples/http-server.ts"
import * as CacheStore from "../../src/CacheStore.ts"

// The dashboard in a real browser: Debian's headless Chromium, driven by
// playwright-core. In CI a missing Chromium fails the suite (.ci/run installs
// it); elsewhere the suite is skipped with a note.

const executablePath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const available = existsSync(executablePath)
if (!available && process.env["CI"] === "true") {
  throw new Error(`Chromium not found at ${executablePath}: CI must run the dashboard test (apt-get install chromium)`)
}
if (!available) console.warn(`dashboard test skipped: no Chromium at ${executablePath}`)

const launch = Effect.acquireRelease(
  Effect.promise(() =>
    chromium.launch({
      executablePath,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
  ),
  (browser: Browser) => Effect.promise(() => browser.close())
)

const startServer = Effect.gen(function* () {
  const context = yield* Layer.build(
    Example.layer({ port: 0, host: "127.0.0.1", store: CacheStore.layerMemory(), dbLatency: "2 millis" })
  )
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag === "UnixPathAddress") return yield* Effect.die("unexpected unix socket")
  return `http://127.0.0.1:${address.port}`
})

const call = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    await response.arrayBuffer()
    return response.status
  })

// Page-side expressions as strings: the test's tsconfig has no DOM types.
const pollCount = "Number(document.body.dataset.polls ?? 0)"
const pollsAtLeast = (n: number) => `${pollCount} >= ${n}`

const int = (n: number) => Math.round(n).toLocaleString("en-US")
const pct = (r: number) => `${(r * 100).toFixed(1)}%`

describe.skipIf(!available)("dashboard in headless Chromium", () => {
  it.live(
    "after scripted traffic the page shows the numbers of /cache/stats, and draws the series",
    () =>
      Effect.gen(function* () {
        const base = yield* startServer
        const browser = yield* launch
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1200, height: 900 } }))
        const pageErrors: Array<string> = []
        page.on("pageerror", (error) => pageErrors.push(error.message))
        yield* Effect.promise(() => page.goto(`${base}/cache/dashboard?interval=150`))
        yield* Effect.promise(() => page.waitForFunction(pollsAtLeast(1)))

        // Scripted traffic, in bursts so that the series have several points.
        for (let burst = 0; burst < 4; burst++) {
          yield* Effect.forEach(
            Array.from({ length: 12 }, (_, i) => (i % 5) + 1),
            (id) => call(`${base}/users/${id}`),
            { concurrency: 4, discard: true }
          )
          yield* Effect.forEach([1, 2, 3, 404_404], (id) => call(`${base}/users-aside/${id}`), { discard: true })
          yield* call(`${base}/users`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ name: `Burst ${burst}`, email: `b${burst}@example.com` })
          })
          yield* Effect.promise(() => new Promise((r) => setTimeout(r, 250)))
        }

        // Traffic is over: wait for two more polls, then compare with the source.
        const polls = yield* Effect.promise(() => page.evaluate<number>(pollCount))
        yield* Effect.promise(() => page.waitForFunction(pollsAtLeast(polls + 2)))
        const stats = yield* Effect.promise(() => fetch(`${base}/cache/stats`).then((r) => r.json() as Promise<any>))

        const read = (testId: string) =>
          Effect.promise(async () => {
            const locator = page.locator(`[data-testid="${testId}"]`)
            return { text: (await locator.textContent())?.trim(), value: await locator.getAttribute("data-value") }
          })

        const totals = stats.totals
        const requests = totals.hits + totals.staleHits + totals.misses
        assert.deepStrictEqual(yield* read("total-requests"), { text: int(requests), value: String(requests) })
        assert.deepStrictEqual(yield* read("total-hit-rate"), {
          text: pct(totals.hitRate),
          value: String(totals.hitRate)
        })
        assert.deepStrictEqual(yield* read("total-loads"), { text: int(totals.loads), value: String(totals.loads) })
        assert.deepStrictEqual(yield* read("http-requests"), {
          text: int(stats.http.requests),
          value: String(stats.http.requests)
        })
        assert.strictEqual(stats.http.requests, 4 * (12 + 4 + 1), "every scripted request was counted")
        assert.strictEqual((yield* read("store-entries")).value, String(stats.store.entries))

        const names = Object.keys(stats.keyspaces).sort()
        assert.deepStrictEqual(names, ["http", "user"])
        for (const name of names) {
          const k = stats.keyspaces[name]
          for (const field of ["hits", "staleHits", "misses", "loads", "sets", "errors"] as const) {
            assert.deepStrictEqual(yield* read(`ks-${name}-${field}`), { text: int(k[field]), value: String(k[field]) })
          }
          assert.deepStrictEqual(yield* read(`ks-${name}-hitRate`), { text: pct(k.hitRate), value: String(k.hitRate) })
        }
        assert.isAbove(stats.keyspaces.http.hits, 0)
        assert.isAbove(stats.keyspaces.user.hits, 0)

        for (const chart of ["chart-hit-rate", "chart-rate", "chart-latency"]) {
          const points = Number(
            yield* Effect.promise(() => page.locator(`[data-testid="${chart}"]`).getAttribute("data-points"))
          )
          assert.isAtLeast(points, 5, `${chart} has a series`)
          const polyline = yield* Effect.promise(() => page.locator(`[data-testid="${chart}"] polyline`).count())
          assert.strictEqual(polyline, 1)
        }
        assert.deepStrictEqual(pageErrors, [])

        mkdirSync("test/__screenshots__", { recursive: true })
        yield* Effect.promise(() => page.screenshot({ path: "test/__screenshots__/dashboard.png", fullPage: true }))
        console.log(
          `dashboard: ${requests} cache requests, ${pct(totals.hitRate)} hit rate, ${stats.http.requests} HTTP requests; screenshot test/__screenshots__/dashboard.png`
        )
      }).pipe(Effect.scoped),
    { timeout: 60_000 }
  )
})
