/**
 * RedisStore's last-known-good fallback (the `fallback` option): a small
 * bounded copy, in the process, of the entries this store read recently,
 * answered only while the store is failing.
 *
 * - The copy is an L1 (`l1.ts`: the memory store's eviction, entries kept
 *   until their `staleUntil`, tag times, and the guard that keeps a read in
 *   flight during an invalidation from putting what it read back).
 * - A successful read refreshes the copy (an absent key is dropped from it);
 *   writes, deletes and keyspace clears drop the keys they touch before they
 *   are sent, whatever their outcome. Tag times read from Redis are kept, and
 *   tag invalidations made here are recorded before they are sent.
 * - A read that fails with `Timeout`, `Unavailable` or `CircuitOpen` is
 *   answered from the copy when it holds the entry (until its `staleUntil`:
 *   the runtime then serves it as fresh or stale by its own timeline), and
 *   counted in `fallbackHits`. `Protocol` errors are not outages: they fail
 *   as before. A read the copy cannot answer fails as before (counted as a
 *   store error by the runtime); in a `getMany`, keys it cannot answer read as
 *   misses and are counted in `fallbackMisses`. Tag times are answered only
 *   when every tag asked is known.
 *
 * Off, nothing of this exists: the store is returned unwrapped.
 *
 * @internal
 */
import type { Clock } from "effect"
import { Effect } from "effect"
import type { CacheStoreError } from "../../CacheError.ts"
import * as Eviction from "../../internal/eviction.ts"
import { checkPositive, positiveInt } from "../../internal/numbers.ts"
import type { MemoryOptions, StoredEntry, StoreInfo, StoreService } from "../../internal/store.ts"
import * as L1 from "./l1.ts"

/** The copy's options from RedisStore's `fallback` (validated; a bad one throws, naming it), or `undefined` when off. */
export const resolve = (option: Omit<MemoryOptions, "maxTags"> | true | undefined): MemoryOptions | undefined => {
  if (option === undefined) return undefined
  const options = option === true ? {} : option
  positiveInt("RedisStore", "fallback.capacity", options.capacity, 1)
  checkPositive("RedisStore", "fallback.maxBytes", options.maxBytes)
  Eviction.validate("RedisStore", "fallback.", options)
  return { ...options, capacity: options.capacity ?? 1_000 }
}

/** Counters of the copy. */
export interface FallbackCounters {
  hits: number
  misses: number
}

/** The reasons that mean the store is failing (not a bad reply). */
const isOutage = (error: CacheStoreError): boolean => error.reason !== "Protocol"

/** Wraps `store` with a last-known-good copy of `options` (an L1's options). */
export const wrap = (store: StoreService, options: MemoryOptions, clock: Clock.Clock): StoreService => {
  const copy = L1.make(options, Number.POSITIVE_INFINITY)
  const counters: FallbackCounters = { hits: 0, misses: 0 }
  const now = () => clock.currentTimeMillisUnsafe()

  const forget = (key: string) => {
    copy.touch(key)
    copy.delete(key)
  }
  const remember = (key: string, entry: StoredEntry | undefined, mark: number, at: number) => {
    if (entry === undefined) copy.delete(key)
    else if (copy.mayBackfill(key, mark)) copy.set(key, entry, at)
  }
  const before = <A, E>(keys: () => void, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => {
      keys()
      return effect
    })

  const get: StoreService["get"] = (key, codec) =>
    Effect.suspend(() => {
      const mark = copy.mark()
      return store.get(key, codec).pipe(
        Effect.tap((entry) => Effect.sync(() => remember(key, entry, mark, now()))),
        Effect.catch((error) => {
          if (!isOutage(error)) return Effect.fail(error)
          const entry = copy.get(key, now())
          if (entry === undefined) return Effect.fail(error)
          counters.hits++
          return Effect.succeed(entry)
        })
      )
    })

  const getMany: StoreService["getMany"] = (keys, codec) =>
    Effect.suspend(() => {
      const mark = copy.mark()
      return store.getMany(keys, codec).pipe(
        Effect.tap((entries) =>
          Effect.sync(() => {
            const at = now()
            for (let i = 0; i < keys.length; i++) remember(keys[i]!, entries[i], mark, at)
          })
        ),
        Effect.catch((error) => {
          if (!isOutage(error)) return Effect.fail(error)
          const at = now()
          const entries = keys.map((key) => copy.get(key, at))
          const found = entries.filter((e) => e !== undefined).length
          if (found === 0) return Effect.fail(error)
          counters.hits += found
          counters.misses += keys.length - found
          return Effect.succeed(entries)
        })
      )
    })

  const getTagTimes: StoreService["getTagTimes"] = (tags) =>
    Effect.suspend(() => {
      const mark = copy.mark()
      return store.getTagTimes(tags).pipe(
        Effect.tap((times) =>
          Effect.sync(() => {
            if (!copy.mayCacheTags(mark)) return
            const at = now()
            for (let i = 0; i < tags.length; i++) copy.tagFetched(tags[i]!, times[i], at)
          })
        ),
        Effect.catch((error) => {
          if (!isOutage(error)) return Effect.fail(error)
          const at = now()
          const times: Array<number | undefined> = []
          for (const tag of tags) {
            const time = copy.tagTime(tag, at, true)
            if (time === null) return Effect.fail(error)
            times.push(time)
          }
          return Effect.succeed(times)
        })
      )
    })

  const info: StoreInfo = {
    get entries() {
      return copy.entries()
    },
    get bytes() {
      return copy.bytes()
    },
    get evictions() {
      return copy.evictions()
    },
    get tags() {
      return copy.tags()
    },
    get fallbackHits() {
      return counters.hits
    },
    get fallbackMisses() {
      return counters.misses
    }
  }

  const setOrdered = store.setOrdered
  return {
    ...store,
    get,
    getMany,
    getTagTimes,
    set: (key, entry, codec) => before(() => forget(key), store.set(key, entry, codec)),
    setMany: (entries, codec) =>
      before(
        () => {
          for (const [key] of entries) forget(key)
        },
        store.setMany(entries, codec)
      ),
    setOrderedMany:
      store.setOrderedMany === undefined
        ? undefined
        : (entries, codec) =>
            before(
              () => {
                for (const [key] of entries) forget(key)
              },
              store.setOrderedMany!(entries, codec)
            ),
    setOrdered:
      setOrdered === undefined
        ? undefined
        : (key, entry, codec, since, expect) => before(() => forget(key), setOrdered(key, entry, codec, since, expect)),
    delete: (key) => before(() => forget(key), store.delete(key)),
    deleteMany: (keys) =>
      before(() => {
        for (const key of keys) forget(key)
      }, store.deleteMany(keys)),
    deletePrefix: (prefix) =>
      before(() => {
        copy.touchAll()
        copy.deletePrefix(prefix)
      }, store.deletePrefix(prefix)),
    setTagTime: (tag, time, retainMillis) =>
      before(() => copy.tagInvalidated(tag, time, time + retainMillis), store.setTagTime(tag, time, retainMillis)),
    info: Effect.succeed(info)
  }
}
