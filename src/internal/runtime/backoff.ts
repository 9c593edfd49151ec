/**
 * Failure backoff: keys whose loader failed while a stale value answered,
 * and until when their loader rests. Bounded: past `MAX_KEYS` the oldest
 * rest ends early (its key's loader may run again, nothing is served wrong).
 *
 * @internal
 */
import type { Clock } from "effect"

const MAX_KEYS = 10_000

export interface Backoff {
  /** Whether `key`'s loader rests now. */
  readonly resting: (key: string) => boolean
  /** Rests `key`'s loader for `millis` from now. */
  readonly rest: (key: string, millis: number) => void
}

export const make = (clock: Clock.Clock): Backoff => {
  const until = new Map<string, number>()
  return {
    resting: (key) => {
      if (until.size === 0) return false
      const end = until.get(key)
      if (end === undefined) return false
      if (clock.currentTimeMillisUnsafe() < end) return true
      until.delete(key)
      return false
    },
    rest: (key, millis) => {
      const now = clock.currentTimeMillisUnsafe()
      until.delete(key)
      until.set(key, now + millis)
      // Amortised sweep of ended rests at the front; then the bound.
      for (const [oldest, end] of until) {
        if (end <= now || until.size > MAX_KEYS) until.delete(oldest)
        else break
      }
    }
  }
}
