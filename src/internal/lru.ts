/**
 * The slot layout that both eviction policies (`Lru` here, `TinyLfu` in
 * `eviction.ts`) keep their entries in, and the plain LRU.
 *
 * An entry is a *slot*: an index into parallel arrays (its key, its size,
 * its links), not an object. Keys are found through an open-addressing index
 * of slots (an `Int32Array`, linear probing, at most half full), not a
 * `Map`: a `Map` entry costs ~34 bytes per key on a 64-bit Node.js build,
 * the index 4 to 16 (`bench/footprint.ts`). The caller keeps its own data
 * (values, times) in arrays by the same slot and is told when a slot is
 * released (`release`), so that it drops its references; a released slot is
 * reused by a later add.
 *
 * The index hashes keys with a seed drawn once per process (nobody can aim
 * collisions at the probes without it). Hashing a key costs about a `Map`
 * lookup, which reads the hash V8 caches in the string: so the last key
 * hashed is remembered (`indexHash`), and the keyspaces' key memo hands the
 * hash it keeps with a memoised key (`rememberIndexHash`), so that the hit
 * path of a memoised key hashes nothing.
 *
 * Expiry is the caller's: it removes what it finds expired.
 *
 * @internal
 */

/** No slot. */
export const NIL = -1

/** Murmur3's finaliser: every input bit affects every output bit. */
export const mix32 = (h: number): number => {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** A seeded FNV-1a over UTF-16 code units, finalised by `mix32`; 30 bits. */
export const hashString = (key: string, seed: number): number => {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < key.length; i++) {
    h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  }
  // 30 bits: a small integer in optimised code, and the shadows sample by
  // the top bits (eviction.ts).
  return mix32(h) >>> 2
}

/** A random 32-bit seed for a policy built without one. */
export const randomSeed = (): number => (Math.random() * 0x1_0000_0000) >>> 0

/** The index's seed: one per process, never exposed. */
const INDEX_SEED = randomSeed()

/** The last key hashed for the index, and its hash. */
let lastKey: string | undefined
let lastHash = 0

/** A key's index hash, computed (and kept with the key, outside this module). */
export const indexHashOf = (key: string): number => hashString(key, INDEX_SEED)

/** Says that `key`'s index hash is `hash` (from `indexHashOf`), for the next lookup of it. */
export const rememberIndexHash = (key: string, hash: number): void => {
  lastKey = key
  lastHash = hash
}

/** A key's index hash: the remembered one when `key` is the last key hashed. */
export const indexHash = (key: string): number => {
  if (key === lastKey) return lastHash
  const hash = hashString(key, INDEX_SEED)
  lastKey = key
  lastHash = hash
  return hash
}

/** What a policy's options may carry for its caller. */
export interface SlotOptions {
  readonly capacity: number
  readonly maxBytes?: number | undefined
  /** Seeds the policy's own hashing and randomness (default: random per policy). */
  readonly seed?: number | undefined
  /** Called with every slot the policy frees (evicted or removed), before it can be reused. */
  readonly release?: ((slot: number) => void) | undefined
}

const EMPTY = -1
const INITIAL_SLOTS = 16

/**
 * Slots: keys, sizes and two links per slot, a free list, and the index from
 * key to slot. Arrays grow by doubling, never past `capacity + 1` slots (an
 * add comes in before the eviction it causes).
 */
export class Slots {
  readonly capacity: number
  readonly maxBytes: number
  readonly seed: number
  bytes = 0
  evictions = 0
  /** Live slots. */
  size = 0

  keys: Array<string | undefined> = []
  prev: Int32Array
  next: Int32Array
  /** Byte sizes by slot; only with a byte bound (else every size is 0). */
  sizes: Float64Array | undefined

  private index: Int32Array
  private mask: number
  /** Slots ever handed out: slots at and past `top` are unused. */
  private top = 0
  /** The first free slot (the free list threads through `next`). */
  private free = NIL
  private readonly release: ((slot: number) => void) | undefined

  constructor(options: SlotOptions) {
    this.capacity = options.capacity
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    this.seed = (options.seed ?? randomSeed()) >>> 0
    this.release = options.release
    const n = Math.min(INITIAL_SLOTS, this.capacity + 1)
    this.prev = new Int32Array(n)
    this.next = new Int32Array(n)
    this.sizes = this.maxBytes === Number.POSITIVE_INFINITY ? undefined : new Float64Array(n)
    this.index = new Int32Array(4 * INITIAL_SLOTS).fill(EMPTY)
    this.mask = this.index.length - 1
  }

  /** How many slots the arrays hold: a caller's arrays by slot need this length. */
  get length(): number {
    return this.prev.length
  }

  /** The slot of `key`, or `NIL`. */
  find(key: string): number {
    const index = this.index
    const mask = this.mask
    const keys = this.keys
    for (let i = indexHash(key) & mask; ; i = (i + 1) & mask) {
      const slot = index[i]!
      if (slot === EMPTY) return NIL
      if (keys[slot] === key) return slot
    }
  }

  /** The byte size of a slot (0 without a byte bound). */
  sizeOf(slot: number): number {
    const sizes = this.sizes
    return sizes === undefined ? 0 : sizes[slot]!
  }

  /** Every live slot, in no particular order; removing the current slot while iterating is allowed. */
  *slots(): IterableIterator<number> {
    const keys = this.keys
    for (let slot = 0; slot < this.top; slot++) if (keys[slot] !== undefined) yield slot
  }

  /** Takes a free slot for `key` (absent) and indexes it; links are the caller's. */
  protected claim(key: string, size: number): number {
    let slot = this.free
    if (slot !== NIL) {
      this.free = this.next[slot]!
    } else {
      if (this.top === this.prev.length) this.grow()
      slot = this.top++
    }
    this.keys[slot] = key
    if (this.sizes !== undefined) this.sizes[slot] = size
    this.prev[slot] = NIL
    this.next[slot] = NIL
    this.size++
    this.bytes += size
    if (2 * this.size > this.index.length) this.rehash(2 * this.index.length)
    const index = this.index
    const mask = this.mask
    let i = indexHash(key) & mask
    while (index[i] !== EMPTY) i = (i + 1) & mask
    index[i] = slot
    return slot
  }

  /** Frees a live slot (already unlinked by the caller): out of the index, onto the free list, released. */
  protected drop(slot: number): void {
    this.unindex(slot)
    this.keys[slot] = undefined
    this.bytes -= this.sizeOf(slot)
    this.size--
    this.next[slot] = this.free
    this.free = slot
    this.release?.(slot)
  }

  /** Empties the slots (the caller resets its lists); releases every live slot. */
  protected reset(): void {
    const release = this.release
    if (release !== undefined) for (const slot of this.slots()) release(slot)
    this.keys = []
    this.top = 0
    this.free = NIL
    this.size = 0
    this.bytes = 0
    this.index.fill(EMPTY)
  }

  /** Grows a caller's typed array by slot to this policy's length (or hands it back). */
  fit<T extends Int32Array | Uint8Array | Float64Array>(array: T, make: (length: number) => T): T {
    if (array.length >= this.length) return array
    const grown = make(this.length)
    grown.set(array)
    return grown
  }

  // Backward-shift deletion: the probe chains stay unbroken without
  // tombstones. A slot's place in the index comes from its key's hash.
  private unindex(slot: number): void {
    const index = this.index
    const mask = this.mask
    const keys = this.keys
    let i = indexHashOf(keys[slot]!) & mask
    while (index[i] !== slot) i = (i + 1) & mask
    let j = i
    for (;;) {
      j = (j + 1) & mask
      const other = index[j]!
      if (other === EMPTY) break
      const home = indexHashOf(keys[other]!) & mask
      // `other` may move to `i` unless its home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        index[i] = other
        i = j
      }
    }
    index[i] = EMPTY
  }

  private rehash(length: number): void {
    const index = new Int32Array(length).fill(EMPTY)
    const mask = length - 1
    const keys = this.keys
    for (let slot = 0; slot < this.top; slot++) {
      const key = keys[slot]
      if (key === undefined) continue
      let i = indexHashOf(key) & mask
      while (index[i] !== EMPTY) i = (i + 1) & mask
      index[i] = slot
    }
    this.index = index
    this.mask = mask
  }

  private grow(): void {
    const length = Math.min(2 * this.prev.length, this.capacity + 1)
    const grown = (from: Int32Array) => {
      const to = new Int32Array(length)
      to.set(from)
      return to
    }
    this.prev = grown(this.prev)
    this.next = grown(this.next)
    if (this.sizes !== undefined) {
      const sizes = new Float64Array(length)
      sizes.set(this.sizes)
      this.sizes = sizes
    }
  }
}

/** A doubly linked list of slots (head most recently used), over a `Slots`' links. */
export class List {
  head = NIL
  tail = NIL
  count = 0
  bytes = 0
  readonly id: number
  constructor(id: number) {
    this.id = id
  }
  pushHead(slots: Slots, slot: number): void {
    const next = slots.next
    slots.prev[slot] = NIL
    next[slot] = this.head
    if (this.head !== NIL) slots.prev[this.head] = slot
    else this.tail = slot
    this.head = slot
    this.count++
    this.bytes += slots.sizeOf(slot)
  }
  unlink(slots: Slots, slot: number): void {
    const prev = slots.prev
    const next = slots.next
    const p = prev[slot]!
    const n = next[slot]!
    if (p !== NIL) next[p] = n
    else this.head = n
    if (n !== NIL) prev[n] = p
    else this.tail = p
    prev[slot] = next[slot] = NIL
    this.count--
    this.bytes -= slots.sizeOf(slot)
  }
  /** Moves a slot of this list to its head: relinks only (no totals to update). */
  moveToHead(slots: Slots, slot: number): void {
    const head = this.head
    if (head === slot) return
    const prev = slots.prev
    const next = slots.next
    // Not the head, so it has a predecessor.
    const p = prev[slot]!
    const n = next[slot]!
    next[p] = n
    if (n !== NIL) prev[n] = p
    else this.tail = p
    prev[slot] = NIL
    next[slot] = head
    prev[head] = slot
    this.head = slot
  }
  clear(): void {
    this.head = this.tail = NIL
    this.count = this.bytes = 0
  }
}

/** Removes every slot of `policy` whose key starts with `prefix`; returns how many. */
export const removePrefix = (
  policy: { readonly keys: ReadonlyArray<string | undefined>; slots(): Iterable<number>; remove(slot: number): void },
  prefix: string
): number => {
  let count = 0
  for (const slot of policy.slots()) {
    if (policy.keys[slot]!.startsWith(prefix)) {
      policy.remove(slot)
      count++
    }
  }
  return count
}

/** The plain LRU over slots, bounded by entries and optionally bytes. */
export class Lru extends Slots {
  private readonly list = new List(0)

  /** Marks `slot` most recently used. */
  touch(slot: number): void {
    this.list.moveToHead(this, slot)
  }

  /**
   * Adds `key` (absent) as the most recently used, then evicts the least
   * recently used until within bounds, never the new slot itself. Returns
   * the new slot.
   */
  add(key: string, size: number): number {
    const slot = this.claim(key, size)
    this.list.pushHead(this, slot)
    while (this.size > this.capacity || this.bytes > this.maxBytes) {
      const lru = this.list.tail
      if (lru === NIL || lru === slot) break
      this.remove(lru)
      this.evictions++
    }
    return slot
  }

  remove(slot: number): void {
    this.list.unlink(this, slot)
    this.drop(slot)
  }

  /** Removes every slot whose key starts with `prefix`; returns how many. */
  removePrefix(prefix: string): number {
    return removePrefix(this, prefix)
  }

  clear(): void {
    this.reset()
    this.list.clear()
  }
}
