/**
 * The fleet-fault workload (issue #13): fibers doing cache-aside reads and
 * strict writes on a Cachet over a RedisStore, each call recorded with the
 * node that owned its key when the run started, so that a run can tell the
 * keys of a killed master from the healthy ones. Shared by
 * `test/redis/failover.test.ts` and `npm run soak -- --cluster`.
 *
 * Runs in real time against real servers (the harness's), with bounded loops.
 */
import { Context, Effect, Exit, Layer, Logger, References, Schema } from "effect"
import { CacheStore } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import { slotOf } from "../../src/redis/internal/routing.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as Strategy from "../../src/Strategy.ts"

export const Numbers = Keyspace.make({ name: "n", key: "{id}", value: Schema.Number, ttl: "10 minutes" })

/** The Redis key of `id` in `Numbers` under `prefix`. */
export const redisKey = (prefix: string, id: number): string => `${prefix}:n:${id}`

/** One recorded call. */
export interface Call {
  /** Start, `performance.now()`. */
  readonly at: number
  readonly ms: number
  readonly kind: "read" | "write"
  readonly id: number
  /** A read served from Redis (the loader did not run). */
  readonly hit: boolean
  /** A strict write's failure, as `reason: message`. */
  readonly error: string | undefined
}

/** Log lines the layer wrote that surface a MOVED/ASK redirect or a store failure. */
export interface LogCounts {
  moved: number
  storeFailures: number
  lines: Array<string>
}

/** A logger layer that counts (and keeps the first few of) the layer's warnings. */
export const countingLogs = (counts: LogCounts) =>
  Layer.mergeAll(
    Logger.layer([
      Logger.make((o) => {
        const line = Array.isArray(o.message) ? o.message.map(String).join(" ") : String(o.message)
        if (/\b(MOVED|ASK) \d+/.test(line)) counts.moved++
        if (line.includes("store") && line.includes("failed")) counts.storeFailures++
        if (counts.lines.length < 2_000) counts.lines.push(line)
      })
    ]),
    Layer.succeed(References.MinimumLogLevel, "Debug")
  )

/** Cachet on a RedisStore built from `options`; the context also holds the store. */
export const stack = (options: RedisStore.LayerOptions, counts: LogCounts): Layer.Layer<Cachet.Cachet | CacheStore> =>
  Cachet.layer().pipe(Layer.provideMerge(RedisStore.layer(options)), Layer.provide(countingLogs(counts)))

const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const handle = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(handle))
  })

const describeError = (error: unknown): string => {
  const e = error as { readonly reason?: string; readonly cause?: { readonly message?: string }; message?: string }
  return `${e.reason ?? "?"}: ${e.cause?.message ?? e.message ?? String(error)}`
}

/**
 * One worker: until `stop()`, a cache-aside read (70%) or a strict write
 * (30%, `onStoreError: "fail"`) of a random id below `keys`, 1-5 ms apart.
 * Every call goes to `record`.
 */
export const worker = (options: {
  readonly keys: number
  readonly stop: () => boolean
  readonly record: (call: Call) => void
}) =>
  Effect.gen(function* () {
    let version = 0
    while (!options.stop()) {
      const id = Math.floor(Math.random() * options.keys)
      const at = performance.now()
      if (Math.random() < 0.3) {
        const exit = yield* Effect.exit(Cachet.set(Numbers, { id }, ++version, { onStoreError: "fail" }))
        options.record({
          at,
          ms: performance.now() - at,
          kind: "write",
          id,
          hit: false,
          error: Exit.isSuccess(exit)
            ? undefined
            : describeError(exit.cause.reasons[0]?._tag === "Fail" ? exit.cause.reasons[0].error : exit.cause)
        })
      } else {
        let loaded = false
        const loader = Effect.sync(() => {
          loaded = true
          return version
        })
        yield* Effect.exit(loader.pipe(Strategy.cacheAside(Numbers, { id })))
        options.record({ at, ms: performance.now() - at, kind: "read", id, hit: !loaded, error: undefined })
      }
      yield* sleepReal(1 + Math.random() * 4)
    }
  })

/** Writes every id below `keys` once (strict), so that reads hit from the start. */
export const prewarm = (keys: number) =>
  Effect.forEach(
    Array.from({ length: keys }, (_, id) => id),
    (id) => Cachet.set(Numbers, { id }, 0, { onStoreError: "fail" }),
    { concurrency: 20, discard: true }
  )

/** The master port that serves each id's key, from `CLUSTER NODES` slot lists. */
export const ownersOf = (
  prefix: string,
  keys: number,
  masters: ReadonlyArray<{ readonly port: number; readonly slots: ReadonlyArray<number> }>
): Array<number> => {
  const bySlot = new Map<number, number>()
  for (const m of masters) for (const slot of m.slots) bySlot.set(slot, m.port)
  return Array.from({ length: keys }, (_, id) => bySlot.get(slotOf(redisKey(prefix, id))) ?? -1)
}

/** Figures of the calls in a window. */
export interface Figures {
  readonly reads: number
  readonly hits: number
  readonly hitRatio: number
  readonly writes: number
  readonly failedWrites: number
  readonly movedErrors: number
  readonly maxMs: number
}

export const figures = (calls: ReadonlyArray<Call>): Figures => {
  let reads = 0
  let hits = 0
  let writes = 0
  let failedWrites = 0
  let movedErrors = 0
  let maxMs = 0
  for (const c of calls) {
    maxMs = Math.max(maxMs, c.ms)
    if (c.kind === "read") {
      reads++
      if (c.hit) hits++
    } else {
      writes++
      if (c.error !== undefined) {
        failedWrites++
        // A redirect surfaced as a failure (a `Protocol` error reply).
        if (/^Protocol: (MOVED|ASK) \d+/.test(c.error)) movedErrors++
      }
    }
  }
  return { reads, hits, hitRatio: reads === 0 ? 1 : hits / reads, writes, failedWrites, movedErrors, maxMs }
}

/** The store's per-node breaker states (see `RedisStore.nodeStates`). */
export const nodeStates = (context: Context.Context<CacheStore>) =>
  RedisStore.nodeStates(Context.get(context, CacheStore)) ?? Effect.succeed([])
