/**
 * The memory store's hit alone, W-TinyLFU against `eviction: "lru"`, in one
 * process: `getFreshUnsafe` (the runtime's hit path: the value, no entry
 * object) on 1,000 present keys in a fixed pseudo-random order
 * (no Effect, no strategy), 40 batches of 200,000 hits per store, the two
 * stores alternating batch by batch (so that load on a shared machine falls
 * on both), the first 10 batches of each discarded as warm-up.
 *
 *   node scripts/node24.mjs bench/hitab.ts [--capacity 10000]
 *
 * Prints the median ns per hit of each and their ratio, with each one's
 * noise (± half the spread of the kept batches over the median, as in the
 * suites).
 */
import { parseArgs } from "node:util"
import { Effect, Result } from "effect"
import { type CacheStore, type EntryCodec, makeMemory, type StoredEntry } from "../src/CacheStore.ts"

type StoreService = CacheStore["Service"]

import { NotFresh } from "../src/internal/store.ts"
import { idSequence, makeUser } from "./lib/fixtures.ts"

const { values } = parseArgs({ options: { capacity: { type: "string", default: "10000" } } })
const capacity = Number(values.capacity)
const KEYS = 1_000
const BATCH = 200_000
const BATCHES = 40
const WARMUP = 10

const codec: EntryCodec = {
  keyspace: "bench",
  encode: (v) => Result.succeed(v),
  decode: (d) => Result.succeed(d),
  onCorrupt: () => {}
}
// Entries made now, fresh for an hour (the store's clock is the real one).
const T0 = Date.now()
const HOUR = 3_600_000
const names = Array.from({ length: KEYS }, (_, i) => `user:${i}`)
const seq = idSequence(1 << 16, KEYS)

const filled = (eviction: "w-tinylfu" | "lru"): StoreService => {
  const store = Effect.runSync(makeMemory({ capacity, eviction, seed: 1 }))
  for (let i = 0; i < KEYS; i++) {
    const entry: StoredEntry = {
      value: makeUser(i),
      createdAt: T0,
      freshUntil: T0 + HOUR,
      staleUntil: T0 + HOUR,
      tags: []
    }
    Effect.runSync(store.set(names[i]!, entry, codec))
  }
  return store
}

/** ns per hit of one batch. */
const batch = (store: StoreService): number => {
  const get = store.getFreshUnsafe!
  let hits = 0
  const t0 = performance.now()
  for (let i = 0; i < BATCH; i++) if (get(names[seq[i & 0xffff]!]!, T0) !== NotFresh) hits++
  const ns = ((performance.now() - t0) * 1e6) / BATCH
  if (hits !== BATCH) throw new Error(`expected ${BATCH} hits, got ${hits}`)
  return ns
}

const stores = { "w-tinylfu": filled("w-tinylfu"), lru: filled("lru") } as const
const times: Record<keyof typeof stores, Array<number>> = { "w-tinylfu": [], lru: [] }
for (let b = 0; b < BATCHES; b++) {
  const order: ReadonlyArray<keyof typeof stores> = b % 2 === 0 ? ["w-tinylfu", "lru"] : ["lru", "w-tinylfu"]
  for (const name of order) times[name].push(batch(stores[name]))
}
const summary = (xs: ReadonlyArray<number>) => {
  const kept = xs.slice(WARMUP).sort((a, b) => a - b)
  const median = kept[kept.length >> 1]!
  return { median, noise: (kept[kept.length - 1]! - kept[0]!) / 2 / median }
}
const tiny = summary(times["w-tinylfu"])
const lru = summary(times.lru)
const fmt = (s: { median: number; noise: number }) => `${s.median.toFixed(1)} ns (±${(100 * s.noise).toFixed(1)}%)`
console.log(
  `capacity ${capacity}, ${KEYS} keys: W-TinyLFU ${fmt(tiny)}, LRU ${fmt(lru)}, ratio ${(tiny.median / lru.median).toFixed(2)}`
)
