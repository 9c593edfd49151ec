/**
 * The invalidation journal: invalidations the store could not take (it was
 * down, paused, refusing), applied to this process's view at once and
 * replayed in order once the store answers again.
 *
 * Empty in normal operation: readers check `active` first, so the hit
 * path pays one field read (a boolean kept current by every change, not a
 * call that recomputes it). Bounded: past `capacity` operations the affected
 * keyspaces bypass the cache in this process (reads miss, nothing is
 * written) until a full resync (their keyspace cleared in the store), loudly.
 *
 * @internal
 */
import { type Clock, Effect } from "effect"
import type { CacheStoreError } from "../../CacheError.ts"
import * as Glob from "../glob.ts"
import { escapePart } from "../keyEncoding.ts"
import type { StoredEntry, StoreService } from "../store.ts"
import type { Background } from "./background.ts"
import type { KeyspaceState } from "./keyspaces.ts"
import type { Counters } from "./stats.ts"

/** One invalidation the store has not taken yet. */
export type JournalOp =
  | { readonly _tag: "Key"; readonly state: KeyspaceState; readonly key: string }
  | { readonly _tag: "Tag"; readonly tag: string; readonly retainMillis: number }
  | { readonly _tag: "Keyspace"; readonly state: KeyspaceState; readonly prefix?: string | undefined }
  | {
      /** A pattern invalidation (`Cachet.invalidatePattern`): scoped to its keyspace. */
      readonly _tag: "Pattern"
      readonly state: KeyspaceState
      readonly matcher: Glob.Matcher
    }

export interface Journal {
  /**
   * Whether anything is journalled or bypassed (the hit path checks this
   * first): a field, updated on every push and replay step.
   */
  readonly active: boolean
  /** Operations waiting for the store. */
  readonly depth: () => number
  /** Records `op`, applied to this process's view at once; starts the replay. */
  readonly push: (op: JournalOp) => Effect.Effect<void>
  /** Whether this process must not serve `entry` of `key` (a journalled invalidation covers it). */
  readonly hides: (state: KeyspaceState, key: string, entry: StoredEntry) => boolean
  /** Whether the keyspace bypasses the cache in this process (journal overflow, until resync). */
  readonly bypassed: (state: KeyspaceState) => boolean
}

export interface Deps {
  readonly store: StoreService
  readonly clock: Clock.Clock
  readonly background: Background
  readonly globalCounters: Counters
  readonly states: () => ReadonlyArray<KeyspaceState>
  readonly warn: (what: string, message: string, annotations?: Record<string, unknown>) => Effect.Effect<void>
  /** Most operations kept. */
  readonly capacity: number
  /** Time between replay attempts while the store does not answer. */
  readonly retryMillis: number
}

const increment = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
const decrement = (map: Map<string, number>, key: string) => {
  const n = (map.get(key) ?? 1) - 1
  if (n <= 0) map.delete(key)
  else map.set(key, n)
}

/** The prefix a keyspace operation clears: its namespace's, unless it names one (older versions). */
const prefixOf = (op: { readonly state: KeyspaceState; readonly prefix?: string | undefined }): string =>
  op.prefix ?? `${op.state.namespace}:`

export const make = ({
  store,
  clock,
  background,
  globalCounters,
  states,
  warn,
  capacity,
  retryMillis
}: Deps): Journal => {
  const ops: Array<JournalOp> = []
  // What the pending operations hide, counted (two invalidations of one key
  // keep it hidden until both are replayed).
  const keys = new Map<string, number>()
  const tags = new Map<string, number>()
  const prefixes = new Map<string, number>()
  // Pending pattern invalidations: few (an outage's worth), checked in order.
  const patterns: Array<{ readonly prefix: string; readonly matcher: Glob.Matcher }> = []
  // Keyspaces that overflowed: bypassed until cleared in the store. `all`:
  // a tag overflowed, which may cover any keyspace.
  const bypass = new Set<string>()
  let bypassAll = false
  let replaying = false

  // A resync clears the keyspace's current namespace (by name: states are keyed by name).
  const resyncOf = (name: string): Effect.Effect<number, CacheStoreError> => {
    const state = states().find((s) => s.keyspace.name === name)
    return store.deletePrefix(`${state?.namespace ?? name}:`)
  }

  // `active` is recomputed after every change of `ops`, `bypass` or
  // `bypassAll`, so that readers pay a field read rather than a call.
  // (`self` is the object returned below; this runs only after it exists.)
  const refresh = () => {
    self.active = ops.length !== 0 || bypass.size !== 0 || bypassAll
  }

  const countersOf = (op: JournalOp): Counters => (op._tag === "Tag" ? globalCounters : op.state.counters)

  const apply = (op: JournalOp): Effect.Effect<unknown, CacheStoreError> => {
    switch (op._tag) {
      case "Key":
        return store.delete(op.key)
      case "Tag":
        return store.setTagTime(escapePart(op.tag), clock.currentTimeMillisUnsafe(), op.retainMillis)
      case "Keyspace":
        return store.deletePrefix(prefixOf(op))
      case "Pattern": {
        const prefix = `${op.state.namespace}:`
        return store.deletePattern === undefined
          ? store.deletePrefix(prefix)
          : store.deletePattern(prefix, op.matcher.source)
      }
    }
  }

  const release = (op: JournalOp) => {
    if (op._tag === "Key") decrement(keys, op.key)
    else if (op._tag === "Tag") decrement(tags, escapePart(op.tag))
    else if (op._tag === "Pattern") {
      const i = patterns.findIndex((p) => p.matcher === op.matcher)
      if (i >= 0) patterns.splice(i, 1)
    } else decrement(prefixes, prefixOf(op))
  }

  /** One pass: every pending operation in order, then the resyncs; stops at the first failure. */
  const replayOnce: Effect.Effect<boolean> = Effect.gen(function* () {
    while (ops.length > 0) {
      const op = ops[0]!
      const ok = yield* Effect.match(apply(op), { onFailure: () => false, onSuccess: () => true })
      if (!ok) return false
      ops.shift()
      release(op)
      refresh()
    }
    const resync = bypassAll ? states().map((s) => s.keyspace.name) : [...bypass]
    for (const name of resync) {
      const ok = yield* Effect.match(resyncOf(name), { onFailure: () => false, onSuccess: () => true })
      if (!ok) return false
      bypass.delete(name)
      refresh()
    }
    bypassAll = false
    refresh()
    return true
  })

  // Runs while something is pending, in the layer's background; ends when
  // the journal is empty (costs nothing otherwise).
  const replay: Effect.Effect<void> = Effect.gen(function* () {
    while (!(yield* replayOnce)) yield* Effect.sleep(retryMillis)
  }).pipe(
    Effect.ensuring(
      Effect.sync(() => {
        replaying = false
      })
    )
  )

  const push: Journal["push"] = (op) =>
    Effect.suspend(() => {
      const counters = countersOf(op)
      counters.journaled++
      if (ops.length >= capacity) {
        counters.journalOverflows++
        if (op._tag === "Tag") bypassAll = true
        else bypass.add(op.state.keyspace.name)
        refresh()
        return warn(
          "journal:overflow",
          `cachet: the invalidation journal is full (${capacity} operations while the store does not answer); ${
            op._tag === "Tag" ? "every keyspace" : `keyspace ${op.state.keyspace.name}`
          } bypasses the cache in this process until it is cleared in the store`,
          { op: op._tag }
        ).pipe(Effect.andThen(start))
      }
      ops.push(op)
      refresh()
      if (op._tag === "Key") increment(keys, op.key)
      else if (op._tag === "Tag") increment(tags, escapePart(op.tag))
      else if (op._tag === "Pattern") {
        patterns.push({ prefix: `${op.state.namespace}:`, matcher: op.matcher })
      } else increment(prefixes, prefixOf(op))
      return Effect.andThen(
        warn(
          "journal:push",
          "cachet: the store did not take an invalidation; this process applies it now and replays it when the store answers",
          { op: op._tag, depth: ops.length }
        ),
        start
      )
    })

  const start = Effect.suspend(() => {
    if (replaying) return Effect.void
    replaying = true
    return Effect.asVoid(background.fork(replay, true))
  })

  const hides: Journal["hides"] = (state, key, entry) => {
    if (bypassAll || bypass.has(state.keyspace.name)) return true
    if (keys.has(key)) return true
    if (prefixes.size !== 0 && prefixes.has(`${state.namespace}:`)) return true
    if (patterns.length !== 0) {
      for (const p of patterns) {
        if (key.startsWith(p.prefix) && Glob.covers(p.matcher, key.slice(p.prefix.length))) return true
      }
    }
    if (tags.size !== 0) for (const tag of entry.tags) if (tags.has(tag)) return true
    return false
  }

  const self: { -readonly [K in keyof Journal]: Journal[K] } = {
    active: false,
    depth: () => ops.length,
    push,
    hides,
    bypassed: (state) => bypassAll || bypass.has(state.keyspace.name)
  }
  return self
}
