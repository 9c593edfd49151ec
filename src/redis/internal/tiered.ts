/**
 * The tiered store: an L1 in the process over any L2 store, kept coherent
 * across processes by an optional bus. Public docs live in `TieredStore.ts`.
 *
 * Order of operations (each chosen so that no L1 keeps a value older than
 * the L2's for longer than the bus takes to say so):
 *
 * - read: L1; on a miss, L2, then backfill the L1, unless the key was
 *   invalidated while the L2 read was in flight (see `l1.ts`).
 * - write: L2, then the L1 and a `Set` message. If the L2 fails, the value
 *   is kept in this process's L1 only and *nothing is published* (other
 *   instances would drop their copy only to read the old value, or nothing,
 *   from the L2); the failure is returned.
 * - delete (keys, prefix, tag): the L1 first, then the L2, then the L1 again
 *   and a message, *whether or not the L2 failed*: every L1 forgets the key;
 *   the failure is returned.
 *
 * @internal
 */
import { Clock, Effect, type Scope } from "effect"
import type { CacheStoreError } from "../../CacheError.ts"
import type { CacheStore, MemoryOptions, StoredEntry, StoreInfo } from "../../CacheStore.ts"
import * as Glob from "../../internal/glob.ts"
import type { BusHealth, StoreEvent } from "../../internal/store.ts"
import type { BusService, BusStats, Message } from "./bus.ts"
import * as L1 from "./l1.ts"
import type { LeaseStats } from "./lease.ts"

/** Counters of a tiered store. */
export interface TieredStats {
  /** Reads answered by the L1. */
  readonly l1Hits: number
  /** Reads the L1 could not answer (then asked of the L2). */
  readonly l1Misses: number
  /** L1 misses the L2 answered. */
  readonly l2Hits: number
  /** L1 misses the L2 did not have either. */
  readonly l2Misses: number
  /** Backfills refused because the key was invalidated during the L2 read. */
  readonly backfillsSkipped: number
  /** Keys dropped from the L1 on a bus message. */
  readonly remoteInvalidations: number
  /** Times the whole L1 was dropped (bus subscription, gap, clear message). */
  readonly l1Clears: number
  readonly l1Entries: number
  readonly l1Evictions: number
  /** The bus's counters, when the bus is on. */
  readonly bus: BusStats | undefined
  /** The lease's counters, when this store provides the lease. */
  readonly lease: LeaseStats | undefined
}

/** The `Tiered` service: stats and an explicit L1 clear. */
export interface TieredService {
  readonly stats: Effect.Effect<TieredStats>
  readonly clearL1: Effect.Effect<void>
}

/** Resolved options. */
export interface Resolved {
  readonly l1: MemoryOptions | undefined
  readonly l1MaxTtl: number
}

const later = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b)

/** Builds the tiered store over `l2` in the current scope (the bus listener lives as long). */
export const make = (
  options: Resolved,
  l2: CacheStore["Service"],
  bus: BusService | undefined,
  leaseStats: (() => LeaseStats) | undefined
): Effect.Effect<{ readonly store: CacheStore["Service"]; readonly tiered: TieredService }, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const l1 = L1.make(options.l1, options.l1MaxTtl)
    const c = {
      l1Hits: 0,
      l1Misses: 0,
      l2Hits: 0,
      l2Misses: 0,
      backfillsSkipped: 0,
      remoteInvalidations: 0,
      l1Clears: 0
    }

    const publish = (message: Message): Effect.Effect<void> => (bus === undefined ? Effect.void : bus.publish(message))

    const reset = () => {
      l1.clear()
      l1.touchAll()
      c.l1Clears++
    }

    // Bus resets, for `Cachet.health` (the last one) and `Cachet.events`.
    let lastReset: BusHealth["lastReset"]
    const listeners = new Set<(event: StoreEvent) => void>()
    const busReset = (reason: "subscribed" | "gap") => {
      reset()
      lastReset = { at: now(), reason }
      for (const listener of listeners) listener({ _tag: "BusReset", reason })
    }

    if (bus !== undefined) {
      yield* bus.listen({
        onMessage: (message) => {
          switch (message._tag) {
            case "Set":
            case "Delete":
              for (const key of message.keys) {
                l1.delete(key)
                l1.touch(key)
              }
              c.remoteInvalidations += message.keys.length
              return
            case "Tags":
              for (const t of message.tags) l1.tagInvalidated(t.tag, t.time, t.time + t.retainMillis)
              return
            case "DeletePrefix":
              l1.deletePrefix(message.prefix)
              l1.touchAll()
              return
            case "DeletePattern": {
              // A pattern this version cannot read (malformed, or from a
              // newer syntax): drop the whole prefix rather than keep a copy
              // the sender meant to invalidate.
              const matcher = Glob.compile(message.pattern)
              if (typeof matcher === "string") l1.deletePrefix(message.prefix)
              else l1.deleteMatching(message.prefix, (part) => Glob.covers(matcher, part))
              l1.touchAll()
              return
            }
            case "Clear":
              return reset()
          }
        },
        onReset: busReset
      })
    }

    /** After a successful L2 read: backfill, unless invalidated meanwhile. */
    const backfill = (key: string, entry: StoredEntry, mark: number, since: number) => {
      if (l1.mayBackfill(key, mark)) l1.set(key, entry, now(), since)
      else c.backfillsSkipped++
    }

    /**
     * After a write: the L1 takes the value (if nobody invalidated the key
     * meanwhile), for `l1MaxTtl` from `since`, when the write was sent (as
     * a read's copy counts from when the read started).
     */
    const keep = (key: string, entry: StoredEntry, mark: number, since: number) => {
      if (l1.mayBackfill(key, mark)) l1.set(key, entry, now(), since)
      else l1.delete(key)
      // Reads that started before this write must not backfill older data.
      l1.touch(key)
    }

    /**
     * After a write the L2 could not take. A load's write (`since`: when the
     * load started, on the server's clock) is kept nowhere: its value is as
     * old as the load's start, and a copy counted from the write would
     * outlive, by the load's duration, a write another process made
     * meanwhile (the fault runs caught one served 307 ms after such a write,
     * with a 300 ms `l1MaxTtl`). An explicit write is kept in this process
     * (its own write, `l1MaxTtl` at most). A tagged one is ordered at a lower
     * bound of the server's clock, the L2's `time` (from its anchor, no
     * round trip while it is fresh), never at its createdAt: that is this
     * process's clock, which cannot be compared with tag invalidations
     * ordered on the server's (with a clock ahead, the copy outlived an
     * invalidation of its tag: caught 111 ms past one, with the bus's 100 ms
     * bound). Earlier is safe: at worst the copy reads as invalidated. With
     * no clock to be had, a tagged copy is kept nowhere.
     */
    const keepUnordered = (
      key: string,
      entry: StoredEntry,
      mark: number,
      sentAt: number,
      since: number | undefined
    ): Effect.Effect<void> => {
      if (since !== undefined) return Effect.sync(() => forget([key]))
      if (entry.tags.length === 0) return Effect.sync(() => keep(key, entry, mark, sentAt))
      if (l2.time === undefined) return Effect.sync(() => forget([key]))
      return l2.time(key).pipe(
        Effect.match({
          onSuccess: (order) => keep(key, { ...entry, order }, mark, sentAt),
          onFailure: () => forget([key])
        })
      )
    }

    /**
     * A failed L2 write, then the L2's error: on an unreachable L2 (a
     * `CacheStoreError`) each write is kept as `keepUnordered` allows; a
     * value the L2 refused (encoding, size) is kept nowhere.
     */
    const failedWrite = <E extends { readonly _tag: string }>(
      error: E,
      writes: ReadonlyArray<readonly [key: string, entry: StoredEntry, since?: number | undefined]>,
      mark: number,
      sentAt: number
    ): Effect.Effect<never, E> =>
      error._tag === "CacheStoreError"
        ? Effect.andThen(
            Effect.forEach(writes, ([key, entry, since]) => keepUnordered(key, entry, mark, sentAt, since), {
              discard: true
            }),
            Effect.fail(error)
          )
        : Effect.fail(error)

    const forget = (keys: ReadonlyArray<string>) => {
      for (const key of keys) {
        l1.delete(key)
        l1.touch(key)
      }
    }

    const get: CacheStore["Service"]["get"] = (key, codec) =>
      Effect.suspend(() => {
        const hit = l1.get(key, now())
        if (hit !== undefined) {
          c.l1Hits++
          return Effect.succeed(hit)
        }
        c.l1Misses++
        const mark = l1.mark()
        const since = now()
        return Effect.map(l2.get(key, codec), (entry) => {
          if (entry === undefined) {
            c.l2Misses++
            return undefined
          }
          c.l2Hits++
          backfill(key, entry, mark, since)
          return entry
        })
      })

    // The synchronous hit path: a fresh L1 copy whose tags the L1 knows
    // (none invalidating it); anything else reads through `get`.
    const getFrontUnsafe = (key: string, t: number): StoredEntry | undefined => {
      const hit = l1.get(key, t)
      if (hit === undefined || t >= hit.freshUntil) return undefined
      const order = hit.order ?? hit.createdAt
      for (const tag of hit.tags) {
        const time = l1.tagTime(tag, t, false)
        if (time === null || (time !== undefined && time >= order)) return undefined
      }
      c.l1Hits++
      return hit
    }

    const getMany: CacheStore["Service"]["getMany"] = (keys, codec) =>
      Effect.suspend(() => {
        const t = now()
        const out: Array<StoredEntry | undefined> = new Array(keys.length)
        const missing: Array<number> = []
        keys.forEach((key, i) => {
          const hit = l1.get(key, t)
          if (hit === undefined) missing.push(i)
          else out[i] = hit
        })
        c.l1Hits += keys.length - missing.length
        c.l1Misses += missing.length
        if (missing.length === 0) return Effect.succeed(out)
        const mark = l1.mark()
        return Effect.map(
          l2.getMany(
            missing.map((i) => keys[i]!),
            codec
          ),
          (entries) => {
            missing.forEach((i, j) => {
              const entry = entries[j]
              out[i] = entry
              if (entry === undefined) c.l2Misses++
              else {
                c.l2Hits++
                backfill(keys[i]!, entry, mark, t)
              }
            })
            return out
          }
        )
      })

    const set: CacheStore["Service"]["set"] = (key, entry, codec) =>
      Effect.suspend(() => {
        const mark = l1.mark()
        const sentAt = now()
        return l2.set(key, entry, codec).pipe(
          Effect.matchEffect({
            onSuccess: () => {
              keep(key, entry, mark, sentAt)
              return publish({ _tag: "Set", keys: [key] })
            },
            // Nothing is published; the L1 keeps what `failedWrite` allows.
            onFailure: (error) => failedWrite(error, [[key, entry]], mark, sentAt)
          })
        )
      })

    // An ordered write goes to the L2, which orders it against every
    // process's writes and invalidations; the L1 takes it with its order
    // time, or, when the L2 refused it (a newer write or invalidation is
    // there), drops its own copy.
    const l2SetOrdered = l2.setOrdered
    const setOrdered: CacheStore["Service"]["setOrdered"] =
      l2SetOrdered === undefined
        ? undefined
        : (key, entry, codec, since, expect) =>
            Effect.suspend(() => {
              const mark = l1.mark()
              const sentAt = now()
              return l2SetOrdered(key, entry, codec, since, expect).pipe(
                Effect.matchEffect({
                  onSuccess: (order) => {
                    if (order === undefined) {
                      forget([key])
                      return Effect.succeed(undefined)
                    }
                    keep(key, { ...entry, order }, mark, sentAt)
                    return Effect.as(publish({ _tag: "Set", keys: [key] }), order)
                  },
                  onFailure: (error) => failedWrite(error, [[key, entry, since]], mark, sentAt)
                })
              )
            })

    // A batch load's writes, as `setOrdered` per entry, in the L2's one call.
    const l2SetOrderedMany = l2.setOrderedMany
    const setOrderedMany: CacheStore["Service"]["setOrderedMany"] =
      l2SetOrderedMany === undefined
        ? undefined
        : (entries, codec) =>
            Effect.suspend(() => {
              const mark = l1.mark()
              const sentAt = now()
              return l2SetOrderedMany(entries, codec).pipe(
                Effect.matchEffect({
                  onSuccess: (orders) => {
                    const stored: Array<string> = []
                    const refused: Array<string> = []
                    orders.forEach((order, i) => {
                      const [key, entry] = entries[i]!
                      if (order === undefined) refused.push(key)
                      else {
                        keep(key, { ...entry, order }, mark, sentAt)
                        stored.push(key)
                      }
                    })
                    if (refused.length > 0) forget(refused)
                    return stored.length === 0
                      ? Effect.succeed(orders)
                      : Effect.as(publish({ _tag: "Set", keys: stored }), orders)
                  },
                  onFailure: (error) => failedWrite(error, entries, mark, sentAt)
                })
              )
            })

    const setMany: CacheStore["Service"]["setMany"] = (entries, codec) =>
      Effect.suspend(() => {
        if (entries.length === 0) return Effect.void
        const mark = l1.mark()
        const sentAt = now()
        return l2.setMany(entries, codec).pipe(
          Effect.matchEffect({
            onSuccess: () => {
              for (const [key, entry] of entries) keep(key, entry, mark, sentAt)
              return publish({ _tag: "Set", keys: entries.map(([key]) => key) })
            },
            onFailure: (error) => failedWrite(error, entries, mark, sentAt)
          })
        )
      })

    /** Runs an L2 deletion between two L1 deletions, then publishes, whatever the L2 said. */
    const deleting = <A>(
      local: () => void,
      remote: Effect.Effect<A, CacheStoreError>,
      message: Message
    ): Effect.Effect<A, CacheStoreError> =>
      Effect.suspend(() => {
        local()
        return Effect.onExit(remote, () =>
          Effect.suspend(() => {
            local()
            return publish(message)
          })
        )
      })

    const del: CacheStore["Service"]["delete"] = (key) =>
      deleting(() => forget([key]), l2.delete(key), { _tag: "Delete", keys: [key] })

    const deleteMany: CacheStore["Service"]["deleteMany"] = (keys) =>
      keys.length === 0
        ? Effect.succeed(0)
        : deleting(() => forget(keys), l2.deleteMany(keys), { _tag: "Delete", keys })

    const deletePrefix: CacheStore["Service"]["deletePrefix"] = (prefix) =>
      deleting(
        () => {
          l1.deletePrefix(prefix)
          l1.touchAll()
        },
        l2.deletePrefix(prefix),
        { _tag: "DeletePrefix", prefix }
      )

    // Like deletePrefix: L1, L2, L1 again, then the bus (other L1s drop
    // their matching copies), whatever the L2 said. Without an L2 that
    // matches patterns, the L2 clears the whole prefix.
    const deletePattern: NonNullable<CacheStore["Service"]["deletePattern"]> = (prefix, pattern) =>
      Effect.suspend(() => {
        const matcher = Glob.compile(pattern)
        const local =
          typeof matcher === "string"
            ? () => {
                l1.deletePrefix(prefix)
                l1.touchAll()
              }
            : () => {
                l1.deleteMatching(prefix, (part) => Glob.covers(matcher, part))
                l1.touchAll()
              }
        return deleting(
          local,
          l2.deletePattern === undefined ? l2.deletePrefix(prefix) : l2.deletePattern(prefix, pattern),
          { _tag: "DeletePattern", prefix, pattern }
        )
      })

    // Presence: an L1 copy, else the L2's answer; nothing is backfilled (the
    // probe's keys are another version's, never read through this store).
    const has: CacheStore["Service"]["has"] =
      l2.has === undefined
        ? undefined
        : (keys) =>
            Effect.suspend(() => {
              const t = now()
              const local = keys.map((key) => l1.peek(key, t))
              const missing = keys.filter((_, i) => !local[i])
              if (missing.length === 0) return Effect.succeed(local)
              return Effect.map(l2.has!(missing), (remote) => {
                let j = 0
                return local.map((here) => here || remote[j++] === true)
              })
            })

    const getTagTimes: CacheStore["Service"]["getTagTimes"] = (tags) =>
      Effect.suspend(() => {
        const t = now()
        const out: Array<number | undefined> = new Array(tags.length)
        const missing: Array<number> = []
        tags.forEach((tag, i) => {
          const time = l1.tagTime(tag, t, false)
          if (time === null) missing.push(i)
          else out[i] = time
        })
        if (missing.length === 0) return Effect.succeed(out)
        const mark = l1.mark()
        return l2.getTagTimes(missing.map((i) => tags[i]!)).pipe(
          Effect.map((times) => {
            const t2 = now()
            const cache = l1.mayCacheTags(mark)
            missing.forEach((i, j) => {
              const tag = tags[i]!
              if (cache) l1.tagFetched(tag, times[j], t2, t)
              const local = l1.tagTime(tag, t2, true)
              out[i] = later(times[j], local ?? undefined)
            })
            return out
          }),
          // The L2 cannot answer: what the L1 last knew of every tag, if it
          // knows them all (entries here live at most l1MaxTtl anyway).
          Effect.catch((error) =>
            Effect.suspend(() => {
              const t2 = now()
              for (const i of missing) {
                const local = l1.tagTime(tags[i]!, t2, true)
                if (local === null) return Effect.fail(error)
                out[i] = local
              }
              return Effect.succeed(out)
            })
          )
        )
      })

    const setTagTime: CacheStore["Service"]["setTagTime"] = (tag, time, retainMillis) =>
      Effect.suspend(() => {
        // At once in this process (its clock), then as the L2 recorded it:
        // an L2 that orders writes on its own clock (Redis TIME) orders
        // entries on that clock, so this process and the others take the
        // later of the two times.
        l1.tagInvalidated(tag, time, time + retainMillis)
        let recorded = time
        const write =
          l2.setOrdered === undefined
            ? l2.setTagTime(tag, time, retainMillis)
            : Effect.andThen(
                l2.setTagTime(tag, time, retainMillis),
                Effect.map(l2.getTagTimes([tag]), ([server]) => {
                  recorded = Math.max(time, server ?? time)
                  l1.tagInvalidated(tag, recorded, now() + retainMillis)
                })
              )
        return Effect.onExit(write, () =>
          Effect.suspend(() => publish({ _tag: "Tags", tags: [{ tag, time: recorded, retainMillis }] }))
        )
      })

    const info: StoreInfo = {
      get entries() {
        return l1.entries()
      },
      get bytes() {
        return l1.bytes()
      },
      get evictions() {
        return l1.evictions()
      },
      get tags() {
        return l1.tags()
      }
    }

    const store: CacheStore["Service"] = {
      name: `tiered(${l2.name})`,
      get,
      getMany,
      set,
      setMany,
      delete: del,
      deleteMany,
      deletePrefix,
      deletePattern,
      has,
      getTagTimes,
      setTagTime,
      ping: l2.ping,
      info: Effect.succeed(info),
      health: Effect.gen(function* () {
        const own = l2.health === undefined ? undefined : yield* l2.health
        const busStats = bus === undefined ? undefined : yield* bus.stats
        return {
          breakers: own?.breakers ?? [],
          bus:
            busStats === undefined
              ? undefined
              : {
                  subscribed: busStats.subscribed,
                  subscriptions: busStats.subscriptions,
                  gaps: busStats.gaps,
                  lastReset
                }
        }
      }),
      subscribe: (listener) => {
        listeners.add(listener)
        return () => {
          listeners.delete(listener)
        }
      },
      // No getUnsafe: the runtime's synchronous read treats `undefined` as a
      // miss, but an L1 miss must still ask the L2.
      getUnsafe: undefined,
      getTagTimeUnsafe: undefined,
      getFrontUnsafe,
      setOrdered,
      setOrderedMany,
      time: l2.time,
      // Polls for another process's write (cluster-wide single flight) read
      // the L2: the L1's copy may be the very stale value being replaced.
      getShared: (key, codec) =>
        Effect.suspend(() => {
          const mark = l1.mark()
          const since = now()
          return Effect.map(l2.get(key, codec), (entry) => {
            if (entry !== undefined) backfill(key, entry, mark, since)
            return entry
          })
        })
    }

    const tiered: TieredService = {
      stats: Effect.map(bus === undefined ? Effect.undefined : bus.stats, (busStats) => ({
        ...c,
        l1Entries: l1.entries(),
        l1Evictions: l1.evictions(),
        bus: busStats,
        lease: leaseStats?.()
      })),
      clearL1: Effect.sync(reset)
    }

    return { store, tiered }
  })
