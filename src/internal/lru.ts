/**
 * The one LRU: a `Map` from key to node, nodes threaded on a doubly linked
 * list (most recently used at the head), bounded by entries and optionally bytes.
 *
 * Nodes are the caller's own objects (the memory store's node *is* its entry;
 * the TieredStore L1's holds the entry it was given), so the LRU adds no
 * wrapper per entry. Expiry is the caller's: it removes what it finds expired.
 *
 * @internal
 */

/** What the LRU needs of a node. */
export interface Linked<N> {
  readonly key: string
  /** Bytes counted against `maxBytes` (0 when there is no byte budget). */
  readonly size: number
  prev: N | undefined
  next: N | undefined
}

/** Removes every node of `cache` whose key starts with `prefix`; returns how many. */
export const removePrefix = <N>(
  cache: { readonly map: Map<string, N>; remove(node: N): void },
  prefix: string
): number => {
  let count = 0
  for (const [key, node] of cache.map) {
    if (key.startsWith(prefix)) {
      cache.remove(node)
      count++
    }
  }
  return count
}

export class Lru<N extends Linked<N>> {
  readonly map = new Map<string, N>()
  readonly capacity: number
  readonly maxBytes: number | undefined
  head: N | undefined = undefined
  tail: N | undefined = undefined
  bytes = 0
  evictions = 0

  constructor(capacity: number, maxBytes: number | undefined) {
    this.capacity = capacity
    this.maxBytes = maxBytes
  }

  /** Marks `node` most recently used. */
  touch(node: N): void {
    if (node !== this.head) {
      this.unlink(node)
      this.pushHead(node)
    }
  }

  /**
   * Adds `node` (no node of its key may be present) as the most recently
   * used, then evicts the least recently used until within bounds, never
   * `node` itself.
   */
  add(node: N): void {
    this.map.set(node.key, node)
    this.pushHead(node)
    this.bytes += node.size
    const maxBytes = this.maxBytes
    while (this.map.size > this.capacity || (maxBytes !== undefined && this.bytes > maxBytes)) {
      const lru = this.tail
      if (lru === undefined || lru === node) break
      this.remove(lru)
      this.evictions++
    }
  }

  remove(node: N): void {
    this.unlink(node)
    this.map.delete(node.key)
    this.bytes -= node.size
  }

  /** Removes every node whose key starts with `prefix`; returns how many. */
  removePrefix(prefix: string): number {
    return removePrefix(this, prefix)
  }

  clear(): void {
    this.map.clear()
    this.head = this.tail = undefined
    this.bytes = 0
  }

  private unlink(node: N): void {
    if (node.prev) node.prev.next = node.next
    else this.head = node.next
    if (node.next) node.next.prev = node.prev
    else this.tail = node.prev
    node.prev = node.next = undefined
  }

  private pushHead(node: N): void {
    node.next = this.head
    if (this.head) this.head.prev = node
    this.head = node
    if (!this.tail) this.tail = node
  }
}
