/**
 * The structural size estimate of a value in bytes: what `maxBytes` budgets
 * (memory store, TieredStore L1, write-behind queue) count when no `sizeOf` is given.
 *
 * **Model** (V8 on 64-bit with pointer compression off, as Node ships; the
 * constants were measured with `process.memoryUsage()` after a full GC): a
 * reference is an 8-byte slot in its container; a one-byte string is
 * 16 + length bytes, a two-byte one 16 + 2 × length; a number outside the
 * small-integer range is a 16-byte box; a plain object is 24 + 8 per
 * property (interned property names are shared by objects of one shape and
 * not counted, except in objects of more than 32 keys, which V8 keeps as
 * dictionaries); an array 32 + 8 per element; a `Map` 180 + 32 per entry; a
 * `Set` 160 + 24 per element; a typed array, `DataView` or `Buffer` 200 +
 * its `byteLength` (the view's bytes, not a pooled slab it may share); an
 * `ArrayBuffer` 100 + its `byteLength`; a `Date` 96.
 *
 * **Bounded work**: a collection (array, object, `Map`, `Set`) of more than
 * `SAMPLE` items is estimated from `SAMPLE` of them (evenly spaced in an
 * array, the first ones otherwise), scaled to its size; at most `BUDGET`
 * values are visited in all, and what is left unvisited then counts at the
 * mean of what was. A shared object is counted once. A deep chain of more
 * than `BUDGET` objects (a long linked list) is under-counted: give such
 * values a `sizeOf`.
 *
 * @internal
 */

/** Items of a collection visited before the rest is extrapolated. */
const SAMPLE = 64
/** Values visited in one estimate. */
const BUDGET = 20_000
/** Objects of more keys than this are V8 dictionaries: their keys cost memory. */
const DICTIONARY_KEYS = 32

const TWO_BYTE = /[^\u0000-\u00ff]/

const stringBytes = (s: string): number => {
  const n = s.length
  // Short strings: a loop is cheaper than entering the regex engine.
  if (n <= 32) {
    for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0xff) return 16 + 2 * n
    return 16 + n
  }
  return 16 + (TWO_BYTE.test(s) ? 2 * n : n)
}

const isSmallInt = (n: number): boolean => (n | 0) === n && n < 0x40000000 && n >= -0x40000000

/** A structural size estimate in bytes: used only when a byte budget is set. */
export const estimateSize = (value: unknown): number => {
  let total = 0
  let visited = 0
  let visitedWeight = 0
  const seen = new Set<object>()
  const values: Array<unknown> = [value]
  const weights: Array<number> = [1]
  const push = (child: unknown, weight: number) => {
    // Primitives that cost nothing past their slot are not worth a visit.
    if (child === null || child === undefined || typeof child === "boolean") return
    if (typeof child === "number" && isSmallInt(child)) return
    values.push(child)
    weights.push(weight)
  }
  const object = (record: Record<string, unknown>, w: number) => {
    const keys = Object.keys(record)
    const n = keys.length
    const dictionary = n > DICTIONARY_KEYS
    // An empty literal keeps room for 4 properties.
    total += w * (24 + (dictionary ? 24 * n : 8 * Math.max(n, n === 0 ? 4 : 1)))
    const scale = n <= SAMPLE ? w : (w * n) / SAMPLE
    const step = n <= SAMPLE ? 1 : n / SAMPLE
    for (let i = 0; i < Math.min(n, SAMPLE); i++) {
      const key = keys[Math.floor(i * step)]!
      if (dictionary) total += scale * stringBytes(key)
      push(record[key], scale)
    }
  }
  while (values.length > 0) {
    const v = values.pop()
    const w = weights.pop()!
    if (visited === BUDGET) {
      // Out of budget: what is left counts at the mean of what was seen.
      let left = w
      for (const x of weights) left += x
      return Math.round(total + (total / visitedWeight) * left)
    }
    visited++
    visitedWeight += w
    switch (typeof v) {
      case "string":
        total += w * stringBytes(v)
        break
      case "number":
        total += isSmallInt(v) ? 0 : w * 16
        break
      case "bigint":
        total += w * 24
        break
      case "boolean":
      case "undefined":
        break
      case "object": {
        if (v === null || seen.has(v)) break
        seen.add(v)
        // Plain objects first: the common case skips the checks below.
        const proto = Object.getPrototypeOf(v)
        if (proto === Object.prototype || proto === null) {
          object(v as Record<string, unknown>, w)
          break
        }
        if (ArrayBuffer.isView(v)) {
          total += w * (200 + v.byteLength)
          break
        }
        if (v instanceof ArrayBuffer || (typeof SharedArrayBuffer !== "undefined" && v instanceof SharedArrayBuffer)) {
          total += w * (100 + v.byteLength)
          break
        }
        if (v instanceof Date) {
          total += w * 96
          break
        }
        if (Array.isArray(v)) {
          const n = v.length
          total += w * (32 + 8 * n)
          if (n <= SAMPLE) {
            for (let i = 0; i < n; i++) push(v[i], w)
          } else {
            const scale = (w * n) / SAMPLE
            for (let i = 0; i < SAMPLE; i++) push(v[Math.floor((i * n) / SAMPLE)], scale)
          }
          break
        }
        if (v instanceof Map) {
          const n = v.size
          total += w * (180 + 32 * n)
          const scale = n <= SAMPLE ? w : (w * n) / SAMPLE
          let i = 0
          for (const [key, item] of v) {
            if (i++ === SAMPLE) break
            push(key, scale)
            push(item, scale)
          }
          break
        }
        if (v instanceof Set) {
          const n = v.size
          total += w * (160 + 24 * n)
          const scale = n <= SAMPLE ? w : (w * n) / SAMPLE
          let i = 0
          for (const item of v) {
            if (i++ === SAMPLE) break
            push(item, scale)
          }
          break
        }
        object(v as Record<string, unknown>, w)
        break
      }
      default:
        // Functions and symbols: a reference, rarely in cached values.
        total += w * 32
    }
  }
  return Math.round(total)
}
