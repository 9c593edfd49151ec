/**
 * One Redis read at a time: cachet's cache-aside hit against raw ioredis
 * `GET` + `JSON.parse`, on our own redis-server (started by the harness on
 * an ephemeral port), sequential reads in rounds, the contenders one after
 * another in each round. Per contender: wall time and process CPU time
 * (`process.cpuUsage`, user + system) per read, the median over rounds of
 * raw's figure / the contender's in the same round, and the socket writes
 * per read (counted on `net.Socket`).
 *
 *   node scripts/node24.mjs --expose-gc bench/redis-seq.ts [--rounds 30] [--only <name prefix>] [--profile <file>]
 *
 * `--profile`: a CPU profile of the measured rounds only (an inspector
 * session started after setup), for the one contender `--only` names.
 */

import * as fs from "node:fs"
import { Session } from "node:inspector/promises"
import net from "node:net"
import { parseArgs } from "node:util"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { Cachet, Keyspace, Strategy } from "../src/index.ts"
import { RedisStore } from "../src/redis/index.ts"
import { idSequence, keyOf, makeUser, User } from "./lib/fixtures.ts"
import { cachetOverRedis, startRedis } from "./lib/redis.ts"

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "30" },
    only: { type: "string" },
    profile: { type: "string" }
  }
})
const ROUNDS = Number(values.rounds)
const KEYS = 1_000
const PER_ROUND = 400
const users = Array.from({ length: KEYS }, (_, i) => makeUser(i))
const seq = idSequence(1 << 16, KEYS, 7)
const Users = Keyspace.make({ name: "user", key: "user:{id}", value: User, ttl: "1 hour" })

// Socket writes (each one a write syscall unless Node queues it).
let writes = 0
const proto = net.Socket.prototype as unknown as Record<string, (...args: Array<unknown>) => unknown>
for (const method of ["_writeGeneric", "_writev"]) {
  const original = proto[method]!
  proto[method] = function (this: unknown, ...args: Array<unknown>) {
    writes++
    return original.apply(this, args)
  }
}

const redis = await startRedis()
const cachet = async (prefix: string, options: Partial<RedisStore.LayerOptions>) => {
  const { run, read, close } = await cachetOverRedis(
    { Cachet, Strategy, RedisStore },
    { url: redis.url, prefix, ...options },
    Users,
    users
  )
  return {
    close,
    fiber: (off: number) =>
      run(
        Effect.gen(function* () {
          for (let i = 0; i < PER_ROUND; i++) yield* read(seq[(off + i) & 0xffff]!)
        })
      ),
    promise: async (off: number) => {
      for (let i = 0; i < PER_ROUND; i++) await run(read(seq[(off + i) & 0xffff]!))
    }
  }
}
const defaults = await cachet("d", {})
const noBreaker = await cachet("nb", { breaker: false })
const unbatched = await cachet("nbt", { batchReads: false })
const raw = new Redis({ host: redis.host, port: redis.port })
const pipeline = raw.pipeline()
for (const u of users) pipeline.set(`raw:${keyOf(u.id)}`, JSON.stringify(u), "PX", 3_600_000)
await pipeline.exec()

const contenders: Record<string, (off: number) => Promise<unknown>> = {
  "ioredis GET + JSON.parse": async (off) => {
    for (let i = 0; i < PER_ROUND; i++) {
      const text = await raw.get(`raw:${keyOf(seq[(off + i) & 0xffff]!)}`)
      if (text !== null) JSON.parse(text)
    }
  },
  "cachet, in one fiber": defaults.fiber,
  "cachet, runPromise per read": defaults.promise,
  "cachet breaker off, in one fiber": noBreaker.fiber,
  "cachet batchReads off, in one fiber": unbatched.fiber
}
const names = Object.keys(contenders).filter((n) => values.only === undefined || n.startsWith(values.only))
const session = values.profile === undefined ? undefined : new Session()
if (session !== undefined) {
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 50 })
}
const wall: Record<string, Array<number>> = {}
const cpu: Record<string, Array<number>> = {}
const writesSeen: Record<string, number> = {}
let off = 0
for (let round = -2; round < ROUNDS; round++) {
  if (round === 0 && session !== undefined) await session.post("Profiler.start")
  for (const name of names) {
    globalThis.gc?.()
    const w0 = writes
    const c0 = process.cpuUsage()
    const start = performance.now()
    await contenders[name]!(off)
    const elapsed = performance.now() - start
    const used = process.cpuUsage(c0)
    off += PER_ROUND
    // The first two rounds warm up.
    if (round < 0) continue
    ;(wall[name] ??= []).push((elapsed * 1000) / PER_ROUND)
    ;(cpu[name] ??= []).push((used.user + used.system) / PER_ROUND)
    writesSeen[name] = (writesSeen[name] ?? 0) + (writes - w0)
  }
}
if (session !== undefined) {
  const { profile } = await session.post("Profiler.stop")
  fs.writeFileSync(values.profile!, JSON.stringify(profile))
}
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
const rawName = "ioredis GET + JSON.parse"
console.log(
  `one Redis read at a time: ${ROUNDS} rounds of ${PER_ROUND} reads per contender; medians; "vs raw" = median over rounds of raw's figure / the contender's in the same round`
)
for (const name of names) {
  const paired = (xs: Record<string, Array<number>>) =>
    xs[rawName] === undefined ? "-" : `${median(xs[name]!.map((x, i) => xs[rawName]![i]! / x)).toFixed(2)}x`
  console.log(
    `${name.padEnd(36)} wall ${median(wall[name]!).toFixed(1).padStart(6)} µs (vs raw ${paired(wall)})  cpu ${median(cpu[name]!).toFixed(1).padStart(6)} µs (vs raw ${paired(cpu)})  socket writes/read ${(writesSeen[name]! / (ROUNDS * PER_ROUND)).toFixed(2)}`
  )
}
await defaults.close()
await noBreaker.close()
await unbatched.close()
await raw.quit()
await redis.close()
