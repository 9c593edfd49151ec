/**
 * Reads and writes of entries through the store: the timeline of an entry,
 * tag and floor checks on read, degrade/strict handling of store failures.
 *
 * @internal
 */
import { type Clock, Effect, Result, Schema } from "effect"
import { CacheEncodeError, type CacheStoreError, type CacheValueTooLarge } from "../../CacheError.ts"
import type { Keyspace } from "../../Keyspace.ts"
import { NotFresh, type StoredEntry, type StoreService } from "../store.ts"
import type { Warn } from "../warn.ts"
import type { Floors } from "./floors.ts"
import type { Journal } from "./journal.ts"
import type { KeyspaceState } from "./keyspaces.ts"
import type { Observe } from "./observe.ts"
import { lifetimes, type Policy } from "./policy.ts"
import type { Counters, StoreOp } from "./stats.ts"
import type { Tags } from "./tags.ts"

/** Entry states along the timeline. */
export const FRESH = 0
export const STALE = 1
export const GONE = 2

export type WriteError = CacheStoreError | CacheEncodeError | CacheValueTooLarge

export interface Entries {
  readonly read: (
    state: KeyspaceState,
    key: string,
    strict: boolean,
    /** Read the shared store itself (`getShared`), past copies in the process. */
    shared?: boolean
  ) => Effect.Effect<StoredEntry | undefined, CacheStoreError>
  readonly readSync: ((state: KeyspaceState, key: string, now?: number) => StoredEntry | undefined) | null
  /**
   * The memory store's hit path (`getFreshUnsafe`): the value of a fresh,
   * plain, visible entry, or `NotFresh` when the caller must `readSync`
   * (nothing was touched then).
   */
  readonly readFresh: ((key: string, now: number) => unknown) | null
  /**
   * The synchronous hit path of a store with a copy in the process in front
   * of a remote one (`getFrontUnsafe`): a fresh, visible entry, or
   * `undefined` when the caller must `read`.
   */
  readonly readFront: ((state: KeyspaceState, key: string, now: number) => StoredEntry | undefined) | null
  /**
   * Reads many entries in one store call, with the visibility rules of
   * `read` (hidden keys, tags), in degrade mode: aligned with `keys`.
   */
  readonly readMany: (
    state: KeyspaceState,
    keys: ReadonlyArray<string>
  ) => Effect.Effect<Array<StoredEntry | undefined>>
  readonly stateNow: (entry: StoredEntry) => typeof FRESH | typeof STALE | typeof GONE
  readonly write: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    value: unknown,
    createdAt: number,
    negative: boolean,
    guard?: () => boolean,
    /**
     * A load's write: the store's clock when it started (a fenced write),
     * or `null` when that could not be read (then nothing is stored).
     * Absent: an explicit write, which wins.
     */
    since?: number | null,
    /** Lifetimes to use (a call's overrides); default the keyspace's policy. */
    policy?: Policy,
    /** Told when the store refused the write (fenced). */
    onFenced?: () => void
  ) => Effect.Effect<WriteError | undefined>
  /**
   * The writes of a batch load (`Cachet.cachedMany`), each fenced by its
   * own load start and guard, in one store call where the store can
   * (`setOrderedMany`, else `setMany` for stores in the process, else one
   * ordered write per key, concurrently). Never fails; returns the first
   * store error, if any.
   */
  readonly writeMany: (
    state: KeyspaceState,
    items: ReadonlyArray<BatchWrite>,
    policy: Policy
  ) => Effect.Effect<CacheStoreError | undefined>
  /**
   * Sliding expiry: the effect that moves a fresh entry's `freshUntil` to
   * `now + ttl`, if the store still holds that entry (compare-and-set), or
   * `undefined` when there is nothing to do (less than a tenth of the ttl to
   * gain, a negative entry, a store that cannot compare-and-set).
   */
  readonly touch: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    entry: StoredEntry,
    now: number
  ) => Effect.Effect<void> | undefined
  readonly remove: (state: KeyspaceState, key: string) => Effect.Effect<CacheStoreError | undefined>
  readonly replace: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    value: unknown,
    /** The write's lifetimes (a call's overrides); default the keyspace's policy. */
    policy?: Policy
  ) => Effect.Effect<WriteError | undefined>
  readonly storeFailed: (state: KeyspaceState | undefined, op: StoreOp, error: CacheStoreError) => Effect.Effect<void>
}

/** One write of a batch load. */
export interface BatchWrite {
  readonly key: string
  readonly params: unknown
  readonly value: unknown
  readonly createdAt: number
  /** The store's clock when the load started; `null`: unknown (not stored). */
  readonly since: number | null | undefined
  /** The load's "not invalidated since I started". */
  readonly guard: () => boolean
}

export interface Deps {
  readonly store: StoreService
  readonly clock: Clock.Clock
  readonly floors: Floors
  readonly tags: Tags
  readonly journal: Journal
  readonly warn: Warn
  /** Failures outside any keyspace (tag invalidation) count in the totals. */
  readonly globalCounters: Counters
  /** Set when the layer starts closing: from then on nothing is written to the store. */
  readonly isClosed: () => boolean
  /** Events (set, delete). */
  readonly observe: Observe
}

const emptyTags: ReadonlyArray<string> = []

// Schema.is builds a guard per call: keep one per schema.
const guards = new WeakMap<object, (u: unknown) => boolean>()
/** Whether `u` satisfies `schema` (a throwing guard answers no). */
export const isOf = (schema: Keyspace<any, any, any>["value"], u: unknown): boolean => {
  let guard = guards.get(schema)
  if (guard === undefined) {
    guard = Schema.is(schema)
    guards.set(schema, guard)
  }
  try {
    return guard(u)
  } catch {
    return false
  }
}

export const make = ({
  store,
  clock,
  floors,
  tags,
  journal,
  warn,
  globalCounters,
  isClosed,
  observe
}: Deps): Entries => {
  const hidden = floors.map

  const storeFailed = (state: KeyspaceState | undefined, op: StoreOp, error: CacheStoreError) =>
    Effect.suspend(() => {
      const counters = state?.counters ?? globalCounters
      counters.storeErrors++
      counters.storeErrorsByOp[op]++
      return warn(`store:${op}:${error.reason}`, `cachet: ${error.message}; degrading to the loader`, {
        keyspace: state?.keyspace.name,
        op,
        reason: error.reason
      })
    })

  const stateNow = (entry: StoredEntry) => {
    const now = clock.currentTimeMillisUnsafe()
    return now < entry.freshUntil ? FRESH : now < entry.staleUntil ? STALE : GONE
  }

  // Whether this process hides `entry`: `hidden` is empty unless a write
  // could not reach the store, and the journal unless an invalidation could
  // not, so on the hit path these are two cheap checks.
  const hiddenHere = (state: KeyspaceState, key: string, entry: StoredEntry): boolean =>
    (hidden.size !== 0 && floors.isHidden(state, key, entry)) || (journal.active && journal.hides(state, key, entry))

  const getUnsafe = store.getUnsafe
  const setOrdered = store.setOrdered
  const validSync = tags.validSync
  // The hit path of stores in the process: no Effect step.
  const readSync =
    getUnsafe === undefined || validSync === null
      ? null
      : (state: KeyspaceState, key: string, now?: number): StoredEntry | undefined => {
          const entry = getUnsafe(key, now)
          if (entry === undefined || hiddenHere(state, key, entry)) return undefined
          if (entry.tags.length === 0) return entry
          return validSync(entry, now) ? entry : undefined
        }

  const getFreshUnsafe = store.getFreshUnsafe
  // Hidden keys and the journal need the entry: then the caller reads it.
  const readFresh =
    readSync === null || getFreshUnsafe === undefined
      ? null
      : (key: string, now: number): unknown =>
          hidden.size !== 0 || journal.active ? NotFresh : getFreshUnsafe(key, now)

  const getFrontUnsafe = store.getFrontUnsafe
  const readFront =
    getFrontUnsafe === undefined
      ? null
      : (state: KeyspaceState, key: string, now: number): StoredEntry | undefined => {
          const entry = getFrontUnsafe(key, now)
          return entry === undefined || hiddenHere(state, key, entry) ? undefined : entry
        }

  const getShared = store.getShared
  const read = (
    state: KeyspaceState,
    key: string,
    strict: boolean,
    shared?: boolean
  ): Effect.Effect<StoredEntry | undefined, CacheStoreError> => {
    const fromShared = shared === true && getShared !== undefined
    if (readSync !== null && !fromShared) return Effect.sync(() => readSync(state, key))
    // One step after the store's answer (not a `catch` then a `flatMap`).
    return Effect.matchEffect(fromShared ? getShared(key, state.codec) : store.get(key, state.codec), {
      onFailure: (error) => degrade(state, "get", strict, error),
      onSuccess: (entry): Effect.Effect<StoredEntry | undefined, CacheStoreError> => {
        if (entry === undefined) return Effect.undefined
        if (hiddenHere(state, key, entry)) return Effect.undefined
        if (entry.tags.length === 0) return Effect.succeed(entry)
        return Effect.matchEffect(tags.valid(entry), {
          // Unverifiable tags: read as a miss rather than risk serving an
          // invalidated entry.
          onFailure: (error) => degrade(state, "tags", strict, error),
          onSuccess: (valid) => (valid ? Effect.succeed(entry) : Effect.undefined)
        })
      }
    })
  }

  /** A failed store read: the caller's error when strict, else counted and read as a miss. */
  const degrade = (
    state: KeyspaceState,
    op: StoreOp,
    strict: boolean,
    error: CacheStoreError
  ): Effect.Effect<undefined, CacheStoreError> =>
    strict ? Effect.fail(error) : Effect.as(storeFailed(state, op, error), undefined)

  const readMany: Entries["readMany"] = (state, keys) =>
    Effect.suspend(() => {
      if (keys.length === 0) return Effect.succeed([])
      return store.getMany(keys, state.codec).pipe(
        Effect.catch((error) =>
          Effect.as(
            storeFailed(state, "get", error),
            keys.map(() => undefined)
          )
        ),
        Effect.flatMap((entries) => {
          const visible = entries.map((entry, i) =>
            entry === undefined || hiddenHere(state, keys[i]!, entry) ? undefined : entry
          )
          const tagged = visible.filter((e): e is StoredEntry => e !== undefined && e.tags.length > 0)
          if (tagged.length === 0) return Effect.succeed(visible)
          const names = [...new Set(tagged.flatMap((e) => e.tags))]
          return store.getTagTimes(names).pipe(
            Effect.map((times) => {
              const timeOf = new Map(names.map((tag, i) => [tag, times[i]]))
              return visible.map((entry) => {
                if (entry === undefined || entry.tags.length === 0) return entry
                const order = entry.order ?? entry.createdAt
                return entry.tags.every((tag) => {
                  const time = timeOf.get(tag)
                  return time === undefined || time < order
                })
                  ? entry
                  : undefined
              })
            }),
            // Tags that cannot be checked: those entries read as misses.
            Effect.catch((error) =>
              Effect.as(
                storeFailed(state, "tags", error),
                visible.map((e) => (e === undefined || e.tags.length > 0 ? undefined : e))
              )
            )
          )
        })
      )
    })

  /**
   * The entry to store for `value`, or the error that refuses it (after
   * counting it). Shared by `write` and `writeMany`.
   */
  const entryOf = (
    state: KeyspaceState,
    key: string,
    params: unknown,
    value: unknown,
    createdAt: number,
    negative: boolean,
    policy: Policy
  ): StoredEntry | CacheEncodeError => {
    const ks = state.keyspace
    let reason = ""
    // One Schema check decides; a built instance (below) counts as valid.
    let valid = negative ? ks.negative?.error !== undefined && isOf(ks.negative.error, value) : ks.is(value)
    if (!negative && !valid) {
      // A loader's plain object for a Schema.Class value (what SQL clients
      // return) type-checks but is not an instance: build the instance from
      // it as from the encoded side, rather than refuse it.
      const built = ks.decode(value, key)
      if (Result.isSuccess(built) && ks.is(built.success)) {
        value = built.success
        valid = true
      } else if (Result.isFailure(built)) reason = `: ${built.failure.message}`
    }
    if (!valid) {
      state.counters.encodeErrors++
      return new CacheEncodeError({
        keyspace: ks.name,
        message: `${negative ? "error" : "value"} does not satisfy the keyspace Schema${reason}; not stored`
      })
    }
    let entryTags: ReadonlyArray<string> = emptyTags
    let freshUntil: number
    let staleUntil: number
    if (negative) {
      freshUntil = staleUntil = createdAt + ks.negative!.ttl
    } else {
      // Static lifetimes are two additions; a ttl function runs once here.
      let ttl = policy.ttl
      let staleFor = policy.staleFor
      if (policy.ttlOf !== undefined || policy.staleForOf !== undefined) {
        const life = lifetimes(policy, value, params)
        if (typeof life === "string") {
          state.counters.encodeErrors++
          return new CacheEncodeError({ keyspace: ks.name, message: `${life}; not stored` })
        }
        ttl = life.ttl
        staleFor = life.staleFor
      }
      freshUntil = createdAt + ttl
      staleUntil = freshUntil + staleFor
      if (ks.tagsOf !== undefined) {
        try {
          entryTags = ks.tagsOf(params, value)
        } catch (cause) {
          state.counters.encodeErrors++
          return new CacheEncodeError({ keyspace: ks.name, message: `tags function threw: ${String(cause)}` })
        }
        if (entryTags.length > 0) {
          // Entries with tags never outlive the tag records that could
          // invalidate them.
          staleUntil = Math.min(staleUntil, createdAt + tags.retention)
          freshUntil = Math.min(freshUntil, staleUntil)
        }
      }
    }
    return negative
      ? { value, createdAt, freshUntil, staleUntil, tags: entryTags, negative: true }
      : { value, createdAt, freshUntil, staleUntil, tags: entryTags }
  }

  const refused = (state: KeyspaceState, error: CacheEncodeError) =>
    Effect.as(
      warn(`encode:${state.keyspace.name}`, `cachet: ${error.message}`, { keyspace: state.keyspace.name }),
      error
    )

  const write: Entries["write"] = (state, key, params, value, createdAt, negative, guard, since, policy, onFenced) =>
    Effect.suspend((): Effect.Effect<WriteError | undefined> => {
      // Nothing is written to the store once the layer is closing. The
      // guard (a load's "not invalidated since I started") is checked here,
      // in the same synchronous step that issues the store write, so an
      // invalidation or Cachet.set cannot slip in between check and write.
      if (isClosed()) return Effect.succeed(undefined)
      if (guard !== undefined && !guard()) {
        onFenced?.()
        return Effect.succeed(undefined)
      }
      // A keyspace bypassed after a journal overflow stores nothing until resynced.
      if (journal.active && journal.bypassed(state)) return Effect.succeed(undefined)
      // A load whose start could not be ordered on the store's clock: its
      // result is not stored (it could undo a write it cannot be ordered against).
      if (since === null && setOrdered !== undefined) return Effect.succeed(undefined)
      const ks = state.keyspace
      const entry = entryOf(state, key, params, value, createdAt, negative, policy ?? state.policy)
      if (entry instanceof CacheEncodeError) return refused(state, entry)
      // A store that orders writes on its own clock gets the load's age, so
      // that it can refuse a write that would undo a newer write or
      // invalidation from any process (explicit writes pass no age: they win).
      const written: Effect.Effect<boolean, WriteError> =
        setOrdered === undefined
          ? Effect.as(store.set(key, entry, state.codec), true)
          : Effect.map(setOrdered(key, entry, state.codec, since ?? undefined), (order) => order !== undefined)
      return written.pipe(
        Effect.matchEffect({
          onSuccess: (stored) => {
            if (!stored) {
              state.counters.fencedWrites++
              onFenced?.()
              return Effect.succeed(undefined)
            }
            state.counters.sets++
            floors.clear(key)
            observe.emitKey("Set", state, key)
            return Effect.succeed(undefined)
          },
          onFailure: (error): Effect.Effect<WriteError> => {
            if (error._tag === "CacheStoreError") return Effect.as(storeFailed(state, "set", error), error)
            state.counters.encodeErrors++
            return Effect.as(
              warn(`encode:${ks.name}`, `cachet: not stored: ${error.message}`, { keyspace: ks.name }),
              error
            )
          }
        })
      )
    })

  const setOrderedMany = store.setOrderedMany

  const writeMany: Entries["writeMany"] = (state, items, policy) =>
    Effect.suspend((): Effect.Effect<CacheStoreError | undefined> => {
      if (isClosed() || items.length === 0) return Effect.undefined
      if (journal.active && journal.bypassed(state)) return Effect.undefined
      const batch: Array<readonly [key: string, entry: StoredEntry, since: number | undefined]> = []
      let refusal: CacheEncodeError | undefined
      // Every guard is checked in this synchronous step, which also issues
      // the store call (see `write`).
      for (const item of items) {
        if (!item.guard()) continue
        if (item.since === null && setOrdered !== undefined) continue
        const entry = entryOf(state, item.key, item.params, item.value, item.createdAt, false, policy)
        if (entry instanceof CacheEncodeError) refusal ??= entry
        else batch.push([item.key, entry, item.since ?? undefined])
      }
      const warned = refusal === undefined ? Effect.undefined : Effect.asVoid(refused(state, refusal))
      if (batch.length === 0) return Effect.as(warned, undefined)
      const codec = state.codec
      const written: Effect.Effect<ReadonlyArray<boolean>, WriteError> = setOrderedMany !== undefined
        ? Effect.map(setOrderedMany(batch, codec), (orders) => orders.map((order) => order !== undefined))
        : setOrdered !== undefined
          ? Effect.forEach(
              batch,
              ([key, entry, since]) => Effect.map(setOrdered(key, entry, codec, since), (order) => order !== undefined),
              { concurrency: "unbounded" }
            )
          : Effect.as(
              store.setMany(
                batch.map(([key, entry]) => [key, entry] as const),
                codec
              ),
              batch.map(() => true)
            )
      return written.pipe(
        Effect.matchEffect({
          onSuccess: (stored) => {
            stored.forEach((ok, i) => {
              if (ok) {
                state.counters.sets++
                floors.clear(batch[i]![0])
              } else state.counters.fencedWrites++
            })
            return Effect.as(warned, undefined)
          },
          onFailure: (error): Effect.Effect<CacheStoreError | undefined> => {
            if (error._tag === "CacheStoreError") return Effect.as(storeFailed(state, "set", error), error)
            state.counters.encodeErrors++
            return Effect.as(
              warn(`encode:${state.keyspace.name}`, `cachet: not stored: ${error.message}`, {
                keyspace: state.keyspace.name
              }),
              undefined
            )
          }
        })
      )
    })

  const touch: Entries["touch"] = (state, key, params, entry, now) => {
    if (entry.negative === true) return undefined
    const policy = state.policy
    let ttl = policy.ttl
    if (policy.ttlOf !== undefined) {
      const life = lifetimes(policy, entry.value, params)
      if (typeof life === "string") return undefined
      ttl = life.ttl
    }
    let freshUntil = now + ttl
    // At most ten writes per ttl of a key read steadily: on a remote store
    // each is a round trip.
    if (freshUntil - entry.freshUntil < ttl / 10) return undefined
    let staleUntil = freshUntil + (entry.staleUntil - entry.freshUntil)
    if (entry.tags.length > 0) {
      staleUntil = Math.min(staleUntil, entry.createdAt + tags.retention)
      freshUntil = Math.min(freshUntil, staleUntil)
    }
    if (freshUntil <= entry.freshUntil) return undefined
    // Field by field, not a spread: a store's entry may keep its fields
    // behind getters (the memory store's nodes do).
    const next: StoredEntry = {
      value: entry.value,
      createdAt: entry.createdAt,
      freshUntil,
      staleUntil,
      tags: entry.tags,
      ...(entry.negative === undefined ? {} : { negative: entry.negative }),
      ...(entry.order === undefined ? {} : { order: entry.order })
    }
    const failed = (error: WriteError) =>
      error._tag === "CacheStoreError" ? storeFailed(state, "set", error) : Effect.void
    if (setOrdered !== undefined) {
      // Compare-and-set on the store: only if the key still holds the entry
      // ordered at `entry.order` (never over a newer write or a tombstone).
      if (entry.order === undefined) return undefined
      const order = entry.order
      return Effect.suspend(() =>
        isClosed()
          ? Effect.void
          : Effect.asVoid(setOrdered(key, next, state.codec, undefined, order)).pipe(Effect.catch(failed))
      )
    }
    if (getUnsafe === undefined) return undefined
    // A store in the process: the compare and the set in one synchronous step.
    return Effect.suspend(() => {
      if (isClosed()) return Effect.void
      const current = getUnsafe(key)
      if (
        current === undefined ||
        current.createdAt !== entry.createdAt ||
        current.freshUntil !== entry.freshUntil ||
        current.value !== entry.value
      ) {
        return Effect.void
      }
      return store.set(key, next, state.codec).pipe(Effect.catch(failed))
    })
  }

  const remove = (state: KeyspaceState, key: string): Effect.Effect<CacheStoreError | undefined> =>
    Effect.suspend(() =>
      isClosed()
        ? Effect.undefined
        : store.delete(key).pipe(
            Effect.matchEffect({
              onSuccess: (existed) => {
                if (existed) {
                  state.counters.deletes++
                  observe.emitKey("Delete", state, key)
                }
                floors.clear(key)
                return Effect.undefined
              },
              onFailure: (error) => Effect.as(storeFailed(state, "delete", error), error)
            })
          )
    )

  const replace: Entries["replace"] = (state, key, params, value, policy) =>
    Effect.flatMap(
      write(state, key, params, value, clock.currentTimeMillisUnsafe(), false, undefined, undefined, policy),
      (error) => {
        if (error === undefined) return Effect.undefined
        // The source has the new value: the old entry must not outlive it.
        return Effect.map(remove(state, key), (removeError) => {
          if (removeError !== undefined) floors.hide(state, key)
          return error
        })
      }
    )

  return {
    read,
    readSync,
    readFresh,
    readFront,
    readMany,
    stateNow,
    write,
    writeMany,
    touch,
    remove,
    replace,
    storeFailed
  }
}
