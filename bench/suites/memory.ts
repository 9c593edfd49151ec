/**
 * In-process scenarios on the memory store: hits inside one fiber, hits with
 * one `runPromise` per operation, and misses with an immediate loader; cachet
 * with its default eviction (W-TinyLFU) and with `eviction: "lru"`, side by side.
 */
import { BentoCache, bentostore } from "bentocache"
import { memoryDriver } from "bentocache/drivers/memory"
import { createCache } from "cache-manager"
import { Cache, Effect, Layer, ManagedRuntime } from "effect"
import { LRUCache } from "lru-cache"
import { CacheStore, Cachet, Strategy } from "../../src/index.ts"
import { TieredStore } from "../../src/redis/index.ts"
import { idSequence, keyOf, makeUser, type User, Users } from "../lib/fixtures.ts"
import { type Batch, type Contender, runThroughput, timeSequentialAsync } from "../lib/measure.ts"
import { type ScenarioResult, throughputColumns } from "../lib/report.ts"
import type { Suite, SuiteOptions } from "../lib/suite.ts"

/** Hot keys of the hit scenarios: all present, read uniformly at random. */
const KEYS = 1_000
const CAPACITY = 10_000
const SEQ_MASK = (1 << 16) - 1
const TTL_MS = 60 * 60 * 1000

const users: ReadonlyArray<User> = Array.from({ length: KEYS }, (_, i) => makeUser(i))
const seq = idSequence(SEQ_MASK + 1, KEYS)

/** The loader every contender uses: a cheap synchronous "database". */
const findUser = (id: number) => Effect.sync(() => users[id % KEYS]!)

/** Advances through the shared id sequence, batch after batch. */
const cursor = () => {
  let pos = 0
  return (n: number): number => {
    const start = pos
    pos = (pos + n) & SEQ_MASK
    return start
  }
}

const makePeers = () => {
  const lru = new LRUCache<string, User>({ max: CAPACITY, ttl: TTL_MS })
  // BentoCache's default L1 serialises values (a JSON round trip per read).
  const bento = new BentoCache({
    default: "memory",
    stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: CAPACITY })) }
  })
  // serialize: false keeps values as objects: BentoCache's fastest L1.
  const bentoRaw = new BentoCache({
    default: "memory",
    stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: CAPACITY, serialize: false })) }
  })
  // Default store: Keyv on a Map, values kept as objects.
  const manager = createCache({ ttl: TTL_MS })
  return { lru, bento, bentoRaw, manager }
}

const inFiber = <R>(
  run: (effect: Effect.Effect<number, never, R>) => Promise<number>,
  n: number,
  body: (i: number) => Effect.Effect<unknown, never, R>
) => {
  const loop = Effect.gen(function* () {
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* body(i)
    return performance.now() - start
  })
  return async (): Promise<Batch> => ({ ops: n, elapsedMs: await run(loop) })
}

const asyncLoop = (n: number, body: (i: number) => Promise<unknown>) => async (): Promise<Batch> => {
  const start = performance.now()
  for (let i = 0; i < n; i++) await body(i)
  return { ops: n, elapsedMs: performance.now() - start }
}

const syncLoop = (n: number, body: (i: number) => unknown) => (): Batch => {
  const start = performance.now()
  for (let i = 0; i < n; i++) body(i)
  return { ops: n, elapsedMs: performance.now() - start }
}

const hitScenarios = async (options: SuiteOptions): Promise<Array<ScenarioResult>> => {
  const runtime = ManagedRuntime.make(Cachet.layerMemory({ capacity: CAPACITY }))
  const context = await runtime.context()
  const run = Effect.runPromiseWith(context)
  // The same store with plain LRU eviction: what a hit cost before W-TinyLFU.
  const lruRuntime = ManagedRuntime.make(Cachet.layerMemory({ capacity: CAPACITY, eviction: "lru" }))
  const runLru = Effect.runPromiseWith(await lruRuntime.context())
  // TieredStore (memory L2, no bus): what an L1 hit costs next to a memory-store hit.
  const tieredRuntime = ManagedRuntime.make(
    Cachet.layer().pipe(
      Layer.provide(TieredStore.layer({ l2: CacheStore.layerMemory(), bus: false, l1: { capacity: CAPACITY } }))
    )
  )
  const runTiered = Effect.runPromiseWith(await tieredRuntime.context())
  const effectCache = await Effect.runPromise(
    Cache.make({ capacity: CAPACITY, lookup: (id: number) => findUser(id), timeToLive: TTL_MS })
  )
  const { lru, bento, bentoRaw, manager } = makePeers()

  // Every contender starts with all KEYS present.
  const getCachet = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))
  // The memoised function of the README: the loader is built on a miss only.
  const cachedUser = Cachet.cached(Users, (p: { readonly id: number }) => findUser(p.id), Strategy.cacheAside)
  // The same without a strategy: the keyspace's strategy from context (none here: cache-aside).
  const cachedAuto = Cachet.cached(Users, (p: { readonly id: number }) => findUser(p.id))
  await run(Effect.forEach(users, (u) => getCachet(u.id), { discard: true }))
  await runLru(Effect.forEach(users, (u) => getCachet(u.id), { discard: true }))
  // Twice: the first read of each key after its write also fetches its tags' records.
  for (let round = 0; round < 2; round++)
    await runTiered(Effect.forEach(users, (u) => getCachet(u.id), { discard: true }))
  await Effect.runPromise(Effect.forEach(users, (u) => Cache.get(effectCache, u.id), { discard: true }))
  for (const u of users) {
    lru.set(keyOf(u.id), u)
    await bento.set({ key: keyOf(u.id), value: u, ttl: TTL_MS })
    await bentoRaw.set({ key: keyOf(u.id), value: u, ttl: TTL_MS })
    await manager.set(keyOf(u.id), u, TTL_MS)
  }

  const N_FIBER = 5_000
  const N_PROMISE = 2_000
  const c1 = cursor()
  const c2 = cursor()
  const c3 = cursor()
  const c4 = cursor()
  const c5 = cursor()
  const c6 = cursor()
  const c7 = cursor()
  const c8 = cursor()
  const c9 = cursor()
  const c10 = cursor()
  const fiber: Array<Contender> = [
    {
      name: "cachet cacheAside",
      batch: () => {
        const b = c1(N_FIBER)
        return inFiber(run, N_FIBER, (i) => getCachet(seq[(b + i) & SEQ_MASK]!))()
      }
    },
    {
      name: "cachet Cachet.cached",
      batch: () => {
        const b = c9(N_FIBER)
        return inFiber(run, N_FIBER, (i) => cachedUser({ id: seq[(b + i) & SEQ_MASK]! }))()
      }
    },
    {
      name: "cachet Cachet.cached, strategy from context",
      batch: () => {
        const b = c10(N_FIBER)
        return inFiber(run, N_FIBER, (i) => cachedAuto({ id: seq[(b + i) & SEQ_MASK]! }))()
      }
    },
    {
      name: "cachet cacheAside, eviction: lru",
      batch: () => {
        const b = c7(N_FIBER)
        return inFiber(runLru, N_FIBER, (i) => getCachet(seq[(b + i) & SEQ_MASK]!))()
      }
    },
    {
      name: "cachet cacheAside, TieredStore L1 hit",
      batch: () => {
        const b = c8(N_FIBER)
        return inFiber(runTiered, N_FIBER, (i) => getCachet(seq[(b + i) & SEQ_MASK]!))()
      }
    },
    {
      name: "effect Cache.get",
      batch: () => {
        const b = c2(N_FIBER)
        return inFiber(run, N_FIBER, (i) => Cache.get(effectCache, seq[(b + i) & SEQ_MASK]!))()
      }
    },
    {
      name: "lru-cache get (sync, no Effect)",
      batch: () => {
        const b = c3(N_FIBER)
        return syncLoop(N_FIBER, (i) => lru.get(keyOf(seq[(b + i) & SEQ_MASK]!)))()
      }
    },
    {
      name: "BentoCache getOrSet (await)",
      batch: () => {
        const b = c4(N_FIBER)
        return asyncLoop(N_FIBER, (i) => {
          const id = seq[(b + i) & SEQ_MASK]!
          return bento.getOrSet({ key: keyOf(id), factory: () => users[id]!, ttl: TTL_MS })
        })()
      }
    },
    {
      name: "BentoCache getOrSet, serialize: false (await)",
      batch: () => {
        const b = c6(N_FIBER)
        return asyncLoop(N_FIBER, (i) => {
          const id = seq[(b + i) & SEQ_MASK]!
          return bentoRaw.getOrSet({ key: keyOf(id), factory: () => users[id]!, ttl: TTL_MS })
        })()
      }
    },
    {
      name: "cache-manager wrap (await)",
      batch: () => {
        const b = c5(N_FIBER)
        return asyncLoop(N_FIBER, (i) => {
          const id = seq[(b + i) & SEQ_MASK]!
          return manager.wrap(keyOf(id), () => users[id]!, TTL_MS)
        })()
      }
    }
  ]
  const fiberRows = await runThroughput("hit-fiber", fiber, options)

  const p1 = cursor()
  const p2 = cursor()
  const p3 = cursor()
  const p4 = cursor()
  const perPromise: Array<Contender> = [
    {
      name: "cachet cacheAside",
      batch: () => {
        const b = p1(N_PROMISE)
        return timeSequentialAsync(N_PROMISE, (i) => run(getCachet(seq[(b + i) & SEQ_MASK]!)))
      }
    },
    {
      name: "cachet Cachet.cached",
      batch: () => {
        const b = p4(N_PROMISE)
        return timeSequentialAsync(N_PROMISE, (i) => run(cachedUser({ id: seq[(b + i) & SEQ_MASK]! })))
      }
    },
    {
      name: "cachet cacheAside, eviction: lru",
      batch: () => {
        const b = p3(N_PROMISE)
        return timeSequentialAsync(N_PROMISE, (i) => runLru(getCachet(seq[(b + i) & SEQ_MASK]!)))
      }
    },
    {
      name: "effect Cache.get",
      batch: () => {
        const b = p2(N_PROMISE)
        return timeSequentialAsync(N_PROMISE, (i) => run(Cache.get(effectCache, seq[(b + i) & SEQ_MASK]!)))
      }
    }
  ]
  const promiseRows = await runThroughput("hit-runpromise", perPromise, options)

  await bento.disconnectAll()
  await bentoRaw.disconnectAll()
  await manager.disconnect()
  await runtime.dispose()
  await lruRuntime.dispose()
  await tieredRuntime.dispose()

  return [
    {
      id: "hit-fiber",
      title: "Memory hit, inside one fiber",
      workload: `${KEYS} keys all present, uniform random reads; ${N_FIBER} reads per batch in one Effect.gen loop (timed inside the fiber); Promise-based peers in a plain async loop, lru-cache in a plain sync loop`,
      columns: throughputColumns,
      rows: fiberRows,
      ratioOf: "ops",
      baseline: "cachet cacheAside",
      notes: [
        "`*` p50/p99 over batch means (per-read time of each batch), not single reads",
        "cachet renders its key from { id } on every read; the peers get the key string user:<id> built per call, effect Cache is keyed by the number",
        "Cachet.cached: `Cachet.cached(Users, (p) => findUser(p.id), Strategy.cacheAside)` called with { id } (the loader effect is built on a miss only); 'strategy from context' is the same without a strategy argument",
        "BentoCache runs with its default L1 (values serialised: a JSON round trip per read) and with serialize: false; the Promise-based peers are timed in a plain async loop, not wrapped in Effect"
      ]
    },
    {
      id: "hit-runpromise",
      title: "Memory hit, one Effect.runPromise per read",
      workload: `${KEYS} keys all present, uniform random reads; each read is its own Effect.runPromiseWith(context) (context built once from the layer); ${N_PROMISE} sequential reads per batch, each timed`,
      columns: throughputColumns,
      rows: promiseRows,
      ratioOf: "ops",
      baseline: "cachet cacheAside",
      notes: []
    }
  ]
}

const missScenario = async (options: SuiteOptions): Promise<ScenarioResult> => {
  const runtime = ManagedRuntime.make(Cachet.layerMemory({ capacity: CAPACITY }))
  const context = await runtime.context()
  const run = Effect.runPromiseWith(context)
  const lruRuntime = ManagedRuntime.make(Cachet.layerMemory({ capacity: CAPACITY, eviction: "lru" }))
  const runLru = Effect.runPromiseWith(await lruRuntime.context())
  const effectCache = await Effect.runPromise(
    Cache.make({ capacity: CAPACITY, lookup: (id: number) => findUser(id), timeToLive: TTL_MS })
  )
  const { lru, bento, bentoRaw, manager } = makePeers()
  const N = 2_000
  // Every read is of an id never read before: a miss, a load and a write (and,
  // once the store is full, an eviction).
  const fresh = () => {
    let next = 1_000_000
    return () => {
      const start = next
      next += N
      return start
    }
  }
  const f1 = fresh()
  const f2 = fresh()
  const f3 = fresh()
  const f4 = fresh()
  const f5 = fresh()
  const f6 = fresh()
  const f7 = fresh()
  const contenders: Array<Contender> = [
    {
      name: "cachet cacheAside",
      batch: () => {
        const b = f1()
        return inFiber(run, N, (i) => {
          const id = b + i
          return findUser(id).pipe(Strategy.cacheAside(Users, { id }))
        })()
      }
    },
    {
      name: "cachet cacheAside, eviction: lru",
      batch: () => {
        const b = f7()
        return inFiber(runLru, N, (i) => {
          const id = b + i
          return findUser(id).pipe(Strategy.cacheAside(Users, { id }))
        })()
      }
    },
    {
      name: "effect Cache.get",
      batch: () => {
        const b = f2()
        return inFiber(run, N, (i) => Cache.get(effectCache, b + i))()
      }
    },
    {
      name: "lru-cache get+set (sync, no Effect)",
      batch: () => {
        const b = f3()
        return syncLoop(N, (i) => {
          const key = keyOf(b + i)
          let v = lru.get(key)
          if (v === undefined) {
            v = users[(b + i) % KEYS]!
            lru.set(key, v)
          }
          return v
        })()
      }
    },
    {
      name: "BentoCache getOrSet (await)",
      batch: () => {
        const b = f4()
        return asyncLoop(N, (i) =>
          bento.getOrSet({ key: keyOf(b + i), factory: () => users[(b + i) % KEYS]!, ttl: TTL_MS })
        )()
      }
    },
    {
      name: "BentoCache getOrSet, serialize: false (await)",
      batch: () => {
        const b = f6()
        return asyncLoop(N, (i) =>
          bentoRaw.getOrSet({ key: keyOf(b + i), factory: () => users[(b + i) % KEYS]!, ttl: TTL_MS })
        )()
      }
    },
    {
      name: "cache-manager wrap (await)",
      batch: () => {
        const b = f5()
        return asyncLoop(N, (i) => manager.wrap(keyOf(b + i), () => users[(b + i) % KEYS]!, TTL_MS))()
      }
    }
  ]
  const rows = await runThroughput("miss", contenders, options)
  await bento.disconnectAll()
  await bentoRaw.disconnectAll()
  await manager.disconnect()
  await runtime.dispose()
  await lruRuntime.dispose()
  return {
    id: "miss",
    title: "Memory miss, immediate loader",
    workload: `every read is of a new key (load + write; evictions once ${CAPACITY} entries are held); ${N} reads per batch, in one fiber for the Effect contenders`,
    columns: throughputColumns,
    rows,
    ratioOf: "ops",
    baseline: "cachet cacheAside",
    notes: ["`*` p50/p99 over batch means"]
  }
}

export const memorySuite: Suite = {
  id: "memory",
  title: "Memory store: hits and misses",
  run: async (options) => [...(await hitScenarios(options)), await missScenario(options)]
}
