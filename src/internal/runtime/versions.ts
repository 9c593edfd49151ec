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
 * background read (`getMany`, one round trip on Redis) that never delays
 * the load.
 *
 * @internal
 */
import { Effect, Result } from "effect"
import type { EntryCodec, StoreService } from "../store.ts"
import type { Background } from "./background.ts"
import type { KeyspaceState } from "./keyspaces.ts"

// Reads presence only: the data is never decoded with this version's Schema
// (it is another version's), and nothing is reported as corrupt.
const probeCodec = (keyspace: string): EntryCodec => ({
  keyspace,
  encode: () => Result.succeed(null),
  decode: () => Result.succeed(null),
  onCorrupt: () => {}
})

export interface Versions {
  /** Starts the probe of `key`'s earlier versions in the background; at once. */
  readonly probe: (state: KeyspaceState, key: string) => Effect.Effect<void>
}

export const make = (store: StoreService, background: Background): Versions => {
  const codecs = new Map<string, EntryCodec>()
  const codecOf = (name: string) => {
    let codec = codecs.get(name)
    if (codec === undefined) {
      codec = probeCodec(name)
      codecs.set(name, codec)
    }
    return codec
  }
  return {
    probe: (state, key) =>
      Effect.suspend(() => {
        const older = state.olderNamespaces
        if (older === undefined) return Effect.void
        const part = key.slice(state.namespace.length + 1)
        const read = store
          .getMany(
            older.map((ns) => `${ns}:${part}`),
            codecOf(state.keyspace.name)
          )
          .pipe(
            Effect.map((entries) => {
              const older = entries.some((e) => e !== undefined)
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
