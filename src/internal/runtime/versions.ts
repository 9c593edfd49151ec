/**
 * Keyspace versions: on a miss of a keyspace at version 2 or more, one read
 * of the same key under its earlier versions' namespaces tells a miss that a
 * deploy caused (the Schema changed, so the version did) from a cold one:
 * counted as `versionMisses`.
 *
 * Why a probe on a miss rather than a version field in the envelope: the
 * version is in the namespace (`user@2:<key>`), so an entry of another
 * version is never read, never decoded with the wrong Schema, and never
 * deleted as corrupt (instances still on the old version keep reading it
 * during a rolling deploy). A hit costs nothing; a miss forks one
 * background presence check (`CacheStore.has`: one MGET on Redis, nothing
 * decoded, nothing copied into a TieredStore's L1) that never delays the
 * load. A store without `has` leaves misses unclassified.
 *
 * @internal
 */
import { Effect } from "effect"
import type { StoreService } from "../store.ts"
import type { Background } from "./background.ts"
import type { KeyspaceState } from "./keyspaces.ts"

export interface Versions {
  /** Starts the probe of `key`'s earlier versions in the background; at once. */
  readonly probe: (state: KeyspaceState, key: string) => Effect.Effect<void>
}

export const make = (store: StoreService, background: Background): Versions => {
  const has = store.has
  return {
    probe: (state, key) =>
      Effect.suspend(() => {
        const older = state.olderNamespaces
        if (older === undefined || has === undefined) return Effect.void
        const part = key.slice(state.namespace.length + 1)
        const read = has(older.map((ns) => `${ns}:${part}`)).pipe(
          Effect.map((present) => {
            const older = present.some(Boolean)
            if (older) state.counters.versionMisses++
            return older
          }),
          // A store that cannot answer: the miss is not classified.
          Effect.ignore
        )
        return Effect.asVoid(background.fork(read, true))
      })
  }
}
