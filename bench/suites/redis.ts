/**
 * Redis scenarios, on our own redis-server (ephemeral loopback port, no
 * persistence): hits with 100 requests in flight, misses with 100 in flight
 * (read, load, write), and getMany of 100 keys.
 *
 * For the hits every contender reads the same ~1 KB JSON values, written
 * beforehand under its own prefix. For the misses every read is of a key
 * never read before (ids from a counter), so each is a GET that finds
 * nothing, a loader call and a write (cachet's is the fenced Lua SET).
 */
import KeyvRedis from "@keyv/redis"
import { BentoCache, bentostore } from "bentocache"
import { redisDriver } from "bentocache/drivers/redis"
import { createCache } from "cache-manager"
import { Effect, Layer, ManagedRuntime } from "effect"
import { Redis } from "ioredis"
import { Keyv } from "keyv"
import { Cachet, Keyspace, Strategy } from "../../src/index.ts"
import { idSequence, keyOf, makeUser, User, Users } from "../lib/fixtures.ts"
import { type Batch, type Contender, runThroughput, timeConcurrentAsync, timeSequentialAsync } from "../lib/measure.ts"
import { type OwnRedis, redisUnavailable, startRedis } from "../lib/redis.ts"
import { type ScenarioResult, skippedScenarios, throughputColumns } from "../lib/report.ts"
import type { Suite, SuiteOptions } from "../lib/suite.ts"

const KEYS = 1_000
const TTL_MS = 60 * 60 * 1000
const IN_FLIGHT = 100
const PER_BATCH = 2_000
const MANY = 100
const MANY_PER_BATCH = 20
const SEQ_MASK = (1 << 16) - 1

const users: ReadonlyArray<User> = Array.from({ length: KEYS }, (_, i) => makeUser(i))
/** Miss keys live this long (the scenario writes ~2 MB per batch per contender). */
const MISS_TTL_MS = 10_000
const Misses = Keyspace.make({ name: "miss", key: "{id}", value: User, ttl: "10 seconds" })
const seq = idSequence(SEQ_MASK + 1, KEYS, 7)

type RedisModule = typeof import("../../src/redis/index.ts")

/** Store options of the cachet variants (all public `RedisStore.layer` options). */
type Variant = Record<string, unknown>

/** cachet's Redis store, if it loads and answers; else why not. */
const loadCachetRedis = async (
  redis: OwnRedis,
  variant: Variant = {}
): Promise<
  | {
      readonly run: <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet>) => Promise<A>
      readonly close: () => Promise<void>
    }
  | string
> => {
  let module: RedisModule
  try {
    module = await import("../../src/redis/index.ts")
  } catch (error) {
    return `cachet/redis does not load yet (${error instanceof Error ? error.message : String(error)})`
  }
  if (typeof module.RedisStore?.layer !== "function") return "cachet/redis has no RedisStore.layer yet"
  try {
    const runtime = ManagedRuntime.make(
      Cachet.layer().pipe(Layer.provide(module.RedisStore.layer({ url: redis.url, prefix: "cachet", ...variant })))
    )
    const run = Effect.runPromiseWith(await runtime.context())
    // Strict mode: a store that does not work fails here instead of degrading.
    await run(Cachet.set(Users, { id: -1 }, users[0]!, { onStoreError: "fail" }))
    return { run, close: () => runtime.dispose() }
  } catch (error) {
    return `cachet RedisStore is not usable yet (${error instanceof Error ? error.message : String(error)})`
  }
}

/** A batch of PER_BATCH reads in one fiber, IN_FLIGHT at a time, each timed. */
const inFiber = async (
  run: <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet>) => Promise<A>,
  read: (i: number) => Effect.Effect<unknown, unknown, Cachet.Cachet>
): Promise<Batch> => {
  const latencies = new Float64Array(PER_BATCH)
  const start = performance.now()
  await run(
    Effect.forEach(
      Array.from({ length: PER_BATCH }, (_, i) => i),
      (i) =>
        Effect.suspend(() => {
          const t0 = performance.now()
          return Effect.map(read(i), () => {
            latencies[i] = performance.now() - t0
          })
        }),
      { concurrency: IN_FLIGHT, discard: true }
    )
  )
  return { ops: PER_BATCH, elapsedMs: performance.now() - start, latenciesMs: latencies }
}

const cursor = () => {
  let pos = 0
  return (n: number) => {
    const start = pos
    pos = (pos + n) & SEQ_MASK
    return start
  }
}

const runRedis = async (options: SuiteOptions): Promise<Array<ScenarioResult>> => {
  const unavailable = redisUnavailable()
  if (unavailable !== undefined) return skippedScenarios(["redis-hit", "redis-miss", "redis-getmany"], unavailable)
  const redis = await startRedis()
  const closers: Array<() => Promise<unknown>> = []
  try {
    // cachet with its defaults, then with public options that show what
    // each default gives or costs: read batching, the decode cache, the
    // circuit breaker, and ioredis auto-pipelining.
    const variants: ReadonlyArray<{ readonly label: string; readonly options: Variant }> = [
      { label: "", options: {} },
      { label: ", batchReads off", options: { batchReads: false } },
      { label: ", decodeCache off", options: { decodeCache: false } },
      { label: ", breaker off", options: { breaker: false } },
      {
        label: ", breaker off + autopipelining",
        options: { breaker: false, redisOptions: { enableAutoPipelining: true } }
      }
    ]
    const cachets: Array<{ readonly label: string; readonly cachet: Awaited<ReturnType<typeof loadCachetRedis>> }> = []
    for (const variant of variants) {
      const cachet = await loadCachetRedis(redis, variant.options)
      if (typeof cachet !== "string") closers.push(cachet.close)
      cachets.push({ label: variant.label, cachet })
    }
    const first = cachets[0]!.cachet
    if (typeof first === "string") {
      console.log(`   NOTE: ${first}; the cachet Redis rows are skipped`)
    }
    const raw = new Redis({ host: redis.host, port: redis.port })
    closers.push(() => raw.quit())
    // The keys every contender reads, written by each the way it writes them.
    const seedCachetAndRaw = async () => {
      if (typeof first !== "string") {
        await first.run(
          Effect.forEach(users, (u) => Cachet.set(Users, { id: u.id }, u, { onStoreError: "fail" }), {
            concurrency: 50,
            discard: true
          })
        )
      }
      const pipeline = raw.pipeline()
      for (const u of users) pipeline.set(`raw:${keyOf(u.id)}`, JSON.stringify(u), "PX", TTL_MS)
      await pipeline.exec()
    }
    await seedCachetAndRaw()

    const bento = new BentoCache({
      default: "redis",
      // L2 only: every read goes to Redis (no memory layer in front).
      stores: { redis: bentostore().useL2Layer(redisDriver({ connection: { host: redis.host, port: redis.port } })) }
    })
    closers.push(() => bento.disconnectAll())
    for (const u of users) await bento.set({ key: keyOf(u.id), value: u, ttl: TTL_MS })

    const keyv = new Keyv({ store: new KeyvRedis(redis.url), namespace: "cm" })
    const manager = createCache({ stores: [keyv], ttl: TTL_MS })
    closers.push(() => manager.disconnect())
    for (const u of users) await manager.set(keyOf(u.id), u, TTL_MS)

    // -- hits, 100 in flight --------------------------------------------------
    const loader = (id: number) => Effect.sync(() => users[id]!)
    const c2 = cursor()
    const c3 = cursor()
    const c4 = cursor()
    const hit: Array<Contender> = [
      ...cachets.map(({ label, cachet }): Contender => {
        const next = cursor()
        return {
          name: `cachet cacheAside${label}`,
          skip: typeof cachet === "string" ? cachet : undefined,
          batch: async (): Promise<Batch> => {
            if (typeof cachet === "string") throw new Error(cachet)
            const b = next(PER_BATCH)
            return inFiber(cachet.run, (i) => {
              const id = seq[(b + i) & SEQ_MASK]!
              return loader(id).pipe(Strategy.cacheAside(Users, { id }))
            })
          }
        }
      }),
      {
        name: "ioredis GET + JSON.parse",
        batch: () => {
          const b = c2(PER_BATCH)
          return timeConcurrentAsync(PER_BATCH, IN_FLIGHT, async (i) => {
            const text = await raw.get(`raw:${keyOf(seq[(b + i) & SEQ_MASK]!)}`)
            return text === null ? undefined : (JSON.parse(text) as User)
          })
        }
      },
      {
        name: "BentoCache L2 getOrSet",
        batch: () => {
          const b = c3(PER_BATCH)
          return timeConcurrentAsync(PER_BATCH, IN_FLIGHT, (i) => {
            const id = seq[(b + i) & SEQ_MASK]!
            return bento.getOrSet({ key: keyOf(id), factory: () => users[id]!, ttl: TTL_MS })
          })
        }
      },
      {
        name: "cache-manager+keyv/redis wrap",
        batch: () => {
          const b = c4(PER_BATCH)
          return timeConcurrentAsync(PER_BATCH, IN_FLIGHT, (i) => {
            const id = seq[(b + i) & SEQ_MASK]!
            return manager.wrap(keyOf(id), () => users[id]!, TTL_MS)
          })
        }
      }
    ]
    const hitRows = await runThroughput("redis-hit", hit, options)

    // -- misses, 100 in flight: read, load, write -------------------------------
    // Every read is of an id never read before, by any contender.
    let fresh = 1_000_000
    const freshIds = () => {
      const from = fresh
      fresh += PER_BATCH
      return from
    }
    const missLoader = (id: number) => Effect.sync(() => users[id % KEYS]!)
    const miss: Array<Contender> = [
      ...cachets.map(
        ({ label, cachet }): Contender => ({
          name: `cachet cacheAside${label}`,
          skip: typeof cachet === "string" ? cachet : undefined,
          batch: async (): Promise<Batch> => {
            if (typeof cachet === "string") throw new Error(cachet)
            const b = freshIds()
            return inFiber(cachet.run, (i) => missLoader(b + i).pipe(Strategy.cacheAside(Misses, { id: b + i })))
          }
        })
      ),
      {
        name: "ioredis GET + JSON.parse, SET PX",
        batch: () => {
          const b = freshIds()
          return timeConcurrentAsync(PER_BATCH, IN_FLIGHT, async (i) => {
            const key = `raw:miss:${b + i}`
            const text = await raw.get(key)
            if (text !== null) return JSON.parse(text) as User
            const value = users[(b + i) % KEYS]!
            await raw.set(key, JSON.stringify(value), "PX", MISS_TTL_MS)
            return value
          })
        }
      },
      {
        name: "BentoCache L2 getOrSet",
        batch: () => {
          const b = freshIds()
          return timeConcurrentAsync(PER_BATCH, IN_FLIGHT, (i) =>
            bento.getOrSet({ key: `miss:${b + i}`, factory: () => users[(b + i) % KEYS]!, ttl: MISS_TTL_MS })
          )
        }
      },
      {
        name: "cache-manager+keyv/redis wrap",
        batch: () => {
          const b = freshIds()
          return timeConcurrentAsync(PER_BATCH, IN_FLIGHT, (i) =>
            manager.wrap(`miss:${b + i}`, () => users[(b + i) % KEYS]!, MISS_TTL_MS)
          )
        }
      }
    ]
    const missRows = await runThroughput("redis-miss", miss, options)
    // The misses left ~100k keys that expire 10 s later: Redis's active
    // expiry would then stall the getMany rows (its cycles take up to 25 ms).
    // Start them from the hit rows' state instead.
    await raw.flushall()
    await seedCachetAndRaw()
    for (const u of users) await manager.set(keyOf(u.id), u, TTL_MS)

    // -- getMany of 100 keys ---------------------------------------------------
    const m2 = cursor()
    const m3 = cursor()
    const idsAt = (b: number, i: number) => Array.from({ length: MANY }, (_, k) => seq[(b + i * MANY + k) & SEQ_MASK]!)
    const many: Array<Contender> = [
      ...cachets.map(({ label, cachet }): Contender => {
        const next = cursor()
        return {
          name: `cachet Cachet.getMany${label}`,
          skip: typeof cachet === "string" ? cachet : undefined,
          batch: () => {
            if (typeof cachet === "string") throw new Error(cachet)
            const b = next(MANY * MANY_PER_BATCH)
            return timeSequentialAsync(MANY_PER_BATCH, (i) =>
              cachet.run(
                Cachet.getMany(
                  Users,
                  idsAt(b, i).map((id) => ({ id }))
                )
              )
            )
          }
        }
      }),
      {
        name: "ioredis MGET + JSON.parse",
        batch: () => {
          const b = m2(MANY * MANY_PER_BATCH)
          return timeSequentialAsync(MANY_PER_BATCH, async (i) => {
            const texts = await raw.mget(idsAt(b, i).map((id) => `raw:${keyOf(id)}`))
            return texts.map((t) => (t === null ? undefined : (JSON.parse(t) as User)))
          })
        }
      },
      {
        name: "cache-manager+keyv/redis mget",
        batch: () => {
          const b = m3(MANY * MANY_PER_BATCH)
          return timeSequentialAsync(MANY_PER_BATCH, (i) => manager.mget(idsAt(b, i).map(keyOf)))
        }
      }
    ]
    const manyRows = await runThroughput("redis-getmany", many, options)

    return [
      {
        id: "redis-hit",
        title: "Redis hit, 100 in flight",
        workload: `${KEYS} keys of ~1 KB JSON, all present, uniform random; ${PER_BATCH} reads per batch with ${IN_FLIGHT} in flight; each read timed; cachet in one fiber (Effect.forEach concurrency ${IN_FLIGHT}), the peers in ${IN_FLIGHT} async workers`,
        columns: throughputColumns,
        rows: hitRows,
        ratioOf: "ops",
        baseline: "cachet cacheAside",
        notes: [
          "one connection per contender; raw ioredis with its defaults (no auto-pipelining); BentoCache with L2 only; cache-manager on Keyv + @keyv/redis (node-redis)",
          "the cachet variants use public RedisStore.layer options: `batchReads: false` (one GET per read instead of this tick's GETs as one MGET), `decodeCache: false` (every reply parsed and validated, even when its bytes are those of the key's last read), `breaker: false`, `redisOptions: { enableAutoPipelining: true }`"
        ]
      },
      {
        id: "redis-miss",
        title: "Redis miss, 100 in flight (read, load, write)",
        workload: `every read is of a key never read before (ids from a counter); ~1 KB JSON values from an in-memory loader; ${PER_BATCH} reads per batch with ${IN_FLIGHT} in flight; each read timed; values expire after ${MISS_TTL_MS / 1000} s`,
        columns: throughputColumns,
        rows: missRows,
        ratioOf: "ops",
        baseline: "cachet cacheAside",
        notes: [
          "a cachet miss is GET, then the fenced Lua SET (one EVALSHA: it compares the key's tombstone and the tags' and keyspace's records with the load's start, and writes or refuses); the peers write with a plain SET",
          "the same connections and options as the hit rows"
        ]
      },
      {
        id: "redis-getmany",
        title: "Redis getMany of 100 keys",
        workload: `${MANY} random keys of ~1 KB JSON per call, all present; ${MANY_PER_BATCH} sequential calls per batch, each timed (ops/s = calls/s)`,
        columns: throughputColumns,
        rows: manyRows,
        ratioOf: "ops",
        baseline: "cachet Cachet.getMany",
        notes: [
          "the server is flushed and the 1,000 keys written again after the miss rows: their ~100k keys expire 10 s later, and Redis's active expiry cycles would stall these rows"
        ]
      }
    ]
  } finally {
    for (const close of closers.reverse()) {
      try {
        await close()
      } catch {
        // closing is best effort; the server goes next anyway
      }
    }
    await redis.close()
  }
}

export const redisSuite: Suite = {
  id: "redis",
  title: "Redis store (own redis-server)",
  run: runRedis
}
