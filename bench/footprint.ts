/**
 * Memory footprint per entry: `node --expose-gc bench/footprint.ts <contender>`
 * prints one JSON line; without a contender it runs each in its own child
 * process and prints a table. `npm run bench` runs it as the footprint suite.
 *
 * Method (one fresh process per contender, every module already loaded):
 * 1. gc; m0;
 * 2. make 100,000 ~1 KB values, held in a plain array; gc; m1;
 *    value bytes/entry = (m1 - m0) / N;
 * 3. build the structure with a capacity of exactly N (its runtime too, for
 *    cachet; preallocated arrays, for lru-cache), insert every value under
 *    key `user:<i>` (the key strings are built here, so they count as the
 *    structure's); gc; m2; structure overhead/entry = (m2 - m1) / N.
 * The values stay referenced by the array throughout, so step 3 measures only
 * what the structure adds: entry nodes, key strings, maps, timestamps, and
 * its fixed cost spread over N entries. m = heapUsed + external (typed-array
 * backing stores live outside the JS heap), read after two full collections
 * (`--expose-gc`).
 */
import { execFileSync } from "node:child_process"
import { BentoCache, bentostore } from "bentocache"
import { memoryDriver } from "bentocache/drivers/memory"
import { Cache, Effect, ManagedRuntime } from "effect"
import { LRUCache } from "lru-cache"
import { Cachet } from "../src/index.ts"
import { keyOf, makeUser, type User, Users } from "./lib/fixtures.ts"
import { formatBytes, table } from "./lib/stats.ts"

export const ENTRIES = 100_000
const TTL_MS = 60 * 60 * 1000

export interface Footprint {
  readonly contender: string
  readonly entries: number
  readonly valueBytes: number
  readonly overhead: number
  readonly held: number
}

interface Structure {
  /** Inserts values[i] under keyOf(i). */
  readonly fill: (values: ReadonlyArray<User>) => Promise<void>
  /** How many entries it holds (checked, so that nothing was evicted). */
  readonly size: () => Promise<number>
  readonly close: () => Promise<void>
}

export const contenders: Record<string, () => Promise<Structure>> = {
  "cachet memory store": async () => {
    const runtime = ManagedRuntime.make(Cachet.layerMemory({ capacity: ENTRIES }))
    const run = Effect.runPromiseWith(await runtime.context())
    // Touch the keyspace once so its per-keyspace state exists before h0.
    await run(Cachet.get(Users, { id: -1 }))
    return {
      fill: (values) =>
        run(Effect.forEach(values, (v, i) => Cachet.set(Users, { id: i }, v), { discard: true }).pipe(Effect.orDie)),
      size: () => run(Effect.map(Cachet.stats, (s) => s.store?.entries ?? Number.NaN)),
      close: () => runtime.dispose()
    }
  },
  "lru-cache": async () => {
    const lru = new LRUCache<string, User>({ max: ENTRIES, ttl: TTL_MS })
    return {
      fill: async (values) => {
        for (let i = 0; i < values.length; i++) lru.set(keyOf(i), values[i]!)
      },
      size: async () => lru.size,
      close: async () => {}
    }
  },
  "effect Cache": async () => {
    let values: ReadonlyArray<User> = []
    const cache = await Effect.runPromise(
      Cache.make({
        capacity: ENTRIES,
        timeToLive: TTL_MS,
        lookup: (key: string) => Effect.sync(() => values[Number(key.slice(5))]!)
      })
    )
    await Effect.runPromise(Cache.get(cache, "user:0"))
    await Effect.runPromise(Cache.invalidateAll(cache))
    return {
      fill: async (vs) => {
        values = vs
        await Effect.runPromise(Effect.forEach(vs, (_, i) => Cache.get(cache, keyOf(i)), { discard: true }))
      },
      size: () => Effect.runPromise(Cache.size(cache)),
      close: async () => {}
    }
  },
  "BentoCache memory": async () => {
    const bento = new BentoCache({
      default: "memory",
      stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: ENTRIES, serialize: false })) }
    })
    await bento.set({ key: "warm", value: 1, ttl: TTL_MS })
    await bento.delete({ key: "warm" })
    return {
      fill: async (values) => {
        for (let i = 0; i < values.length; i++) await bento.set({ key: keyOf(i), value: values[i]!, ttl: TTL_MS })
      },
      size: async () => {
        let n = 0
        for (let i = 0; i < ENTRIES; i += 1_000) if (await bento.has({ key: keyOf(i) })) n++
        return n * 1_000
      },
      close: () => bento.disconnectAll()
    }
  },
  "Map (reference)": async () => {
    const map = new Map<string, User>()
    return {
      fill: async (values) => {
        for (let i = 0; i < values.length; i++) map.set(keyOf(i), values[i]!)
      },
      size: async () => map.size,
      close: async () => {}
    }
  }
}

const memoryAfterGc = (): number => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("run with node --expose-gc")
  gc()
  gc()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}

export const measure = async (name: string): Promise<Footprint> => {
  const make = contenders[name]
  if (make === undefined) throw new Error(`unknown contender ${name}`)
  const h0 = memoryAfterGc()
  const values = Array.from({ length: ENTRIES }, (_, i) => makeUser(i))
  const h1 = memoryAfterGc()
  const structure = await make()
  await structure.fill(values)
  const h2 = memoryAfterGc()
  const held = await structure.size()
  // Keep the values alive until after the last reading.
  if (values.length !== ENTRIES) throw new Error("unreachable")
  await structure.close()
  return { contender: name, entries: ENTRIES, valueBytes: (h1 - h0) / ENTRIES, overhead: (h2 - h1) / ENTRIES, held }
}

/** Runs each contender in its own `node --expose-gc` process. */
export const measureAll = (names: ReadonlyArray<string> = Object.keys(contenders)): Array<Footprint | string> =>
  names.map((name) => {
    try {
      const out = execFileSync(process.execPath, ["--expose-gc", import.meta.filename, name], {
        encoding: "utf8",
        timeout: 120_000,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const last = out.trim().split("\n").pop() ?? ""
      return JSON.parse(last) as Footprint
    } catch (error) {
      return `${name}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`
    }
  })

if (import.meta.main) {
  const name = process.argv[2]
  if (name !== undefined) {
    const result = await measure(name)
    console.log(JSON.stringify(result))
  } else {
    const results = measureAll()
    console.log(
      table(
        ["contender", "structure B/entry", "value B/entry", "entries held"],
        results.map((r) =>
          typeof r === "string"
            ? [r, "-", "-", "-"]
            : [r.contender, formatBytes(r.overhead), formatBytes(r.valueBytes), String(r.held)]
        )
      )
    )
  }
}
