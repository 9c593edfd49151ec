/**
 * Access traces and the policies replayed over them for the hit-ratio suite:
 * loading (`xz -dc`, big-endian uint32 keys), dense key ids, an offline
 * Bélády optimum (OPT, with bypass), an S3-FIFO reference, lru-cache, and
 * cachet's policy driven directly.
 *
 * Every replay counts a hit when the key is cached at its request; a miss
 * inserts it (except OPT, which may bypass).
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { LRUCache } from "lru-cache"
import { NIL, TinyLfu, type TinyLfuOptions } from "../../src/internal/eviction.ts"

/** A trace with its keys renamed to dense ids `0..distinct-1`. */
export interface Trace {
  readonly name: string
  readonly ids: Int32Array
  readonly distinct: number
}

/** Renames arbitrary keys to dense ids, in order of first appearance. */
export const denseTrace = (name: string, keys: ArrayLike<number>): Trace => {
  const names = new Map<number, number>()
  const ids = new Int32Array(keys.length)
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    let id = names.get(key)
    if (id === undefined) {
      id = names.size
      names.set(key, id)
    }
    ids[i] = id
  }
  return { name, ids, distinct: names.size }
}

/** Reads `<dir>/<name>.trace.xz`; `undefined` when the file is absent. */
export const loadTrace = (dir: string, name: string): Trace | undefined => {
  const file = `${dir}/${name}.trace.xz`
  if (!existsSync(file)) return undefined
  const raw = execFileSync("xz", ["-dc", file], { maxBuffer: 1 << 28 })
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  const keys = new Uint32Array(raw.byteLength >>> 2)
  for (let i = 0; i < keys.length; i++) keys[i] = view.getUint32(4 * i, false)
  return denseTrace(name, keys)
}

/** Hit ratio in percent. */
const percent = (hits: number, n: number): number => (n === 0 ? 0 : (100 * hits) / n)

/**
 * Bélády's optimum with bypass: on a miss with a full cache, the key whose
 * next use is farthest (the newcomer included) is not kept. A max-heap of
 * next-use times; a time at or before now is a stale entry, dropped lazily.
 */
export const opt = (trace: Trace, capacity: number): number => {
  const { ids } = trace
  const n = ids.length
  // next[i]: the next request of ids[i] after i, or n + i when there is none
  // (distinct values, all beyond every real time).
  const next = new Int32Array(n)
  const last = new Int32Array(trace.distinct).fill(-1)
  for (let i = n - 1; i >= 0; i--) {
    const id = ids[i]!
    next[i] = last[id]! === -1 ? n + i : last[id]!
    last[id] = i
  }
  const cached = new Uint8Array(trace.distinct)
  let heap = new Int32Array(2 * capacity + 16)
  let size = 0
  let count = 0
  let hits = 0
  const push = (v: number) => {
    if (size === heap.length) {
      const bigger = new Int32Array(heap.length * 2)
      bigger.set(heap)
      heap = bigger
    }
    let i = size++
    while (i > 0) {
      const p = (i - 1) >> 1
      if (heap[p]! >= v) break
      heap[i] = heap[p]!
      i = p
    }
    heap[i] = v
  }
  const pop = (): number => {
    const top = heap[0]!
    const v = heap[--size]!
    let i = 0
    for (;;) {
      let c = 2 * i + 1
      if (c >= size) break
      if (c + 1 < size && heap[c + 1]! > heap[c]!) c++
      if (heap[c]! <= v) break
      heap[i] = heap[c]!
      i = c
    }
    heap[i] = v
    return top
  }
  const compact = (now: number) => {
    const live: Array<number> = []
    for (let i = 0; i < size; i++) if (heap[i]! > now) live.push(heap[i]!)
    size = 0
    for (const v of live) push(v)
  }
  for (let t = 0; t < n; t++) {
    const id = ids[t]!
    if (cached[id] === 1) {
      hits++
      push(next[t]!)
      if (size > 4 * capacity + 64) compact(t)
      continue
    }
    const nextUse = next[t]!
    if (count < capacity) {
      cached[id] = 1
      count++
      push(nextUse)
      continue
    }
    // The farthest cached next use (stale entries are all <= t, never on top).
    const farthest = heap[0]!
    if (nextUse >= farthest) continue // bypass
    pop()
    cached[ids[farthest < n ? farthest : farthest - n]!] = 0
    cached[id] = 1
    push(nextUse)
  }
  return percent(hits, n)
}

/** lru-cache 11, `max: capacity`, get then set on a miss. */
export const lruCache = (trace: Trace, capacity: number): number => {
  const cache = new LRUCache<number, true>({ max: capacity })
  const { ids } = trace
  let hits = 0
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!
    if (cache.get(id) === undefined) cache.set(id, true)
    else hits++
  }
  return percent(hits, ids.length)
}

/**
 * S3-FIFO (Yang et al., SOSP 2023): a small FIFO (10%) in front of a main
 * FIFO with 2-bit frequencies and reinsertion, and a ghost FIFO of keys
 * evicted from the small queue (as many as the main queue holds). An entry
 * leaves the small queue for the main one after a second hit in it; a ghost
 * hit goes straight to the main queue.
 */
export const s3fifo = (trace: Trace, capacity: number): number => {
  const { ids } = trace
  const smallCap = Math.max(1, Math.floor(capacity / 10))
  const mainCap = Math.max(1, capacity - smallCap)
  // 0 absent, 1 small, 2 main.
  const where = new Uint8Array(trace.distinct)
  const freq = new Uint8Array(trace.distinct)
  const ring = (length: number) => ({ buf: new Int32Array(length), head: 0, size: 0 })
  const small = ring(capacity + 1)
  const main = ring(capacity + 1)
  const pushQ = (q: ReturnType<typeof ring>, v: number) => {
    q.buf[(q.head + q.size) % q.buf.length] = v
    q.size++
  }
  const popQ = (q: ReturnType<typeof ring>): number => {
    const v = q.buf[q.head]!
    q.head = (q.head + 1) % q.buf.length
    q.size--
    return v
  }
  // Ghost: a ring of (id, sequence); an id is a ghost while its latest
  // sequence is still in the ring.
  const ghostLen = mainCap
  const ghostIds = new Int32Array(ghostLen)
  const ghostSeqOf = new Float64Array(trace.distinct).fill(-1)
  let ghostSeq = 0
  const ghostAdd = (id: number) => {
    ghostIds[ghostSeq % ghostLen] = id
    ghostSeqOf[id] = ghostSeq++
  }
  const isGhost = (id: number) => ghostSeqOf[id]! >= 0 && ghostSeqOf[id]! > ghostSeq - 1 - ghostLen
  const evictMain = () => {
    while (main.size > 0) {
      const t = popQ(main)
      if (freq[t]! > 0) {
        freq[t] = freq[t]! - 1
        pushQ(main, t)
      } else {
        where[t] = 0
        return
      }
    }
  }
  const evictSmall = () => {
    while (small.size > 0) {
      const t = popQ(small)
      if (freq[t]! > 1) {
        freq[t] = 0
        where[t] = 2
        pushQ(main, t)
        if (main.size >= mainCap) evictMain()
      } else {
        where[t] = 0
        ghostAdd(t)
        return
      }
    }
  }
  let hits = 0
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!
    if (where[id] !== 0) {
      hits++
      if (freq[id]! < 3) freq[id] = freq[id]! + 1
      continue
    }
    while (small.size + main.size >= capacity) {
      if (small.size >= smallCap || main.size === 0) evictSmall()
      else evictMain()
    }
    freq[id] = 0
    if (isGhost(id)) {
      ghostSeqOf[id] = -1
      where[id] = 2
      pushQ(main, id)
    } else {
      where[id] = 1
      pushQ(small, id)
    }
  }
  return percent(hits, ids.length)
}

/** The key string the store would see for a dense id. */
export const keyNames = (trace: Trace): ReadonlyArray<string> =>
  Array.from({ length: trace.distinct }, (_, id) => `k:${id}`)

/** cachet's policy, driven directly: `touch` on a hit, `add` on a miss. */
export const tinyLfu = (trace: Trace, names: ReadonlyArray<string>, options: TinyLfuOptions): number => {
  const policy = new TinyLfu(options)
  const { ids } = trace
  let hits = 0
  for (let i = 0; i < ids.length; i++) {
    const key = names[ids[i]!]!
    const slot = policy.find(key)
    if (slot === NIL) policy.add(key, 0)
    else {
      hits++
      policy.touch(slot)
    }
  }
  return percent(hits, ids.length)
}
