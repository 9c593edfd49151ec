/**
 * A/B of the memory hit in one process: another checkout's `src/` (the base)
 * against this one's, and effect's `Cache.get`, in interleaved batches (order
 * reversed every round); reported: median ns per hit, and the median over
 * rounds of effect's time / the contender's time *in the same round*, which
 * survives a shared machine's drift far better than ops/s of separate runs.
 *
 *   node scripts/node24.mjs bench/hit-ab.ts <base checkout> [fiber|promise] [rounds] [keys]
 *
 * (keys: how many hot keys, 1,000 by default as in the suite; the caches hold
 * at least twice as many.)
 *
 * e.g. `git archive main src | tar -x -C /tmp/base` then `/tmp/base` (it must
 * resolve the same `effect`: link this node_modules next to it). Two floors
 * show what no cache built on Effect can go below: one `withFiber` and one
 * `succeed`; and that plus a params object, two Map lookups and a clock read.
 * "caller's form, cached" is `Cachet.cached`'s hit inside the caller's
 * `findUser(id).pipe(...)` (the loader effect, a closure, `pipe`), and
 * "branch data-first" is `Strategy.cacheAside(findUser(id), Users, { id })`:
 * together they split the cacheAside form's cost into the library's and the
 * `.pipe(f)` call's.
 */
import { Cache, Effect, ManagedRuntime } from "effect"
import { idSequence, makeUser, User } from "./lib/fixtures.ts"

const baseDir = process.argv[2]
if (baseDir === undefined) throw new Error("usage: bench/hit-ab.ts <base checkout> [fiber|promise] [rounds] [keys]")
const which = process.argv[3] ?? "fiber"
const rounds = Number(process.argv[4] ?? 30)
const KEYS = Number(process.argv[5] ?? 1000)
const CAPACITY = Math.max(10_000, 2 * KEYS)
const N = 20000
// The memory suite's fixtures: ~1 KB users, the same id sequence.
const users = Array.from({ length: KEYS }, (_, i) => makeUser(i))
const seq = idSequence(1 << 16, KEYS)
const findUser = (id: number) => Effect.sync(() => users[id % KEYS]!)

const setup = async (dir: string) => {
  const { Cachet, Strategy, Keyspace } = await import(`${dir}/src/index.ts`)
  const Users = Keyspace.make({ name: "user", key: "user:{id}", value: User, ttl: "1 hour" })
  const rt = ManagedRuntime.make(Cachet.layerMemory({ capacity: CAPACITY }))
  const ctx = await rt.context()
  const run = Effect.runPromiseWith(ctx)
  const get = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))
  const cached = Cachet.cached(Users, (p: { readonly id: number }) => findUser(p.id), Strategy.cacheAside)
  await run(Effect.forEach(users, (u) => get(u.id), { discard: true }))
  const first = (id: number) => Strategy.cacheAside(findUser(id), Users, { id })
  return { run, get, cached, first }
}
const base = await setup(baseDir)
const branch = await setup(`${import.meta.dirname}/..`)
const cache = await Effect.runPromise(
  Cache.make({ capacity: CAPACITY, lookup: (id: number) => findUser(id), timeToLive: 3600_000 })
)
await Effect.runPromise(Effect.forEach(users, (u) => Cache.get(cache, u.id), { discard: true }))

const keys = new Map(users.map((u) => [u.id, `user:${u.id}`]))
const map = new Map(users.map((u) => [`user:${u.id}`, u]))
type C = { name: string; batch: (off: number) => Promise<number> }
let sink: unknown
const fiberLoop =
  (run: (e: any) => Promise<number>, body: (id: number) => Effect.Effect<unknown, unknown, any>) => (off: number) =>
    run(
      Effect.gen(function* () {
        const s = performance.now()
        for (let i = 0; i < N; i++) yield* body(seq[(off + i) & 0xffff]!)
        return performance.now() - s
      })
    )
const promiseLoop =
  (run: (e: any) => Promise<unknown>, body: (id: number) => Effect.Effect<unknown, unknown, any>) =>
  async (off: number) => {
    const s = performance.now()
    for (let i = 0; i < N / 4; i++) await run(body(seq[(off + i) & 0xffff]!))
    return (performance.now() - s) * 4
  }
const contenders: Array<C> =
  which === "fiber"
    ? [
        { name: "base cacheAside", batch: fiberLoop(base.run, base.get) },
        { name: "branch cacheAside", batch: fiberLoop(branch.run, branch.get) },
        { name: "base cached", batch: fiberLoop(base.run, (id) => base.cached({ id })) },
        { name: "branch cached", batch: fiberLoop(branch.run, (id) => branch.cached({ id })) },
        { name: "effect Cache.get", batch: fiberLoop(branch.run, (id) => Cache.get(cache, id)) },
        { name: "branch data-first", batch: fiberLoop(branch.run, branch.first) },
        {
          // What the caller's form costs over Cachet.cached: the loader effect,
          // a data-last closure and pipe, around the same memoised hit.
          name: "caller's form, cached",
          // (`self` is kept, so the loader effect cannot be optimised away.)
          batch: fiberLoop(branch.run, (id) =>
            findUser(id).pipe((self) => {
              sink = self
              return branch.cached({ id })
            })
          )
        },
        {
          name: "floor withFiber+succeed",
          batch: fiberLoop(branch.run, (id) => Effect.withFiber(() => Effect.succeed(users[id])))
        },
        {
          name: "floor +{id} Map Date",
          batch: fiberLoop(branch.run, (id) => {
            const p = { id }
            return Effect.withFiber(() => {
              const k = keys.get(p.id)
              const n = Date.now()
              return Effect.succeed(k === undefined || n < 0 ? undefined : map.get(k))
            })
          })
        }
      ]
    : [
        { name: "base cacheAside", batch: promiseLoop(base.run, base.get) },
        { name: "branch cacheAside", batch: promiseLoop(branch.run, branch.get) },
        { name: "base cached", batch: promiseLoop(base.run, (id) => base.cached({ id })) },
        { name: "branch cached", batch: promiseLoop(branch.run, (id) => branch.cached({ id })) },
        { name: "branch data-first", batch: promiseLoop(branch.run, branch.first) },
        { name: "effect Cache.get", batch: promiseLoop(branch.run, (id) => Cache.get(cache, id)) },
        { name: "floor runPromise succeed", batch: promiseLoop(branch.run, (id) => Effect.succeed(users[id])) }
      ]
const times = new Map(contenders.map((c) => [c.name, [] as number[]]))
let off = 0
for (let r = -3; r < rounds; r++) {
  const order = r % 2 === 0 ? contenders : [...contenders].reverse()
  for (const c of order) {
    const ms = await c.batch(off)
    off += N
    if (r >= 0) times.get(c.name)!.push((ms * 1e6) / N)
  }
}
const med = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y)
  return s[Math.floor(s.length / 2)]!
}
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((x, y) => x - y)
  return s[Math.floor((s.length - 1) * p)]!
}
if (sink === 0) console.log(sink)
const effs = times.get("effect Cache.get")!
console.log(
  `${which}: median ns/hit over ${rounds} interleaved batches of ${N}; ratio = median over rounds of (effect Cache.get time / contender time) in the same round, [quartiles]`
)
for (const [name, xs] of times) {
  const ratios = xs.map((x, i) => effs[i]! / x)
  console.log(
    `${name.padEnd(20)} ${med(xs).toFixed(0).padStart(6)} ns  ${med(ratios).toFixed(2)}x effect [${q(ratios, 0.25).toFixed(2)}-${q(ratios, 0.75).toFixed(2)}]`
  )
}
