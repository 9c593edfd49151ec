/**
 * A/B of the Redis hit (100 in flight) in one process against one
 * redis-server (started by the harness on an ephemeral port): another
 * checkout's `src/` (the base) against this one's, raw ioredis GET +
 * JSON.parse and BentoCache's L2 `getOrSet`, in interleaved batches (order
 * reversed every round). Reported: median µs per batch of 2,000 reads and,
 * per contender, the median over rounds of raw's time / its time *in the
 * same round* (a shared host's drift cancels out of that ratio far better
 * than out of ops/s from separate runs).
 *
 *   node scripts/node24.mjs --expose-gc bench/redis-ab.ts <base checkout> [rounds] [tagged|plain] [in flight]
 *
 * `tagged`: cachet's keyspace tags each user (`users`, `u:<id mod 10>`), so
 * a hit also checks two tag records (the peers are unchanged).
 *
 * e.g. `git worktree add /tmp/base <commit>` and link this node_modules
 * into it (both must resolve the same `effect`).
 */
import { BentoCache, bentostore } from "bentocache"
import { redisDriver } from "bentocache/drivers/redis"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { idSequence, keyOf, makeUser, User } from "./lib/fixtures.ts"
import { cachetOverRedis, startRedis } from "./lib/redis.ts"

const baseDir = process.argv[2]
if (baseDir === undefined) throw new Error("usage: bench/redis-ab.ts <base checkout> [rounds]")
const rounds = Number(process.argv[3] ?? 20)
const tagged = process.argv[4] === "tagged"
const KEYS = 1_000
const IN_FLIGHT = Number(process.argv[5] ?? 100)
const PER_BATCH = IN_FLIGHT >= 20 ? 2_000 : 200
const TTL_MS = 3_600_000
const users = Array.from({ length: KEYS }, (_, i) => makeUser(i))
const seq = idSequence(1 << 16, KEYS, 7)

const redis = await startRedis()

const setup = async (dir: string, prefix: string) => {
  const { Cachet, Strategy, Keyspace } = await import(`${dir}/src/index.ts`)
  const { RedisStore } = await import(`${dir}/src/redis/index.ts`)
  const Users = Keyspace.make({
    name: "user",
    key: "user:{id}",
    value: User,
    ttl: "1 hour",
    ...(tagged ? { tags: (p: { readonly id: number }) => ["users", `u:${p.id % 10}`] } : {})
  })
  const { run, read, close } = await cachetOverRedis(
    { Cachet, Strategy, RedisStore },
    { url: redis.url, prefix },
    Users,
    users
  )
  return {
    close,
    batch: (off: number) =>
      run(
        Effect.forEach(
          Array.from({ length: PER_BATCH }, (_, i) => i),
          (i) => read(seq[(off + i) & 0xffff]!),
          { concurrency: IN_FLIGHT, discard: true }
        )
      )
  }
}

/** PER_BATCH async calls, IN_FLIGHT workers. */
const workers = async (off: number, call: (id: number) => Promise<unknown>) => {
  let next = 0
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < PER_BATCH) await call(seq[(off + next++) & 0xffff]!)
    })
  )
}

const base = await setup(baseDir, "base")
const branch = await setup(`${import.meta.dirname}/..`, "branch")
const raw = new Redis({ host: redis.host, port: redis.port })
const pipeline = raw.pipeline()
for (const u of users) pipeline.set(`raw:${keyOf(u.id)}`, JSON.stringify(u), "PX", TTL_MS)
await pipeline.exec()
const bento = new BentoCache({
  default: "redis",
  stores: { redis: bentostore().useL2Layer(redisDriver({ connection: { host: redis.host, port: redis.port } })) }
})
for (const u of users) await bento.set({ key: keyOf(u.id), value: u, ttl: TTL_MS })

type C = { readonly name: string; readonly batch: (off: number) => Promise<unknown> }
const contenders: Array<C> = [
  { name: "base cacheAside", batch: base.batch },
  { name: "branch cacheAside", batch: branch.batch },
  {
    name: "ioredis GET + JSON.parse",
    batch: (off) =>
      workers(off, async (id) => {
        const text = await raw.get(`raw:${keyOf(id)}`)
        return text === null ? undefined : JSON.parse(text)
      })
  },
  {
    name: "BentoCache L2 getOrSet",
    batch: (off) => workers(off, (id) => bento.getOrSet({ key: keyOf(id), factory: () => users[id]!, ttl: TTL_MS }))
  }
]
const times = new Map(contenders.map((c) => [c.name, [] as Array<number>]))
let off = 0
for (let r = -3; r < rounds; r++) {
  const order = r % 2 === 0 ? contenders : [...contenders].reverse()
  for (const c of order) {
    globalThis.gc?.()
    const start = performance.now()
    await c.batch(off)
    const ms = performance.now() - start
    off += PER_BATCH
    if (r >= 0) times.get(c.name)!.push(ms)
  }
}
const sorted = (xs: ReadonlyArray<number>) => [...xs].sort((x, y) => x - y)
const q = (xs: ReadonlyArray<number>, p: number) => sorted(xs)[Math.floor((xs.length - 1) * p)]!
const raws = times.get("ioredis GET + JSON.parse")!
const bentos = times.get("BentoCache L2 getOrSet")!
console.log(
  `Redis hit${tagged ? " (cachet's entries tagged)" : ""}, ${IN_FLIGHT} in flight: median ms per batch of ${PER_BATCH} over ${rounds} interleaved rounds; ratios = median over rounds of (peer's time / contender's time) in the same round, [quartiles]`
)
for (const [name, xs] of times) {
  const vsRaw = xs.map((x, i) => raws[i]! / x)
  const vsBento = xs.map((x, i) => bentos[i]! / x)
  console.log(
    `${name.padEnd(26)} ${q(xs, 0.5).toFixed(1).padStart(6)} ms  ${q(vsRaw, 0.5).toFixed(2)}x raw [${q(vsRaw, 0.25).toFixed(2)}-${q(vsRaw, 0.75).toFixed(2)}]  ${q(vsBento, 0.5).toFixed(2)}x Bento [${q(vsBento, 0.25).toFixed(2)}-${q(vsBento, 0.75).toFixed(2)}]`
  )
}
await base.close()
await branch.close()
await raw.quit()
await bento.disconnectAll()
await redis.close()
