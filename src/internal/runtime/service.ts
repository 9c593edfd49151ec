/**
 * The runtime's service: the interface strategies and `Cachet.ts` program
 * against, and its tag. How it is built is in `make.ts`.
 *
 * @internal
 */
import { type Clock, Context, type Duration, Effect } from "effect"
import type { StoreService } from "../store.ts"
import type { Backoff } from "./backoff.ts"
import type { Entries } from "./entries.ts"
import type { Flights } from "./flights.ts"
import type { Floors } from "./floors.ts"
import type { Health } from "./health.ts"
import type { Journal } from "./journal.ts"
import type { Keyspaces } from "./keyspaces.ts"
import type { Observe, TracingMode } from "./observe.ts"
import type { Pending } from "./pending.ts"
import type { CacheStats } from "./stats.ts"
import type { Tags } from "./tags.ts"
import type { WriteBehindOptions, WriteBehindQueue } from "./writeBehind.ts"

export { FRESH, GONE, STALE } from "./entries.ts"
export { type BatchLoader, type FlightResult, NotStoredTypeId, type PendingWrite } from "./flights.ts"
export type { Health, KeyspaceHealth } from "./health.ts"
export type { KeyspaceState } from "./keyspaces.ts"
export type { CacheEvent, TracingMode } from "./observe.ts"
export type { CacheStats, KeyspaceStats, StoreOp } from "./stats.ts"

/** Options of `Cachet.layer`. */
export interface RuntimeOptions {
  /**
   * How long a tag invalidation is remembered. Entries with tags live at most
   * this long, so an invalidation is never forgotten while an entry it covers
   * is stored. Default 1 day.
   */
  readonly tagRetention?: Duration.Input | undefined
  /** Least time between two warnings about store failures of one kind. Default 10 seconds. */
  readonly logInterval?: Duration.Input | undefined
  /** Name prefix of the metrics. Default `"cachet"`. */
  readonly metricPrefix?: string | undefined
  /**
   * Write-behind: queue bounds, batching, retry schedule, shutdown deadline
   * and the dead-letter callback. Used only by `Strategy.writeBehind` and
   * `Strategy.deleteBehind`; costs nothing otherwise.
   */
  readonly writeBehind?: WriteBehindOptions | undefined
  /**
   * Most invalidations kept while the store does not answer (default
   * 10,000). Past it, the affected keyspaces bypass the cache in this
   * process until they are cleared in the store (a resync), loudly.
   */
  readonly journalCapacity?: number | undefined
  /** Time between replays of the journal while the store does not answer. Default 250 ms. */
  readonly journalRetry?: Duration.Input | undefined
  /**
   * What is spanned through Effect's tracer: `"loads"` (default: loads,
   * revalidations, write-behind flushes and the store calls of writes and
   * invalidations; hits are not spanned), `"all"` (also one span per read,
   * hits included; costs a span per hit), `"off"`.
   */
  readonly tracing?: TracingMode | undefined
  /** Whether spans carry the key (`cachet.key`). Default false: keys may hold user data. */
  readonly traceKeys?: boolean | undefined
  /** Events queued per `Cachet.events` subscriber before new ones are dropped (and counted). Default 1024. */
  readonly eventsCapacity?: number | undefined
}

/** The runtime's methods, used by strategies and by `Cachet.ts`. */
export interface RuntimeService {
  readonly store: StoreService
  readonly clock: Clock.Clock
  /** Per-keyspace state, created on first use. */
  readonly stateOf: Keyspaces["stateOf"]
  /**
   * The store key of `params`, or `undefined` after counting a key error
   * (strategies then bypass the cache).
   */
  readonly keyOf: Keyspaces["keyOf"]
  /**
   * Reads an entry that is not gone (fresh or stale; tags checked). In
   * degrade mode a store failure is counted and read as `undefined`.
   */
  readonly read: Entries["read"]
  /** Synchronous `read` when the store is in the process, else `null`. */
  readonly readSync: Entries["readSync"]
  readonly readFresh: Entries["readFresh"]
  /** Synchronous hit of a copy in the process in front of a remote store (TieredStore's L1), else `null`. */
  readonly readFront: Entries["readFront"]
  /** `read` of many keys in one store call (degrade mode), aligned with the keys. */
  readonly readMany: Entries["readMany"]
  /** Where `entry` is on its timeline now. */
  readonly stateNow: Entries["stateNow"]
  /**
   * Starts a background reload of `key` (stale-while-revalidate,
   * refresh-ahead) in the layer's scope, unless a load of that key is already
   * in flight or the layer is closing: then `undefined`, at no cost. The
   * reload shares single-flight with foreground loads; a failure keeps the
   * old entry and is counted as a revalidation failure.
   */
  readonly revalidate: Flights["revalidate"]
  /** Runs `loader` once per key across concurrent callers, storing its result. */
  readonly load: Flights["load"]
  /** Loads many keys with one batch loader call (see `Cachet.cachedMany`). */
  readonly loadMany: Flights["loadMany"]
  /** Sliding expiry of a fresh entry (compare-and-set), or `undefined`: nothing to do. */
  readonly touch: Entries["touch"]
  /** Keys whose loader rests after a failure answered from stale. */
  readonly backoff: Backoff
  /** Stores a value (or negative entry) created at `createdAt`. Never fails; returns a store error if any. */
  readonly write: Entries["write"]
  /** Deletes one key; never fails; returns a store error if any. */
  readonly remove: Entries["remove"]
  /**
   * Stores `value` as the new entry of `key`, created now, for a write the
   * source has made. If it cannot be stored the old entry is deleted; if that
   * fails too, this process hides every entry of `key` created until now
   * (see `hide`). Never fails; returns the first error, if any.
   */
  readonly replace: Entries["replace"]
  /**
   * In this process, reads of `key` ignore entries created until now, until
   * the key is written or deleted successfully, or until such an entry must
   * have expired. For when the store could neither update nor delete it.
   */
  readonly hide: Floors["hide"]
  /** The write-behind queue. */
  readonly writeBehind: WriteBehindQueue
  /**
   * Adds a source of writes not yet made to the source (durable
   * write-behind), consulted by loads like the in-memory queue. Returns the
   * function that removes it.
   */
  readonly registerPending: Pending["register"]
  /** Counts, logs and reports a write-behind operation given up; invalidates its cache entry. */
  readonly reportDeadLetter: Pending["reportDeadLetter"]
  /** Records a store failure (count + rate-limited warning). */
  readonly storeFailed: Entries["storeFailed"]
  /** Records a tag invalidation now. */
  readonly invalidateTag: Tags["invalidate"]
  /**
   * Journals an invalidation the store did not take: applied to this
   * process's view at once, replayed in order when the store answers.
   */
  readonly journal: Journal["push"]
  /** Journalled invalidations waiting for the store. */
  readonly journalDepth: () => number
  /** How long a tag invalidation is remembered (ms). */
  readonly tagRetention: number
  /**
   * Marks in-flight loads as invalidated, so that they do not store their
   * result: the load of `key` when `exact`, else of every key starting with it.
   */
  readonly invalidateFlights: Flights["invalidate"]
  /** Marks in-flight loads under a prefix whose key part is covered (pattern invalidation). */
  readonly invalidateFlightsWhere: Flights["invalidateWhere"]
  /**
   * Whether the layer is closing or has closed: a field (set once, when the
   * layer starts closing), read on every hit.
   */
  readonly closed: boolean
  /** A snapshot of the counters. */
  readonly stats: Effect.Effect<CacheStats>
  /** A random number fixed per runtime (from Effect's `Random`), for jitter. */
  readonly salt: number
  /** Background fibers (loads, reloads, the write-behind flusher) not yet ended; 0 once the layer is closed. */
  readonly liveFibers: () => number
  /** Spans and events; `observe.active !== 0` is the hit path's only check. */
  readonly observe: Observe
  /** A health report (never fails). */
  readonly health: Effect.Effect<Health>
}

/**
 * The Cachet runtime service. Named as users import it (`Cachet.Cachet`), so
 * type errors about a missing runtime read `Cachet`.
 */
export class Cachet extends Context.Service<Cachet, RuntimeService>()("cachet/Cachet") {}

// The runtime of the context last read in: a fiber's reads share one
// context (contexts are immutable), so a hot loop compares one reference
// instead of looking the service up. One context is held at most, and a
// runtime's close lets go of it (`forgetRuntime`), as it empties its
// keyspace slots: a closed runtime is not kept alive by a read.
let lastContext: Context.Context<never> | undefined
let lastRuntime: RuntimeService | undefined

/** The runtime in `context` (it must hold one). */
export const runtimeIn = (context: Context.Context<never>): RuntimeService => {
  if (context === lastContext) return lastRuntime!
  const rt = Context.getUnsafe(context, Cachet)
  lastContext = context
  lastRuntime = rt
  return rt
}

/** At close: `runtimeIn` no longer holds `rt` (or its context). */
export const forgetRuntime = (rt: RuntimeService | undefined): void => {
  if (rt !== undefined && lastRuntime === rt) {
    lastContext = undefined
    lastRuntime = undefined
  }
}

/** `Effect.service(Cachet)`, allocated once. */
export const service: Effect.Effect<RuntimeService, never, Cachet> = Effect.service(Cachet)
