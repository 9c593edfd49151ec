/**
 * Hidden keys: when the store could neither update nor delete a key, this
 * process ignores that key's entries created until then (a floor per key).
 *
 * Empty in normal operation: readers check `map.size` first, so the hit
 * path pays one size check.
 *
 * @internal
 */
import type { Clock } from "effect"
import type { StoredEntry } from "../store.ts"
import type { KeyspaceState } from "./keyspaces.ts"

/** Bound of remembered floors: past it the oldest goes (its key may then show its old entry, as on other instances). */
const MAX_FLOORS = 100_000

export interface Floors {
  /** Key -> the latest `createdAt` not to serve. Read `.size` before calling `isHidden`. */
  readonly map: Map<string, number>
  /** Whether `entry` of `key` was created by the key's floor (and the floor still matters). */
  readonly isHidden: (state: KeyspaceState, key: string, entry: StoredEntry) => boolean
  /** Hides every entry of `key` created until now; returns nothing, warns (rate-limited). */
  readonly hide: (state: KeyspaceState, key: string) => void
  /** A write or delete of `key` reached the store: its floor is no longer needed. */
  readonly clear: (key: string) => void
}

export const make = (
  clock: Clock.Clock,
  warnUnsafe: (what: string, message: string, annotations?: Record<string, unknown>) => void
): Floors => {
  const map = new Map<string, number>()
  return {
    map,
    isHidden: (state, key, entry) => {
      const floor = map.get(key)
      if (floor === undefined) return false
      // Every entry created by `floor` has expired by then: forget the floor.
      // (A sliding entry has no such bound: its floor stays until the key is
      // written or deleted, or pushed out by newer floors.)
      if (
        !state.sliding &&
        clock.currentTimeMillisUnsafe() >= floor + state.policy.ttlBound + state.policy.staleBound
      ) {
        map.delete(key)
        return false
      }
      return entry.createdAt <= floor
    },
    hide: (state, key) => {
      map.delete(key)
      map.set(key, clock.currentTimeMillisUnsafe())
      if (map.size > MAX_FLOORS) map.delete(map.keys().next().value!)
      warnUnsafe(
        `hide:${state.keyspace.name}`,
        `cachet: could neither update nor delete ${key} in the store; this process ignores its old entry, other instances may serve it until it expires`,
        { keyspace: state.keyspace.name, key }
      )
    },
    clear: (key) => {
      if (map.size !== 0) map.delete(key)
    }
  }
}
