/**
 * The decode cache (RedisStore option `decodeCache`): the last reply read
 * for a key and the entry decoded from it. A read whose reply is the very
 * same (compared in full: the string, or the bytes) reuses that entry
 * instead of parsing JSON, validating the value against its Schema and
 * inflating it again: for a hot key that has not changed in Redis, a hit
 * costs a memory compare instead of a decode.
 *
 * Coherence is untouched: every read still fetches the key from Redis, and
 * different bytes (another write, a tombstone, another order time) decode
 * afresh. An entry whose `staleUntil` has passed reads as expired here as
 * it would from its bytes. The reused value is the same object each time
 * (as a memory-store or L1 hit is): values are immutable data.
 *
 * Bounded by entries and by the size of the replies it keeps (copies of
 * bytes, kept out of the socket's read buffers, or the strings as read,
 * counted in UTF-16 units: bytes for ASCII); eviction is CLOCK over insertion order: a hit
 * sets a bit, and an entry whose bit is set when its turn to go comes is
 * moved to the back, its bit cleared. A hit allocates nothing and relinks
 * nothing.
 *
 * @internal
 */
import type { EntryCodec, StoredEntry } from "../../CacheStore.ts"

interface Memo {
  /** The reply as read: a copy of its bytes, or the string itself. */
  readonly raw: Uint8Array | string
  readonly codec: EntryCodec
  readonly entry: StoredEntry
  referenced: boolean
}

/** The resolved bounds: at most `entries` entries and `maxBytes` bytes of raw copies. */
export interface Bounds {
  readonly entries: number
  readonly maxBytes: number
}

/** Defaults: 10,000 entries, 4 MiB of raw bytes (about 3,800 entries of 1 KB). */
export const DEFAULTS: Bounds = { entries: 10_000, maxBytes: 4 * 1024 * 1024 }

export class DecodeCache {
  private readonly memos = new Map<string, Memo>()
  private bytes = 0

  private readonly bounds: Bounds

  constructor(bounds: Bounds) {
    this.bounds = bounds
  }

  get size(): number {
    return this.memos.size
  }

  /**
   * The entry decoded from exactly `raw` for `key` with `codec`, if
   * remembered. Strings are compared as strings: the store only remembers
   * strings that hold no U+FFFD (valid UTF-8), for which equal strings mean
   * equal bytes.
   */
  get(key: string, raw: Buffer | string, codec: EntryCodec): StoredEntry | undefined {
    const memo = this.memos.get(key)
    if (memo === undefined || memo.codec !== codec || memo.raw.length !== raw.length) return undefined
    const known = memo.raw
    if (typeof raw === "string" ? known !== raw : typeof known === "string" || !raw.equals(known)) {
      return undefined
    }
    memo.referenced = true
    return memo.entry
  }

  /**
   * The tags of the entry last decoded for `key`, if remembered (not marked
   * as used): a read of the key can ask for their records in the same tick.
   */
  tagsOf(key: string): ReadonlyArray<string> | undefined {
    return this.memos.get(key)?.entry.tags
  }

  /** Remembers `entry` as decoded from `raw` (bytes are copied: they may be a slice of a socket buffer). */
  set(key: string, raw: Buffer | string, codec: EntryCodec, entry: StoredEntry): void {
    this.delete(key)
    // One entry may not take more than an eighth of the bytes: a few large
    // values would otherwise flush everything else.
    if (raw.length > this.bounds.maxBytes / 8) return
    let kept: Uint8Array | string = raw as string
    if (typeof raw !== "string") {
      // A plain Uint8Array, not a Buffer: memos live long, and long-lived
      // Buffers (one allocation site for all) make V8 tenure the reply
      // slices of every read too.
      const copy = new Uint8Array(raw.length)
      copy.set(raw)
      kept = copy
    }
    this.memos.set(key, { raw: kept, codec, entry, referenced: false })
    this.bytes += raw.length
    this.evict()
  }

  delete(key: string): void {
    const memo = this.memos.get(key)
    if (memo === undefined) return
    this.memos.delete(key)
    this.bytes -= memo.raw.length
  }

  private evict(): void {
    // Each pass over a referenced memo clears its bit, so this ends within
    // two turns of the map.
    while (this.memos.size > this.bounds.entries || this.bytes > this.bounds.maxBytes) {
      const first = this.memos.entries().next()
      if (first.done === true) return
      const [key, memo] = first.value
      this.memos.delete(key)
      if (memo.referenced) {
        memo.referenced = false
        this.memos.set(key, memo)
      } else this.bytes -= memo.raw.length
    }
  }
}
