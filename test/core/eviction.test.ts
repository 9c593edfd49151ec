/**
 * The memory store's eviction policy (adaptive W-TinyLFU), driven directly on
 * short synthetic traces with fixed seeds, beside a plain LRU.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import fc from "fast-check"
import { type EntryCodec, layerMemory, type MemoryOptions, makeMemory, type StoredEntry } from "../../src/CacheStore.ts"
import { NIL, TinyLfu, type TinyLfuOptions } from "../../src/internal/eviction.ts"
import { Lru } from "../../src/internal/lru.ts"

/** xorshift32: the traces are the same on every run. */
const rng = (seed: number) => {
  let s = seed >>> 0 || 1
  return (): number => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 0x1_0000_0000
  }
}

/** Zipf(s) over `n` keys, by inverse CDF. */
const zipf = (n: number, s: number, random: () => number) => {
  const cdf = new Float64Array(n)
  let total = 0
  for (let i = 0; i < n; i++) {
    total += 1 / (i + 1) ** s
    cdf[i] = total
  }
  return (): number => {
    const u = random() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** The keys a policy holds. */
const keysOf = (policy: TinyLfu): Array<string> => [...policy.slots()].map((slot) => policy.keys[slot]!)

/** The keys of any slot policy. */
const keysOfSlots = (policy: Lru): Array<string> => [...policy.slots()].map((slot) => policy.keys[slot]!)

/** Whether a policy holds `key`. */
const has = (policy: TinyLfu, key: string): boolean => policy.find(key) !== NIL

/** Hit ratio (%) of the policy on a trace: touch on a hit, add on a miss. */
const policyHits = (trace: ReadonlyArray<string>, options: TinyLfuOptions): number => {
  const policy = new TinyLfu(options)
  let hits = 0
  for (const key of trace) {
    const node = policy.find(key)
    if (node === NIL) policy.add(key, 0)
    else {
      hits++
      policy.touch(node)
    }
  }
  return (100 * hits) / trace.length
}

/** Hit ratio (%) of a plain LRU (a Map in recency order). */
const lruHits = (trace: ReadonlyArray<string>, capacity: number): number => {
  const map = new Map<string, true>()
  let hits = 0
  for (const key of trace) {
    if (map.delete(key)) hits++
    else if (map.size >= capacity) map.delete(map.keys().next().value!)
    map.set(key, true)
  }
  return (100 * hits) / trace.length
}

const CAPACITY = 100

/** The synthetic traces, scaled to a cache of `capacity` entries. */
const loopTrace = (capacity: number) => {
  const trace: Array<string> = []
  for (let round = 0; round < 30_000 / capacity + 20; round++)
    for (let k = 0; k < 1.5 * capacity; k++) trace.push(`k${k}`)
  return trace
}
const scanTrace = (capacity: number) => {
  const random = rng(7)
  const hot = zipf(4 * capacity, 0.9, random)
  let scan = 0
  return Array.from({ length: 40_000 + 100 * capacity }, () => (random() < 0.5 ? `hot${hot()}` : `scan${scan++}`))
}
const recencyTrace = (capacity: number) => {
  // Each request re-reads one of the last few keys (short stack distance)
  // or introduces a new key: recency is everything, frequency nothing.
  const random = rng(11)
  const trace: Array<string> = []
  let next = 0
  for (let i = 0; i < 100_000 + 100 * capacity; i++) {
    const back = Math.floor(-Math.log(1 - random()) * 0.3 * capacity)
    trace.push(back >= next || random() < 0.3 ? `k${next++}` : trace[trace.length - 1 - back]!)
  }
  return trace
}
const shiftingTrace = (capacity: number) => {
  const random = rng(13)
  const trace: Array<string> = []
  for (let phase = 0; phase < 10; phase++) {
    const hot = zipf(3 * capacity, 1, random)
    for (let i = 0; i < 100 * capacity; i++) trace.push(`p${phase}:${hot()}`)
  }
  return trace
}

// 100 entries: the shadows hold every key; 1,000: half of them.
for (const capacity of [CAPACITY, 10 * CAPACITY]) {
  describe(`eviction: W-TinyLFU against LRU, ${capacity} entries`, () => {
    it("beats LRU on a loop slightly larger than the cache", () => {
      const trace = loopTrace(capacity)
      const lru = lruHits(trace, capacity)
      const policy = policyHits(trace, { capacity, seed: 1 })
      assert.strictEqual(lru, 0)
      assert.isAbove(policy, lru + 20, `policy ${policy.toFixed(1)}% vs LRU ${lru.toFixed(1)}%`)
    })

    it("beats LRU on a hot set interleaved with a scan", () => {
      const trace = scanTrace(capacity)
      const lru = lruHits(trace, capacity)
      const policy = policyHits(trace, { capacity, seed: 1 })
      assert.isAbove(policy, lru + 5, `policy ${policy.toFixed(1)}% vs LRU ${lru.toFixed(1)}%`)
    })

    it("does not lose to LRU by more than a point on a pure recency trace", () => {
      const trace = recencyTrace(capacity)
      const lru = lruHits(trace, capacity)
      const policy = policyHits(trace, { capacity, seed: 1 })
      assert.isAtLeast(policy, lru - 1, `policy ${policy.toFixed(1)}% vs LRU ${lru.toFixed(1)}%`)
    })

    it("follows a shifting hot set, at least as well as LRU", () => {
      const trace = shiftingTrace(capacity)
      const lru = lruHits(trace, capacity)
      const policy = policyHits(trace, { capacity, seed: 1 })
      assert.isAtLeast(policy, lru, `policy ${policy.toFixed(1)}% vs LRU ${lru.toFixed(1)}%`)
    })

    it("widens the window on a recency trace and narrows it on a scan", () => {
      const windowAfter = (trace: ReadonlyArray<string>) => {
        const policy = new TinyLfu({ capacity, seed: 1 })
        for (const key of trace) {
          const node = policy.find(key)
          if (node === NIL) policy.add(key, 0)
          else policy.touch(node)
        }
        return policy.windowFraction
      }
      const initial = new TinyLfu({ capacity }).windowFraction
      assert.isAbove(windowAfter(recencyTrace(capacity)), initial)
      assert.isBelow(windowAfter(scanTrace(capacity)), initial)
    })
  })
}

describe("eviction: W-TinyLFU, determinism", () => {
  it("is deterministic with a fixed seed", () => {
    const random = rng(17)
    const key = zipf(1000, 0.8, random)
    const trace = Array.from({ length: 30_000 }, () => `k${key()}`)
    const run = (seed: number) => {
      const policy = new TinyLfu({ capacity: CAPACITY, seed })
      const resident: Array<string> = []
      for (const k of trace) {
        const node = policy.find(k)
        if (node === NIL) policy.add(k, 0)
        else policy.touch(node)
      }
      resident.push(...keysOf(policy))
      return { resident: resident.sort().join(","), evictions: policy.evictions, window: policy.windowFraction }
    }
    assert.deepStrictEqual(run(42), run(42))
    assert.notDeepEqual(run(42).resident, run(43).resident)
  })
})

describe("eviction: W-TinyLFU, hits", () => {
  it("a hit relinks nothing; a referenced entry at the window's tail gets a second chance", () => {
    // 100 entries, a static window of 10: w0 is the oldest of the window.
    const policy = new TinyLfu({ capacity: 100, seed: 1, adaptive: false, window: 0.1 })
    for (let i = 0; i < 10; i++) policy.add(`w${i}`, 0)
    const w0 = policy.find("w0")
    const links = [policy.prev[w0], policy.next[w0]]
    policy.touch(w0)
    assert.deepStrictEqual([policy.prev[w0], policy.next[w0]], links)
    // The window overflows: w0 (referenced) goes back to its head, w1 leaves.
    policy.add("w10", 0)
    assert.strictEqual(policy.regions[w0]! & 3, 0)
    assert.strictEqual(policy.regions[policy.find("w1")]! & 3, 1)
    assert.isUndefined(policy.invariantViolation())
    // Without the hit, the oldest leaves.
    const plain = new TinyLfu({ capacity: 100, seed: 1, adaptive: false, window: 0.1 })
    for (let i = 0; i <= 10; i++) plain.add(`w${i}`, 0)
    assert.strictEqual(plain.regions[plain.find("w0")]! & 3, 1)
  })
})

describe("eviction: attacks on admission", () => {
  it("a key hammered by an adversary neither ruins the others' hit rate nor stays once the attack stops", () => {
    const random = rng(19)
    const key = zipf(1000, 0.8, random)
    const run = (attack: boolean) => {
      const policy = new TinyLfu({ capacity: CAPACITY, seed: 5 })
      let hits = 0
      let requests = 0
      for (let i = 0; i < 60_000; i++) {
        if (attack) {
          const evil = policy.find("evil")
          if (evil === NIL) policy.add("evil", 0)
          else policy.touch(evil)
        }
        const k = `k${key()}`
        const node = policy.find(k)
        requests++
        if (node === NIL) policy.add(k, 0)
        else {
          hits++
          policy.touch(node)
        }
      }
      return { policy, hitRate: (100 * hits) / requests }
    }
    const quiet = run(false)
    const attacked = run(true)
    // One slot of a hundred goes to the adversary's key.
    assert.isAtLeast(attacked.hitRate, quiet.hitRate - 2, `${attacked.hitRate} vs ${quiet.hitRate}`)
    assert.isTrue(has(attacked.policy, "evil"))
    // The attack stops: the key's counts fade with every halving, and it goes.
    const policy = attacked.policy
    for (let i = 0; i < 50 * CAPACITY * 10; i++) {
      const k = `k${key()}`
      const node = policy.find(k)
      if (node === NIL) policy.add(k, 0)
      else policy.touch(node)
    }
    assert.isFalse(has(policy, "evil"), "the hammered key is not pinned forever")
  })

  it("a warm candidate sometimes wins against a hotter victim (jitter), so no key is kept out forever", () => {
    // A hot resident set of `capacity` keys, then a newcomer that is warm but
    // never as hot: it must get in at some point.
    const policy = new TinyLfu({ capacity: 10, seed: 3, adaptive: false, window: 0.1 })
    const touchOrAdd = (k: string) => {
      const node = policy.find(k)
      if (node === NIL) policy.add(k, 0)
      else policy.touch(node)
    }
    for (let round = 0; round < 20; round++) for (let k = 0; k < 10; k++) touchOrAdd(`hot${k}`)
    let admitted = false
    for (let i = 0; i < 5_000 && !admitted; i++) {
      for (let k = 0; k < 10; k++) touchOrAdd(`hot${k}`)
      touchOrAdd("newcomer")
      touchOrAdd(`filler${i}`)
      // In the main space: the region's list bits (bit 2 marks a referenced node) are not the window's 0.
      admitted = has(policy, "newcomer") && (policy.regions[policy.find("newcomer")]! & 3) !== 0
    }
    assert.isTrue(admitted)
  })
})

describe("eviction: byte weights", () => {
  // Capacity in entries does not bind; 100 bytes do. The window's byte share
  // (1 byte) is below every node, so each new node is a candidate at once.
  const make = () => new TinyLfu({ capacity: 1000, maxBytes: 100, seed: 1, adaptive: false, window: 0.01 })
  /** Raises a key's estimated frequency by `n` without keeping it. */
  const warm = (policy: TinyLfu, key: string, n: number) => {
    for (let i = 0; i < n; i++) {
      policy.add(key, 0)
      policy.remove(policy.find(key))
    }
  }
  const fill = (policy: TinyLfu) => {
    // r1 (second in line to go) is hot; the others were read once.
    warm(policy, "r1", 6)
    for (let i = 0; i < 10; i++) policy.add(`r${i}`, 10)
  }

  it("a small candidate more frequent than the victim is admitted", () => {
    const policy = make()
    warm(policy, "c", 3)
    fill(policy)
    policy.add("c", 10)
    assert.isTrue(has(policy, "c"))
    assert.isFalse(has(policy, "r0"))
    assert.isTrue(has(policy, "r1"))
    assert.isUndefined(policy.invariantViolation())
  })

  it("a candidate bigger than its victims must beat each of them: one hotter victim keeps it out", () => {
    const policy = make()
    warm(policy, "c", 3)
    fill(policy)
    // 50 bytes: it would have to evict r0..r4, and r1 is hotter.
    policy.add("c", 50)
    assert.isFalse(has(policy, "c"))
    assert.isTrue(has(policy, "r1"))
    assert.isAtMost(policy.bytes, 100)
    assert.isUndefined(policy.invariantViolation())
  })
})

/** A policy operation of the model checks: a read of a key (add or touch), a delete, a clear. */
type Op =
  | { readonly op: "get"; readonly key: number; readonly size: number }
  | { readonly op: "delete"; readonly key: number }
  | { readonly op: "clear" }

/** Operations over keys 0 to `keys`, weighted get : delete : clear. */
const opsOver = (keys: number, [get, del, clear]: readonly [number, number, number]): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: get, arbitrary: fc.record({ op: fc.constant("get" as const), key: fc.nat(keys), size: fc.nat(30) }) },
    { weight: del, arbitrary: fc.record({ op: fc.constant("delete" as const), key: fc.nat(keys) }) },
    { weight: clear, arbitrary: fc.record({ op: fc.constant("clear" as const) }) }
  )

describe("eviction: bookkeeping (model-checked)", () => {
  const op = opsOver(40, [10, 3, 1])

  it("never exceeds its bounds, evicts only what was present, and stays consistent under deletes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.option(fc.integer({ min: 30, max: 200 }), { nil: undefined }),
        fc.integer(),
        fc.array(op, { maxLength: 300 }),
        (capacity, maxBytes, seed, ops) => {
          const policy = new TinyLfu({ capacity, maxBytes, seed })
          for (const o of ops) {
            const before = new Set(keysOf(policy))
            if (o.op === "clear") {
              policy.clear()
              continue
            }
            const key = `k${o.key}`
            const node = policy.find(key)
            if (o.op === "delete") {
              if (node !== NIL) policy.remove(node)
              assert.isFalse(has(policy, key))
            } else if (node !== NIL) {
              policy.touch(node)
            } else {
              const evictions = policy.evictions
              const slot = policy.add(key, maxBytes === undefined ? 0 : o.size)
              // The slot it answers is the key's, or NIL when the newcomer itself went.
              assert.strictEqual(policy.find(key), slot)
              // What went is what was there; the count of evictions says how many.
              const gone = [...before].filter((k) => !has(policy, k))
              assert.strictEqual(policy.evictions - evictions, gone.length + (has(policy, key) ? 0 : 1))
            }
            const violation = policy.invariantViolation()
            assert.isUndefined(violation, violation)
          }
        }
      ),
      { numRuns: 300, seed: 20_260_101 }
    )
  })
})

describe("eviction: slots and their index (model-checked)", () => {
  const op = (keys: number) => opsOver(keys, [12, 4, 1])

  it("the LRU over slots is a Map-ordered LRU: same keys, same order of eviction, through growth, removals and reuse", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.option(fc.integer({ min: 30, max: 3_000 }), { nil: undefined }),
        fc.integer(),
        fc.array(op(600), { maxLength: 2_000 }),
        (capacity, maxBytes, seed, ops) => {
          const released = new Set<number>()
          const lru = new Lru({ capacity, maxBytes, seed, release: (slot) => released.add(slot) })
          // The model: a Map in recency order (oldest first), with sizes.
          const model = new Map<string, number>()
          let bytes = 0
          for (const o of ops) {
            if (o.op === "clear") {
              lru.clear()
              model.clear()
              bytes = 0
              continue
            }
            const key = `k${o.key}`
            const slot = lru.find(key)
            assert.strictEqual(slot !== NIL, model.has(key))
            if (o.op === "delete") {
              if (slot !== NIL) {
                released.clear()
                lru.remove(slot)
                assert.deepStrictEqual([...released], [slot])
                bytes -= model.get(key)!
                model.delete(key)
              }
            } else if (slot !== NIL) {
              lru.touch(slot)
              const size = model.get(key)!
              model.delete(key)
              model.set(key, size)
            } else {
              const size = maxBytes === undefined ? 0 : o.size
              const added = lru.add(key, size)
              assert.notStrictEqual(added, NIL)
              assert.isUndefined(lru.keys.find((k, i) => k === key && i !== added))
              model.set(key, size)
              bytes += size
              for (const [oldest, s] of model) {
                if (model.size <= capacity && bytes <= (maxBytes ?? Infinity)) break
                if (oldest === key) break
                model.delete(oldest)
                bytes -= s
              }
            }
            assert.strictEqual(lru.size, model.size)
            assert.strictEqual(lru.bytes, bytes)
          }
          for (const key of model.keys()) assert.notStrictEqual(lru.find(key), NIL)
          assert.deepStrictEqual(keysOfSlots(lru).sort(), [...model.keys()].sort())
        }
      ),
      { numRuns: 150, seed: 20_261_202 }
    )
  })

  it("W-TinyLFU keeps its bookkeeping over hundreds of slots (growth and index rehash)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 400 }),
        fc.integer(),
        fc.array(op(1_000), { minLength: 500, maxLength: 3_000 }),
        (capacity, seed, ops) => {
          const policy = new TinyLfu({ capacity, seed })
          for (const o of ops) {
            if (o.op === "clear") policy.clear()
            else {
              const slot = policy.find(`k${o.key}`)
              if (o.op === "delete") {
                if (slot !== NIL) policy.remove(slot)
              } else if (slot !== NIL) policy.touch(slot)
              else {
                const added = policy.add(`k${o.key}`, 0)
                assert.strictEqual(policy.find(`k${o.key}`), added)
              }
            }
          }
          const violation = policy.invariantViolation()
          assert.isUndefined(violation, violation)
        }
      ),
      { numRuns: 60, seed: 20_261_203 }
    )
  })
})

describe("eviction: the memory store", () => {
  const codec: EntryCodec = {
    keyspace: "t",
    encode: (v) => Result.succeed(v),
    decode: (d) => Result.succeed(d),
    onCorrupt: () => {}
  }
  const entry: StoredEntry = { value: 1, createdAt: 0, freshUntil: 1e15, staleUntil: 1e15, tags: [] }
  /** The store's hit ratio (%) on a trace: `getUnsafe`, then `set` on a miss. */
  const storeHits = (trace: ReadonlyArray<string>, options: MemoryOptions) =>
    Effect.gen(function* () {
      const store = yield* makeMemory(options)
      let hits = 0
      for (const key of trace) {
        if (store.getUnsafe!(key, 0) !== undefined) hits++
        else yield* store.set(key, entry, codec)
      }
      return (100 * hits) / trace.length
    })
  const scanTrace = () => {
    const random = rng(7)
    const hot = zipf(400, 0.9, random)
    let scan = 0
    return Array.from({ length: 20_000 }, () => (random() < 0.5 ? `t:hot${hot()}` : `t:scan${scan++}`))
  }

  it.effect("uses W-TinyLFU by default: the same hits as the policy driven directly, with the same seed", () =>
    Effect.gen(function* () {
      const trace = scanTrace()
      const store = yield* storeHits(trace, { capacity: CAPACITY, seed: 9 })
      assert.strictEqual(store, policyHits(trace, { capacity: CAPACITY, seed: 9 }))
      const lru = yield* storeHits(trace, { capacity: CAPACITY, eviction: "lru" })
      assert.strictEqual(lru, lruHits(trace, CAPACITY))
      assert.isAbove(store, lru + 5)
    })
  )

  it.effect("keeps maxBytes with W-TinyLFU: the byte total never exceeds the budget", () =>
    Effect.gen(function* () {
      const store = yield* makeMemory({ capacity: 1_000, maxBytes: 5_000, seed: 1 })
      const random = rng(23)
      const key = zipf(500, 0.9, random)
      for (let i = 0; i < 5_000; i++) {
        const k = `t:${key()}`
        if (store.getUnsafe!(k, 0) === undefined) {
          yield* store.set(k, { ...entry, value: "x".repeat(Math.floor(random() * 100)) }, codec)
        }
        const info = yield* store.info
        assert.isAtMost(info!.bytes!, 5_000)
      }
      assert.isAbove((yield* store.info)!.evictions, 0)
    })
  )

  it("rejects an unknown eviction or a non-integer seed, naming the option", () => {
    assert.throws(() => layerMemory({ eviction: "fifo" as never }), /"eviction" must be "w-tinylfu" or "lru", got fifo/)
    assert.throws(() => layerMemory({ seed: 1.5 }), /"seed" must be an integer, got 1.5/)
  })
})
