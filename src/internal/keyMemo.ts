/**
 * The key memo of one-placeholder keyspaces (`Keyspace.make`'s `keyUnsafe`):
 * rendered keys by the parameter's value, so that a memory hit neither
 * renders, flattens nor hashes its key.
 *
 * @internal
 */
import { indexHashOf, rememberIndexHash } from "./lru.ts"

/**
 * Keys memoised per one-placeholder keyspace, per generation (see
 * `KeyMemo`): a generation starts at the smaller size and doubles, up to the
 * larger, while the previous one keeps answering reads; up to twice the
 * current size is held.
 */
export const KEY_MEMO_MIN = 4_096
export const KEY_MEMO_MAX = 32_768

/**
 * Rendered keys by parameter value, flat and with their index hash, in two
 * generations: a key is looked up in the current one, then in the previous
 * one (and moved up); when the current one is full it becomes the previous
 * one. A generation during which the previous one answered more reads than
 * 1/64 of its size (keys read again after a rotation: a hot set larger than
 * a generation answers about size / hot set of them) is followed by one
 * twice as large, up to `KEY_MEMO_MAX`; one during which it answered fewer
 * than 1/256 by one half as large, down to `KEY_MEMO_MIN`. A hot set up to about
 * `KEY_MEMO_MAX` keys stays memoised through rotations (the clear-when-full
 * memo this replaces re-rendered a hot set larger than itself on almost
 * every read), keys read once (a scan, a bulk load) hold at most
 * 2 x `KEY_MEMO_MIN` (half of that memo's bound), and memory stays bounded
 * at 2 x `KEY_MEMO_MAX` keys.
 */
export class KeyMemo {
  private index = new Map<string | number, number>()
  private keys: Array<string> = []
  private hashes: Array<number> = []
  private oldIndex = new Map<string | number, number>()
  private oldKeys: Array<string> = []
  private oldHashes: Array<number> = []
  /** The current generation's size. */
  private size = KEY_MEMO_MIN
  /** Reads the previous generation answered during this one. */
  private promoted = 0

  /** Keys held, in both generations (for tests). */
  get held(): number {
    return this.index.size + this.oldIndex.size
  }

  /** The memoised key of `value` (its hash handed to the store's index), else `undefined`. */
  get(value: string | number): string | undefined {
    const i = this.index.get(value)
    if (i !== undefined) {
      const k = this.keys[i]!
      rememberIndexHash(k, this.hashes[i]!)
      return k
    }
    const j = this.oldIndex.get(value)
    if (j === undefined) return undefined
    const k = this.oldKeys[j]!
    const hash = this.oldHashes[j]!
    this.promoted++
    this.put(value, k, hash)
    rememberIndexHash(k, hash)
    return k
  }

  /** Memoises `key` (flat) for `value`, with its index hash. */
  add(value: string | number, key: string): void {
    this.put(value, key, indexHashOf(key))
  }

  private put(value: string | number, key: string, hash: number): void {
    if (this.index.size >= this.size) {
      if (64 * this.promoted > this.size) this.size = Math.min(2 * this.size, KEY_MEMO_MAX)
      else if (256 * this.promoted < this.size) this.size = Math.max(this.size / 2, KEY_MEMO_MIN)
      this.promoted = 0
      this.oldIndex = this.index
      this.oldKeys = this.keys
      this.oldHashes = this.hashes
      this.index = new Map()
      this.keys = []
      this.hashes = []
    }
    const slot = this.index.size
    this.index.set(value, slot)
    this.keys[slot] = key
    this.hashes[slot] = hash
  }
}
