/**
 * Builds the runtime: wires the parts (keyspaces, entries, floors, tags,
 * flights, pending writes, stats) and owns the order in which the layer closes.
 *
 * @internal
 */
import { Clock, Effect, Option, Random, Scope } from "effect"
import { CacheStore } from "../../CacheStore.ts"
import { millisOr } from "../duration.ts"
import { LoadLease } from "../loadLease.ts"
import { positiveInt } from "../numbers.ts"
import * as Warn from "../warn.ts"
import * as Background from "./background.ts"
import * as Backoff from "./backoff.ts"
import * as Entries from "./entries.ts"
import * as Flights from "./flights.ts"
import * as Floors from "./floors.ts"
import * as Health from "./health.ts"
import * as Journal from "./journal.ts"
import * as Keyspaces from "./keyspaces.ts"
import * as Observe from "./observe.ts"
import * as Pending from "./pending.ts"
import { forgetRuntime, type RuntimeOptions, type RuntimeService } from "./service.ts"
import { type CacheStats, Counters, type KeyspaceStats, makeMetrics, registerStore, statsOf } from "./stats.ts"
import * as Tags from "./tags.ts"
import * as Versions from "./versions.ts"
import * as WriteBehind from "./writeBehind.ts"

/** Builds the runtime in the current scope, on the `CacheStore` in context. */
export const make = (options?: RuntimeOptions): Effect.Effect<RuntimeService, never, CacheStore | Scope.Scope> => {
  // Static configuration fails at construction, naming the option.
  const tagRetention = millisOr("Cachet.layer", "tagRetention", options?.tagRetention, 24 * 60 * 60 * 1000)
  const logInterval = millisOr("Cachet.layer", "logInterval", options?.logInterval, 10_000)
  const metricPrefix = options?.metricPrefix ?? "cachet"
  const writeBehindOptions = WriteBehind.resolveOptions(options?.writeBehind)
  const journalCapacity = positiveInt("Cachet.layer", "journalCapacity", options?.journalCapacity, 10_000)
  const journalRetry = millisOr("Cachet.layer", "journalRetry", options?.journalRetry, 250)
  const tracing = Observe.resolveTracing(options?.tracing)
  const traceKeys = options?.traceKeys === true
  const eventsCapacity = positiveInt("Cachet.layer", "eventsCapacity", options?.eventsCapacity, 1024)
  return Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const observe = Observe.make(clock, { tracing, traceKeys, capacity: eventsCapacity })
    // Store calls of loads, writes and invalidations are spanned here, once
    // for every part of the runtime; the memory hit path (getUnsafe) is not.
    const rawStore = yield* CacheStore
    const store = Observe.traceStore(rawStore, tracing, traceKeys)
    if (rawStore.subscribe !== undefined) {
      const unsubscribe = rawStore.subscribe((event) => {
        if (observe.listening()) observe.emit({ ...event, at: clock.currentTimeMillisUnsafe() })
      })
      yield* Effect.addFinalizer(() => Effect.sync(unsubscribe))
    }
    const context = yield* Effect.context<never>()
    const salt = yield* Random.nextInt
    // Cluster-wide single flight: only consulted by keyspaces that ask for it.
    const lease = Option.getOrUndefined(yield* Effect.serviceOption(LoadLease))
    // Set first thing when the layer starts closing: from then on nothing is
    // written to the store, loads bypass the cache, writes are refused.
    let closed = false
    const isClosed = () => closed
    // The service, once built: its `closed` field is what the hit path reads
    // (a field, not a call).
    let self: { -readonly [K in keyof RuntimeService]: RuntimeService[K] } | undefined

    const background = yield* Background.make
    const backoff = Backoff.make(clock)
    const warn = Warn.make(() => clock.currentTimeMillisUnsafe(), logInterval)
    const warnUnsafe = Warn.unsafe(warn, context)
    const metrics = makeMetrics(metricPrefix, context)
    const globalCounters = new Counters()
    const keyspaces = Keyspaces.make(metrics, warnUnsafe)
    const floors = Floors.make(clock, warnUnsafe)
    const tags = Tags.make(store, clock, tagRetention)
    const journal = Journal.make({
      store,
      clock,
      background,
      globalCounters,
      states: () => keyspaces.all(),
      warn,
      capacity: journalCapacity,
      retryMillis: journalRetry
    })
    const entries = Entries.make({ store, clock, floors, tags, journal, warn, globalCounters, isClosed, observe })
    const pending = Pending.make({
      options: writeBehindOptions,
      clock,
      background,
      drop: (state, key) => {
        flights.invalidate(key, true)
        return entries.remove(state, key)
      },
      observe
    })
    const flights = Flights.make({
      clock,
      context,
      background,
      entries,
      warn,
      lease,
      isClosed,
      hasPending: () => !pending.isEmpty(),
      pendingWrite: pending.lookup,
      storeTime: store.time,
      probeVersions: Versions.make(store, background).probe,
      observe,
      backoff
    })

    const storeInfo = yield* store.info
    if (storeInfo !== undefined) registerStore(metrics, storeInfo)

    // One finalizer, in the background's own sequential scope, so the order
    // holds whatever the layer scope's strategy: refuse new work, stop loads
    // and reloads, drain write-behind (it writes to the source, never to the
    // store), then remove the metric series. The fiber sets close after it.
    yield* Scope.addFinalizer(
      background.scope,
      Effect.suspend(() => {
        closed = true
        if (self !== undefined) self.closed = true
        return background.interruptLoads.pipe(
          // A load interrupted before it started never completes its flight:
          // release whoever still waits on one.
          Effect.andThen(Effect.sync(flights.releaseAll)),
          Effect.andThen(Effect.suspend(() => pending.writeBehind.shutdown)),
          Effect.ensuring(
            Effect.sync(() => {
              metrics.removeAll()
              keyspaces.release()
              forgetRuntime(self)
            })
          )
        )
      })
    )

    const stats: Effect.Effect<CacheStats> = Effect.map(store.info, (info) => {
      const all = keyspaces.all()
      const perKeyspace: Record<string, KeyspaceStats> = {}
      for (const s of all) perKeyspace[s.keyspace.name] = statsOf([s.counters])
      return {
        ...statsOf([globalCounters, ...all.map((s) => s.counters)]),
        keyspaces: perKeyspace,
        store: info && {
          entries: info.entries,
          bytes: info.bytes,
          evictions: info.evictions,
          tags: info.tags,
          fallbackHits: info.fallbackHits,
          fallbackMisses: info.fallbackMisses
        }
      }
    })

    const health = Health.make({
      store: rawStore,
      clock,
      observe,
      journalDepth: journal.depth,
      states: () => keyspaces.all(),
      bypassed: (state) => journal.bypassed(state)
    })

    self = {
      store,
      clock,
      stateOf: keyspaces.stateOf,
      keyOf: keyspaces.keyOf,
      read: entries.read,
      readSync: entries.readSync,
      readFresh: entries.readFresh,
      readFront: entries.readFront,
      readMany: entries.readMany,
      stateNow: entries.stateNow,
      revalidate: flights.revalidate,
      load: flights.load,
      loadMany: flights.loadMany,
      touch: entries.touch,
      backoff,
      write: entries.write,
      remove: entries.remove,
      replace: entries.replace,
      hide: floors.hide,
      writeBehind: pending.writeBehind,
      registerPending: pending.register,
      reportDeadLetter: pending.reportDeadLetter,
      storeFailed: entries.storeFailed,
      invalidateTag: tags.invalidate,
      journal: journal.push,
      journalDepth: journal.depth,
      tagRetention,
      invalidateFlights: flights.invalidate,
      invalidateFlightsWhere: flights.invalidateWhere,
      closed,
      stats,
      salt,
      liveFibers: background.live,
      observe,
      health
    }
    return self
  })
}
