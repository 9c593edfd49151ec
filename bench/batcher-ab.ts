/**
 * The read batcher against effect's `RequestResolver` (issue 12: "measure it
 * against a plain microtask batcher and keep the faster"), in one process
 * over one redis-server started by the harness on an ephemeral port, one
 * ioredis client each. Both turn the single-key reads a tick issues into one
 * `MGET`; both parse each reply with `JSON.parse`, so the difference is the
 * batching machinery alone:
 *
 * - `microtask batcher`: `redis/internal/batch.ts`, what `RedisStore` uses
 *   (waiters queued per node, flushed by `queueMicrotask`, one fiber per
 *   batch, each caller resumed with its decoded reply);
 * - `RequestResolver`: `Effect.request` of a `Request.Class` through
 *   `RequestResolver.make` (its default delay, `Effect.yieldNow`), each entry
 *   completed with `completeUnsafe`;
 * - `ioredis GET`: one GET per read, no batching (auto-pipelining off), for scale.
 *
 * 2,000 reads per batch, 100 in flight (`Effect.forEach`, concurrency 100),
 * interleaved rounds with the order reversed every round; reported: median
 * ms per batch, the median over rounds of (batcher's time / contender's time)
 * in the same round, and the MGETs and GETs the server ran (INFO commandstats).
 *
 *   node scripts/node24.mjs --expose-gc bench/batcher-ab.ts [rounds]
 */
import { Effect, Exit, Request, RequestResolver } from "effect"
import { Redis } from "ioredis"
import * as Batch from "../src/redis/internal/batch.ts"
import { idSequence, keyOf, makeUser } from "./lib/fixtures.ts"
import { startRedis } from "./lib/redis.ts"

const rounds = Number(process.argv[2] ?? 20)
const KEYS = 1_000
const PER_BATCH = 2_000
const IN_FLIGHT = 100
const seq = idSequence(1 << 16, KEYS, 11)

const redis = await startRedis()
const seed = new Redis({ host: redis.host, port: redis.port })
const pipeline = seed.pipeline()
for (let i = 0; i < KEYS; i++) pipeline.set(`ab:${keyOf(i)}`, JSON.stringify(makeUser(i)))
await pipeline.exec()
const client = () => new Redis({ host: redis.host, port: redis.port })

const failed = (error: unknown) => error as never
const parse = (raw: string | null): unknown => (raw === null ? undefined : JSON.parse(raw))

// -- the microtask batcher ----------------------------------------------------
const c1 = client()
const batcher = Batch.make<string>(
  (_node, keys) => Effect.tryPromise({ try: () => c1.mget(...keys), catch: failed }),
  await Effect.runPromise(Effect.context<never>()),
  () => "node"
)
const viaBatcher = (key: string) => batcher.one(key, (raw) => Effect.succeed(parse(raw)))

// -- RequestResolver ------------------------------------------------------------
class GetRaw extends Request.Class<{ readonly key: string }, string | null, Error> {}
const c2 = client()
const resolver = RequestResolver.make<GetRaw>((entries) =>
  Effect.map(
    Effect.tryPromise({ try: () => c2.mget(...entries.map((e) => e.request.key)), catch: failed }),
    (replies) => {
      for (let i = 0; i < entries.length; i++) entries[i]!.completeUnsafe(Exit.succeed(replies[i] ?? null))
    }
  )
)
const viaResolver = (key: string) => Effect.map(Effect.request(new GetRaw({ key }), resolver), parse)

// -- one GET per read -----------------------------------------------------------
const c3 = client()
const viaGet = (key: string) => Effect.map(Effect.tryPromise({ try: () => c3.get(key), catch: failed }), parse)

const batchOf = (read: (key: string) => Effect.Effect<unknown, unknown>) => (off: number) =>
  Effect.runPromise(
    Effect.forEach(
      Array.from({ length: PER_BATCH }, (_, i) => `ab:${keyOf(seq[(off + i) & 0xffff]!)}`),
      (key) => read(key),
      { concurrency: IN_FLIGHT, discard: true }
    )
  )

const stats = async () => {
  const info = await seed.info("commandstats")
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
  return { mget: calls("mget"), get: calls("get") }
}

const contenders = [
  { name: "microtask batcher", batch: batchOf(viaBatcher) },
  { name: "RequestResolver", batch: batchOf(viaResolver) },
  { name: "ioredis GET", batch: batchOf(viaGet) }
]
const times = new Map(contenders.map((c) => [c.name, [] as Array<number>]))
const commands = new Map(contenders.map((c) => [c.name, { mget: 0, get: 0, reads: 0 }]))
let off = 0
for (let r = -3; r < rounds; r++) {
  const order = r % 2 === 0 ? contenders : [...contenders].reverse()
  for (const c of order) {
    globalThis.gc?.()
    const before = await stats()
    const start = performance.now()
    await c.batch(off)
    const ms = performance.now() - start
    const after = await stats()
    off += PER_BATCH
    if (r >= 0) {
      times.get(c.name)!.push(ms)
      const n = commands.get(c.name)!
      n.mget += after.mget - before.mget
      n.get += after.get - before.get
      n.reads += PER_BATCH
    }
  }
}
const q = (xs: ReadonlyArray<number>, p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!
const base = times.get("microtask batcher")!
console.log(
  `${PER_BATCH} reads of ~1 KB JSON per batch, ${IN_FLIGHT} in flight, ${rounds} interleaved rounds: median ms per batch; ratio = median over rounds of (microtask batcher's time / contender's time), [quartiles]; commands per 100 reads`
)
for (const [name, xs] of times) {
  const ratios = xs.map((x, i) => base[i]! / x)
  const n = commands.get(name)!
  console.log(
    `${name.padEnd(18)} ${q(xs, 0.5).toFixed(1).padStart(6)} ms  ${q(ratios, 0.5).toFixed(2)}x [${q(ratios, 0.25).toFixed(2)}-${q(ratios, 0.75).toFixed(2)}]  ${((100 * n.mget) / n.reads).toFixed(2)} MGET, ${((100 * n.get) / n.reads).toFixed(2)} GET`
  )
}
for (const c of [seed, c1, c2, c3]) await c.quit()
await redis.close()
