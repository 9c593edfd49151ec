/**
 * Writes not yet made to the source (the write-behind queue and durable
 * journals), as loads see them, and what a write given up does to the cache.
 *
 * @internal
 */
import { Cause, type Clock, Effect } from "effect"
import type { CacheStoreError } from "../../CacheError.ts"
import type { Background } from "./background.ts"
import type { PendingWrite } from "./flights.ts"
import type { KeyspaceState } from "./keyspaces.ts"
import type { Observe } from "./observe.ts"
import * as WriteBehind from "./writeBehind.ts"

export interface Pending {
  readonly writeBehind: WriteBehind.WriteBehindQueue
  /** Whether anything is queued anywhere: the load path checks it. */
  readonly isEmpty: () => boolean
  /** The newest write of `key` not yet made to the source, if any. */
  readonly lookup: (key: string) => PendingWrite | undefined
  /** Adds a source of pending writes (durable write-behind); returns its removal. */
  readonly register: (lookup: (key: string) => PendingWrite | undefined) => () => void
  /** Counts, logs and reports a write given up; invalidates its cache entry. */
  readonly reportDeadLetter: (
    state: KeyspaceState,
    letter: WriteBehind.DeadLetter,
    callback: ((letter: WriteBehind.DeadLetter) => Effect.Effect<void>) | undefined
  ) => Effect.Effect<void>
  /**
   * As `reportDeadLetter` for many letters at once (shutdown): each is
   * counted, dropped and handed to `callback`; the log has one line per
   * keyspace and reason, with the count and the first keys.
   */
  readonly reportDeadLetters: (
    letters: ReadonlyArray<readonly [KeyspaceState, WriteBehind.DeadLetter]>,
    callback: ((letter: WriteBehind.DeadLetter) => Effect.Effect<void>) | undefined
  ) => Effect.Effect<void>
}

/** Keys named in an aggregated dead-letter line. */
const LOGGED_KEYS = 5

const firstLine = (text: string): string => {
  const end = text.indexOf("\n")
  return end === -1 ? text : text.slice(0, end)
}

export interface Deps {
  readonly options: WriteBehind.Resolved
  readonly clock: Clock.Clock
  readonly background: Background
  /** Drops the cache's copy of `key` (flights and store): the source will never have it. */
  readonly drop: (state: KeyspaceState, key: string) => Effect.Effect<CacheStoreError | undefined>
  /** Dead-letter events and the flush span. */
  readonly observe: Observe
}

export const make = ({ options, clock, background, drop, observe }: Deps): Pending => {
  const lookups: Array<(key: string) => PendingWrite | undefined> = []

  const lookup = (key: string): PendingWrite | undefined => {
    const queued = writeBehind.pending(key)
    if (queued !== undefined) return queued
    for (const find of lookups) {
      const found = find(key)
      if (found !== undefined) return found
    }
    return undefined
  }

  const register = (find: (key: string) => PendingWrite | undefined) => {
    lookups.push(find)
    return () => {
      const i = lookups.indexOf(find)
      if (i !== -1) lookups.splice(i, 1)
    }
  }

  /** Counts a letter, drops its cache entry, hands it to `callback`; logs nothing. */
  const settleDeadLetter = (
    state: KeyspaceState,
    letter: WriteBehind.DeadLetter,
    callback: ((letter: WriteBehind.DeadLetter) => Effect.Effect<void>) | undefined
  ): Effect.Effect<void> =>
    Effect.gen(function* () {
      state.counters.writeBehindDeadLetters++
      if (observe.listening()) {
        observe.emit({
          _tag: "DeadLetter",
          keyspace: letter.keyspace,
          key: letter.key,
          op: letter.op,
          reason: letter.reason,
          at: clock.currentTimeMillisUnsafe()
        })
      }
      // The cache must not keep a value the source will never have
      // (unless a newer write of the key is queued). At shutdown the
      // store is not touched: removal is a no-op once closing.
      if (letter.op === "set" && lookup(letter.key) === undefined) yield* drop(state, letter.key)
      if (callback !== undefined) {
        yield* Effect.suspend(() => callback(letter)).pipe(
          Effect.catchCause((failure) =>
            Effect.logError(`cachet: onDeadLetter failed: ${firstLine(Cause.pretty(failure))}`).pipe(
              Effect.annotateLogs({ keyspace: letter.keyspace, key: letter.key })
            )
          )
        )
      }
    })

  const reportDeadLetter: Pending["reportDeadLetter"] = (state, letter, callback) =>
    Effect.andThen(
      Effect.logError(
        `cachet: write-behind gave up on ${letter.op} ${letter.key} after ${letter.attempts} attempt(s) (${letter.reason})`
      ).pipe(
        Effect.annotateLogs({ keyspace: letter.keyspace, key: letter.key, op: letter.op, reason: letter.reason }),
        Effect.annotateLogs("cause", Cause.pretty(letter.cause))
      ),
      settleDeadLetter(state, letter, callback)
    )

  // At shutdown thousands of writes may be left: one line per keyspace and
  // reason, not one multi-line error per write (issue 13: 62,000 lines).
  const reportDeadLetters: Pending["reportDeadLetters"] = (letters, callback) =>
    Effect.gen(function* () {
      const groups = new Map<string, Array<WriteBehind.DeadLetter>>()
      for (const [state, letter] of letters) {
        yield* settleDeadLetter(state, letter, callback)
        const group = `${letter.keyspace}\u0000${letter.reason}`
        const list = groups.get(group)
        if (list === undefined) groups.set(group, [letter])
        else list.push(letter)
      }
      for (const list of groups.values()) {
        const { keyspace, reason, cause } = list[0]!
        const keys = list.slice(0, LOGGED_KEYS).map((l) => l.key)
        const more = list.length > keys.length ? ` and ${list.length - keys.length} more` : ""
        const where =
          callback === undefined ? "no onDeadLetter is set: they are lost" : "each was passed to onDeadLetter"
        yield* Effect.logError(
          `cachet: write-behind gave up on ${list.length} write(s) of keyspace ${JSON.stringify(keyspace)} (${reason}): ${keys.join(", ")}${more}; ${where}`
        ).pipe(
          Effect.annotateLogs({
            keyspace,
            reason,
            count: list.length,
            keys: keys.join(","),
            onDeadLetter: callback !== undefined,
            cause: firstLine(Cause.pretty(cause))
          })
        )
      }
    })

  const writeBehind: WriteBehind.WriteBehindQueue = WriteBehind.make(options, clock, background.forkWorkerUnsafe, {
    written: (p) => {
      p.state.counters.writeBehindWrites++
    },
    flushSpan: observe.flushSpan,
    deadLetter: (p, cause, reason) => reportDeadLetter(p.state, letterOf(p, cause, reason), options.onDeadLetter),
    deadLetters: (left, reason) =>
      reportDeadLetters(
        left.map(([p, cause]) => [p.state, letterOf(p, cause, reason)] as const),
        options.onDeadLetter
      )
  })

  return {
    writeBehind,
    isEmpty: () => writeBehind.isEmpty() && lookups.length === 0,
    lookup,
    register,
    reportDeadLetter,
    reportDeadLetters
  }
}

const letterOf = (
  p: WriteBehind.Pending,
  cause: Cause.Cause<unknown>,
  reason: WriteBehind.DeadLetter["reason"]
): WriteBehind.DeadLetter => ({
  keyspace: p.state.keyspace.name,
  key: p.key,
  params: p.params,
  op: p.op,
  value: p.op === "set" ? p.value : undefined,
  attempts: p.attempts,
  reason,
  cause
})
