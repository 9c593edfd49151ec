/**
 * Stale-while-revalidate on a hot key under load: the latency callers see
 * while the entry is being revalidated.
 *
 * One hot key, fresh for 100 ms, stale for a minute after; the loader takes
 * 20 ms. 64 workers each read the key, then sleep 1 ms, for the whole run
 * (~40-60k reads/s). With cache-aside, every expiry makes the readers of that
 * moment wait for a load; with stale-while-revalidate they get the stale value
 * at once and one background load refreshes it.
 *
 * `Strategy.staleWhileRevalidate` is being added by another engineer: the
 * scenario runs it when `"staleWhileRevalidate" in Strategy`, and says so when
 * it does not.
 */
import { BentoCache, bentostore } from "bentocache"
import { memoryDriver } from "bentocache/drivers/memory"
import { Effect, ManagedRuntime } from "effect"
import { Cachet, Keyspace, Strategy } from "../../src/index.ts"
import { makeUser, User } from "../lib/fixtures.ts"
import type { Row } from "../lib/measure.ts"
import { countColumn, msColumn, opsColumn, type ScenarioResult } from "../lib/report.ts"
import { median, quantileSorted, Samples } from "../lib/stats.ts"
import type { Suite } from "../lib/suite.ts"

const WORKERS = 64
const TTL_MS = 100
const LOADER_MS = 20
const value = makeUser(7)

const Hot = Keyspace.make({ name: "hot", key: "user:{id}", value: User, ttl: TTL_MS, staleFor: "1 minute" })

type ReadStrategy = <E, R>(self: Effect.Effect<User, E, R>) => Effect.Effect<User, E, R | Cachet.Cachet>

/** `Strategy.staleWhileRevalidate(Hot, params)`, if the strategy exists. */
const swrStrategy = (): ((params: { readonly id: number }) => ReadStrategy) | undefined => {
  if (!("staleWhileRevalidate" in Strategy)) return undefined
  const swr = (Strategy as unknown as Record<string, unknown>).staleWhileRevalidate
  if (typeof swr !== "function") return undefined
  return (params) => (swr as (ks: typeof Hot, p: { readonly id: number }) => ReadStrategy)(Hot, params)
}

interface RunResult {
  readonly latencies: Samples
  readonly requests: number
  readonly elapsedMs: number
  readonly loads: number
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Runs the Effect workers against one cachet strategy for `durationMs`. */
const runCachet = async (strategy: (params: { readonly id: number }) => ReadStrategy, durationMs: number) => {
  const runtime = ManagedRuntime.make(Cachet.layerMemory({ capacity: 1_000 }))
  try {
    const run = Effect.runPromiseWith(await runtime.context())
    let loads = 0
    const loader = Effect.sleep(LOADER_MS).pipe(
      Effect.map(() => {
        loads++
        return value
      })
    )
    const read = loader.pipe(strategy({ id: 1 }))
    await run(read) // the first load, not measured
    loads = 0
    const latencies = new Samples(1 << 16)
    const start = performance.now()
    const deadline = start + durationMs
    const worker = Effect.gen(function* () {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        yield* read
        latencies.push(performance.now() - t0)
        yield* Effect.sleep(1)
      }
    })
    await run(
      Effect.forEach(Array.from({ length: WORKERS }), () => worker, { concurrency: "unbounded", discard: true })
    )
    const elapsedMs = performance.now() - start
    return { latencies, requests: latencies.length, elapsedMs, loads } satisfies RunResult
  } finally {
    await runtime.dispose()
  }
}

/** BentoCache's stale-while-revalidate: a grace period and a soft timeout of 0. */
const runBento = async (durationMs: number): Promise<RunResult> => {
  const bento = new BentoCache({
    default: "memory",
    stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: 1_000, serialize: false })) }
  })
  try {
    let loads = 0
    const read = () =>
      bento.getOrSet({
        key: "hot:user:1",
        ttl: TTL_MS,
        grace: "1m",
        timeout: 0,
        factory: async () => {
          await sleep(LOADER_MS)
          loads++
          return value
        }
      })
    await read()
    loads = 0
    const latencies = new Samples(1 << 16)
    const start = performance.now()
    const deadline = start + durationMs
    const worker = async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        await read()
        latencies.push(performance.now() - t0)
        await sleep(1)
      }
    }
    await Promise.all(Array.from({ length: WORKERS }, worker))
    return { latencies, requests: latencies.length, elapsedMs: performance.now() - start, loads }
  } finally {
    await bento.disconnectAll()
  }
}

export const swrSuite: Suite = {
  id: "swr",
  title: "Stale-while-revalidate: a hot key under load",
  run: async (options) => {
    const durationMs = options.quick ? 500 : 1_200
    const swr = swrStrategy()
    const contenders: Array<{ name: string; skip?: string; run: () => Promise<RunResult> }> = [
      {
        name: "cachet staleWhileRevalidate",
        ...(swr === undefined ? { skip: "Strategy.staleWhileRevalidate does not exist yet (being added)" } : {}),
        run: () => runCachet(swr!, durationMs)
      },
      {
        name: "cachet cacheAside",
        run: () => runCachet((params) => Strategy.cacheAside(Hot, params), durationMs)
      },
      { name: "BentoCache grace + timeout 0", run: () => runBento(durationMs) }
    ]
    if (swr === undefined) console.log("   NOTE: Strategy.staleWhileRevalidate does not exist yet; its row is skipped")
    const active = contenders.filter((c) => c.skip === undefined)
    const collected = new Map(
      active.map((c) => [c.name, { latencies: new Samples(1 << 16), ops: [] as Array<number>, loads: 0, error: "" }])
    )
    for (let round = 0; round < options.rounds; round++) {
      for (let k = 0; k < active.length; k++) {
        const c = active[(k + round) % active.length]!
        const acc = collected.get(c.name)!
        if (acc.error !== "") continue
        try {
          const r = await c.run()
          const sorted = r.latencies.sorted()
          acc.latencies.pushAll(sorted)
          acc.ops.push((r.requests / r.elapsedMs) * 1000)
          acc.loads += r.loads
        } catch (error) {
          acc.error = error instanceof Error ? error.message : String(error)
        }
      }
    }
    const rows = contenders.map((c): Row => {
      if (c.skip !== undefined) return { name: c.name, metrics: {}, skipped: c.skip }
      const acc = collected.get(c.name)!
      if (acc.error !== "") return { name: c.name, metrics: {}, error: acc.error }
      const sorted = acc.latencies.sorted()
      let slow = 0
      for (const l of sorted) if (l >= LOADER_MS / 2) slow++
      return {
        name: c.name,
        metrics: {
          ops: median(acc.ops),
          p50: quantileSorted(sorted, 0.5),
          p99: quantileSorted(sorted, 0.99),
          p999: quantileSorted(sorted, 0.999),
          max: sorted[sorted.length - 1] ?? Number.NaN,
          slow,
          loads: acc.loads / options.rounds,
          loaderMs: LOADER_MS
        }
      }
    })
    const result: ScenarioResult = {
      id: "swr",
      title: "SWR hot key under load",
      workload: `one key, ttl ${TTL_MS} ms, stale for 1 min, ${LOADER_MS} ms loader; ${WORKERS} workers read then sleep 1 ms, ${durationMs} ms per round, ${options.rounds} round(s); every read timed`,
      columns: [
        opsColumn("ops", "reads/s"),
        msColumn("p50", "p50"),
        msColumn("p99", "p99"),
        msColumn("p999", "p99.9"),
        msColumn("max", "max"),
        countColumn("slow", `reads >= ${LOADER_MS / 2} ms`),
        countColumn("loads", "loads/round")
      ],
      rows,
      ratioOf: "p99",
      baseline: "cachet staleWhileRevalidate",
      notes: ["vs cachet here is p99 / cachet SWR's p99 (above 1.00× means a worse tail than cachet SWR)"]
    }
    return [swr === undefined ? { ...result, ratioOf: "p99", baseline: "cachet cacheAside" } : result]
  }
}
