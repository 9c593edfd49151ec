/**
 * The budget of one HTTP cache middleware: the responses it stored from this
 * process, least recently used first, with their sizes.
 *
 * @internal
 */
import type { ResponseEntry } from "./entry.ts"

// ---------------------------------------------------------------------------
// The budget
// ---------------------------------------------------------------------------

/** The bytes an entry holds, roughly: body, headers, and a fixed overhead for the rest. */
export const entrySize = (entry: ResponseEntry): number => {
  let size = entry.body.length + 256 + entry.etag.length + entry.path.length
  for (const [name, value] of entry.headers) size += name.length + value.length + 16
  return size
}

/**
 * The responses one middleware stored from this process, least recently
 * used first. HTTP entries share the store with data: without their own
 * bound, distinct URLs (`?cb=1`, `?cb=2`, ...) would fill memory and evict
 * data entries. Past `maxEntries` or `maxBytes` the least recently used are
 * deleted from the store.
 */
export class Budget {
  readonly sizes = new Map<string, number>()
  bytes = 0
  readonly maxEntries: number
  readonly maxBytes: number
  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
  }
  touch(key: string): void {
    const size = this.sizes.get(key)
    if (size === undefined) return
    this.sizes.delete(key)
    this.sizes.set(key, size)
  }
  /** Records `key`; returns the keys to delete to stay inside the budget, if any. */
  add(key: string, size: number): Array<string> | undefined {
    const before = this.sizes.get(key)
    if (before !== undefined) {
      this.sizes.delete(key)
      this.bytes -= before
    }
    this.sizes.set(key, size)
    this.bytes += size
    let evicted: Array<string> | undefined
    while (this.sizes.size > this.maxEntries || (this.bytes > this.maxBytes && this.sizes.size > 1)) {
      const [oldest, oldSize] = this.sizes.entries().next().value as [string, number]
      if (oldest === key) break
      this.sizes.delete(oldest)
      this.bytes -= oldSize
      ;(evicted ??= []).push(oldest)
    }
    return evicted
  }
}
