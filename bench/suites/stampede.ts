/**
 * Stampede: 1,000 concurrent misses on one key with a 50 ms loader.
 *
 * Each repetition uses a fresh key. Reported: wall time of the 1,000 requests
 * (median over repetitions), loader runs (the most seen in one repetition),
 * overhead per request = (wall - 50 ms) / 1000 (the formula, which
 * also charges the timer's own lateness to the contender), and the net
 * overhead per request = (wall of 1,000 - wall of 1 caller) / 1000, where the
 * single caller runs the same loader just before.
 */
import { BentoCache, bentostore } from "bentocache"
import { memoryDriver } from "bentocache/drivers/memory"
import { createCache } from "cache-manager"
import { Cache, Effect, ManagedRuntime } from "effect"
import { LRUCache } from "lru-cache"
import { Cachet, Strategy } from "../../src/index.ts"
import { keyOf, makeUser, type User, Users } from "../lib/fixtures.ts"
import type { Row } from "../lib/measure.ts"
import { countColumn, msColumn, type ScenarioResult } from "../lib/report.ts"
import { median } from "../lib/stats.ts"
import type { Suite } from "../lib/suite.ts"

const CALLERS = 1_000
const LOADER_MS = 50
const TTL_MS = 60 * 60 * 1000
const value = makeUser(1)

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface StampedeContender {
  readonly name: string
  /** Runs `callers` concurrent reads of key `id`; resolves when all answered. */
  readonly stampede: (id: number, callers: number) => Promise<void>
  /** Loader runs so far. */
  readonly loads: () => number
}

const contenders = async () => {
  const runtime = ManagedRuntime.make(Cachet.layerMemory({ capacity: 10_000 }))
  const run = Effect.runPromiseWith(await runtime.context())
  let cachetLoads = 0
  const cachetLoader = Effect.sleep(LOADER_MS).pipe(
    Effect.map(() => {
      cachetLoads++
      return value
    })
  )

  let effectLoads = 0
  const effectCache = await Effect.runPromise(
    Cache.make({
      capacity: 10_000,
      timeToLive: TTL_MS,
      lookup: (_id: number) =>
        Effect.sleep(LOADER_MS).pipe(
          Effect.map(() => {
            effectLoads++
            return value
          })
        )
    })
  )

  let lruLoads = 0
  const lru = new LRUCache<string, User>({
    max: 10_000,
    ttl: TTL_MS,
    fetchMethod: async () => {
      await sleep(LOADER_MS)
      lruLoads++
      return value
    }
  })

  let bentoLoads = 0
  const bento = new BentoCache({
    default: "memory",
    stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000, serialize: false })) }
  })

  let managerLoads = 0
  const manager = createCache({ ttl: TTL_MS })

  const list: Array<StampedeContender> = [
    {
      name: "cachet cacheAside",
      loads: () => cachetLoads,
      stampede: (id, callers) =>
        run(
          Effect.forEach(
            Array.from({ length: callers }, () => id),
            (i) => cachetLoader.pipe(Strategy.cacheAside(Users, { id: i })),
            { concurrency: "unbounded", discard: true }
          )
        )
    },
    {
      name: "effect Cache.get",
      loads: () => effectLoads,
      stampede: (id, callers) =>
        run(
          Effect.forEach(
            Array.from({ length: callers }, () => id),
            (i) => Cache.get(effectCache, i),
            { concurrency: "unbounded", discard: true }
          )
        )
    },
    {
      name: "lru-cache fetch",
      loads: () => lruLoads,
      stampede: async (id, callers) => {
        await Promise.all(Array.from({ length: callers }, () => lru.fetch(keyOf(id))))
      }
    },
    {
      name: "BentoCache getOrSet",
      loads: () => bentoLoads,
      stampede: async (id, callers) => {
        await Promise.all(
          Array.from({ length: callers }, () =>
            bento.getOrSet({
              key: keyOf(id),
              ttl: TTL_MS,
              factory: async () => {
                await sleep(LOADER_MS)
                bentoLoads++
                return value
              }
            })
          )
        )
      }
    },
    {
      name: "cache-manager wrap",
      loads: () => managerLoads,
      stampede: async (id, callers) => {
        await Promise.all(
          Array.from({ length: callers }, () =>
            manager.wrap(
              keyOf(id),
              async () => {
                await sleep(LOADER_MS)
                managerLoads++
                return value
              },
              TTL_MS
            )
          )
        )
      }
    }
  ]
  const close = async () => {
    await bento.disconnectAll()
    await manager.disconnect()
    await runtime.dispose()
  }
  return { list, close }
}

const runStampede = async (repetitions: number): Promise<ScenarioResult> => {
  const { list, close } = await contenders()
  const stats = new Map(
    list.map((c) => [
      c.name,
      { walls: [] as Array<number>, singles: [] as Array<number>, runsMax: 0, error: undefined as string | undefined }
    ])
  )
  let nextId = 1
  // Two warm-up repetitions, not recorded (the first runs cold code).
  for (let rep = -2; rep < repetitions; rep++) {
    for (let k = 0; k < list.length; k++) {
      const c = list[(k + Math.max(rep, 0)) % list.length]!
      const s = stats.get(c.name)!
      if (s.error !== undefined) continue
      try {
        const t0 = performance.now()
        await c.stampede(nextId++, 1)
        const single = performance.now() - t0
        const before = c.loads()
        const t1 = performance.now()
        await c.stampede(nextId++, CALLERS)
        const wall = performance.now() - t1
        const runs = c.loads() - before
        if (rep >= 0) {
          s.walls.push(wall)
          s.singles.push(single)
          s.runsMax = Math.max(s.runsMax, runs)
        }
      } catch (error) {
        s.error = error instanceof Error ? error.message : String(error)
      }
    }
  }
  await close()
  const rows = list.map((c): Row => {
    const s = stats.get(c.name)!
    if (s.error !== undefined) return { name: c.name, metrics: {}, error: s.error }
    const wall = median(s.walls)
    const single = median(s.singles)
    return {
      name: c.name,
      metrics: {
        wallMs: wall,
        singleMs: single,
        loaderRunsMax: s.runsMax,
        overheadMs: (wall - LOADER_MS) / CALLERS,
        netOverheadMs: (wall - single) / CALLERS,
        repetitions: s.walls.length
      }
    }
  })
  return {
    id: "stampede",
    title: "Stampede",
    workload: `${CALLERS} concurrent misses on one fresh key, ${LOADER_MS} ms loader; ${repetitions} repetitions (median), contenders interleaved`,
    columns: [
      msColumn("wallMs", "wall (1000)"),
      msColumn("singleMs", "wall (1)"),
      countColumn("loaderRunsMax", "loader runs"),
      msColumn("overheadMs", "overhead/req"),
      msColumn("netOverheadMs", "net/req")
    ],
    rows,
    notes: [
      "overhead/req = (wall - 50 ms) / 1000, the issue's formula (includes timer lateness); net/req = (wall(1000) - wall(1)) / 1000",
      "loader runs: the most seen in one repetition"
    ]
  }
}

export const stampedeSuite: Suite = {
  id: "stampede",
  title: "Stampede: concurrent misses on one key",
  run: async (options) => [await runStampede(options.quick ? 3 : 4 * options.rounds)]
}
