/**
 * Tags: an invalidation records the tag's time in the store; an entry is gone
 * when one of its tags was invalidated at or after its creation (invalidation
 * wins a tie within one millisecond). No per-tag key sets, so Redis Cluster works.
 *
 * @internal
 */
import { type Clock, Effect } from "effect"
import type { CacheStoreError } from "../../CacheError.ts"
import { escapePart } from "../keyEncoding.ts"
import type { StoredEntry, StoreService } from "../store.ts"

export interface Tags {
  /** How long a tag invalidation is remembered (ms); entries with tags live at most this long. */
  readonly retention: number
  /**
   * Records a tag invalidation now, remembered for `retainMillis` (default
   * `retention`): no shorter than the longest life of an entry that can
   * carry the tag.
   */
  readonly invalidate: (tag: string, retainMillis?: number) => Effect.Effect<void, CacheStoreError>
  /**
   * Synchronous check for stores in the process, else `null`: whether no tag
   * of `entry` invalidates it. `now`: the hit's clock reading, passed on to
   * the store's tag-time read (no second clock read per tag).
   */
  readonly validSync: ((entry: StoredEntry, now?: number) => boolean) | null
  /** Whether no tag of `entry` invalidates it, asking the store. */
  readonly valid: (entry: StoredEntry) => Effect.Effect<boolean, CacheStoreError>
}

export const make = (store: StoreService, clock: Clock.Clock, retention: number): Tags => {
  const getTagTimeUnsafe = store.getTagTimeUnsafe
  return {
    retention,
    invalidate: (tag, retainMillis) =>
      Effect.suspend(() =>
        // Loads in flight may have read data the invalidation covers. Their
        // entries carry createdAt = load start <= now, so the tag check
        // already rejects them; nothing else to do here.
        store.setTagTime(escapePart(tag), clock.currentTimeMillisUnsafe(), retainMillis ?? retention)
      ),
    validSync:
      getTagTimeUnsafe === undefined
        ? null
        : (entry, now) => {
            for (const tag of entry.tags) {
              const time = getTagTimeUnsafe(tag, now)
              if (time !== undefined && time >= (entry.order ?? entry.createdAt)) return false
            }
            return true
          },
    valid: (entry) =>
      Effect.map(store.getTagTimes(entry.tags), (times) => {
        // Ordered on the store's clock when the store orders writes.
        const order = entry.order ?? entry.createdAt
        return !times.some((t) => t !== undefined && t >= order)
      })
  }
}
