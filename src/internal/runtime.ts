/**
 * The Cachet runtime: single-flight loads, degrade/strict handling of store
 * failures, tag checks, stats and metrics. Strategies are built on the
 * `RuntimeService` methods below; users reach it through `Cachet.ts`.
 *
 * @internal
 */
import {
  Cause,
  Clock,
  Context,
  Deferred,
  type Duration,
  Effect,
  Exit,
  Fiber,
  Metric,
  Option,
  Random,
  Schema,
  Scope
} from "effect"
import {
  CacheEncodeError,
  type CacheKeyError,
  CacheShuttingDown,
  type CacheStoreError,
  type CacheValueTooLarge
} from "../CacheError.ts"
import { CacheStore, type EntryCodec, type StoredEntry, type StoreInfo } from "../CacheStore.ts"
import type { ClusterSingleFlight, Keyspace } from "../Keyspace.ts"
import { millisOr } from "./duration.ts"
import { escapePart } from "./keyEncoding.ts"
import * as Warn from "./warn.ts"
import * as WriteBehind from "./writeBehind.ts"

// ---------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------

/** Counters of one keyspace. Plain numbers: the hit path increments one. */
export class Counters {
  hits = 0
  misses = 0
  staleHits = 0
  loads = 0
  loadFailures = 0
  sets = 0
  deletes = 0
  storeErrors = 0
  decodeErrors = 0
  encodeErrors = 0
  keyErrors = 0
  revalidations = 0
  revalidationFailures = 0
  /** Write-behind operations queued or being written. */
  writeBehindDepth = 0
  writeBehindWrites = 0
  writeBehindRetries = 0
  writeBehindCoalesced = 0
  writeBehindDeadLetters = 0
  readonly storeErrorsByOp: Record<StoreOp, number> = { get: 0, set: 0, delete: 0, tags: 0 }
}

/** The store operations errors are counted by. */
export type StoreOp = "get" | "set" | "delete" | "tags"

/**
 * Counters of one keyspace, or of all of them.
 * `errors` is every cache-side error (store, decode, encode, key).
 */
export interface KeyspaceStats {
  readonly hits: number
  readonly misses: number
  readonly staleHits: number
  readonly loads: number
  readonly loadFailures: number
  readonly sets: number
  readonly deletes: number
  readonly errors: number
  readonly storeErrors: number
  readonly decodeErrors: number
  readonly encodeErrors: number
  readonly keyErrors: number
  /** Background reloads (stale-while-revalidate, refresh-ahead) that finished. */
  readonly revalidations: number
  /** Background reloads that failed (the old value was kept). */
  readonly revalidationFailures: number
  /** Write-behind operations queued or being written now. */
  readonly writeBehindQueued: number
  /** Write-behind operations written to the source. */
  readonly writeBehindWrites: number
  /** Failed write-behind attempts that were scheduled again. */
  readonly writeBehindRetries: number
  /** Write-behind operations replaced by a newer one of their key before being written. */
  readonly writeBehindCoalesced: number
  /** Write-behind operations given up (retries exhausted, or still queued at shutdown). */
  readonly writeBehindDeadLetters: number
  /** (hits + staleHits) / (hits + staleHits + misses); 0 before any request. */
  readonly hitRate: number
}

/** A snapshot of the runtime's counters, in total and per keyspace. */
export interface CacheStats extends KeyspaceStats {
  readonly keyspaces: Readonly<Record<string, KeyspaceStats>>
  readonly store: StoreInfo | undefined
}

const statsOf = (counters: ReadonlyArray<Counters>): KeyspaceStats => {
  const sum = (f: (c: Counters) => number) => counters.reduce((n, c) => n + f(c), 0)
  const hits = sum((c) => c.hits)
  const misses = sum((c) => c.misses)
  const staleHits = sum((c) => c.staleHits)
  const storeErrors = sum((c) => c.storeErrors)
  const decodeErrors = sum((c) => c.decodeErrors)
  const encodeErrors = sum((c) => c.encodeErrors)
  const keyErrors = sum((c) => c.keyErrors)
  const requests = hits + misses + staleHits
  return {
    hits,
    misses,
    staleHits,
    loads: sum((c) => c.loads),
    loadFailures: sum((c) => c.loadFailures),
    sets: sum((c) => c.sets),
    deletes: sum((c) => c.deletes),
    errors: storeErrors + decodeErrors + encodeErrors + keyErrors,
    storeErrors,
    decodeErrors,
    encodeErrors,
    keyErrors,
    revalidations: sum((c) => c.revalidations),
    revalidationFailures: sum((c) => c.revalidationFailures),
    writeBehindQueued: sum((c) => c.writeBehindDepth),
    writeBehindWrites: sum((c) => c.writeBehindWrites),
    writeBehindRetries: sum((c) => c.writeBehindRetries),
    writeBehindCoalesced: sum((c) => c.writeBehindCoalesced),
    writeBehindDeadLetters: sum((c) => c.writeBehindDeadLetters),
    hitRate: requests === 0 ? 0 : (hits + staleHits) / requests
  }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

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
  readonly writeBehind?: WriteBehind.WriteBehindOptions | undefined
}

/** How a strategy treats store failures. */
export interface ErrorModeOptions {
  /**
   * `"degrade"` (default): a store failure is logged, counted and read as a
   * miss; the loader answers. `"fail"`: it fails the call with
   * `CacheStoreError`.
   */
  readonly onStoreError?: "degrade" | "fail" | undefined
}

// ---------------------------------------------------------------------------
// Per-keyspace state
// ---------------------------------------------------------------------------

/** What the runtime keeps per keyspace. */
export interface KeyspaceState {
  readonly keyspace: Keyspace<any, any, any>
  readonly counters: Counters
  readonly codec: EntryCodec
  readonly loadDuration: Metric.Histogram<number>
  /** Mean loader run time in ms (moving average); -1 before the first load. */
  meanLoadMillis: number
}

interface Flight {
  readonly deferred: Deferred.Deferred<FlightResult>
  waiters: number
  fiber: Fiber.Fiber<unknown> | undefined
  /** Set when the key is invalidated during the load: its result is not stored. */
  invalidated: boolean
  /**
   * A background reload (revalidation, refresh): nobody started it by
   * waiting, so it is not stopped when the callers that joined it leave.
   */
  readonly background: boolean
}

/** The outcome of one load: the loader's exit, and a store failure on write. */
export interface FlightResult {
  readonly exit: Exit.Exit<unknown, unknown>
  readonly storeError: CacheStoreError | undefined
}

/** A write queued for the source: loads answer with its value (or, for a delete, store nothing). */
export interface PendingWrite {
  readonly op: "set" | "delete"
  readonly value: unknown
}

/**
 * Marks a loader failure that is an answer not to be stored rather than an
 * error (for example a response an HTTP cache may not keep): the runtime does
 * not count it as a load or revalidation failure, and stores nothing.
 */
export const NotStoredTypeId: unique symbol = Symbol.for("cachet/NotStored")

const isNotStored = (cause: Cause.Cause<unknown>): boolean => {
  const failure = Cause.findErrorOption(cause)
  return (
    Option.isSome(failure) &&
    typeof failure.value === "object" &&
    failure.value !== null &&
    NotStoredTypeId in failure.value
  )
}

/** Entry states along the timeline. */
export const FRESH = 0
export const STALE = 1
export const GONE = 2

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

/** The runtime's methods, used by strategies and by `Cachet.ts`. */
export interface RuntimeService {
  readonly store: CacheStore["Service"]
  readonly clock: Clock.Clock
  readonly scope: Scope.Scope
  /** Per-keyspace state, created on first use. */
  readonly stateOf: (keyspace: Keyspace<any, any, any>) => KeyspaceState
  /**
   * The store key of `params`, or `undefined` after counting a key error
   * (strategies then bypass the cache).
   */
  readonly keyOf: (state: KeyspaceState, params: unknown) => string | undefined
  /**
   * Reads an entry that is not gone (fresh or stale; tags checked). In
   * degrade mode a store failure is counted and read as `undefined`.
   */
  readonly read: (
    state: KeyspaceState,
    key: string,
    strict: boolean
  ) => Effect.Effect<StoredEntry | undefined, CacheStoreError>
  /** Synchronous `read` when the store is in the process, else `null`. */
  readonly readSync: ((state: KeyspaceState, key: string, now?: number) => StoredEntry | undefined) | null
  /** Where `entry` is on its timeline now. */
  readonly stateNow: (entry: StoredEntry) => typeof FRESH | typeof STALE | typeof GONE
  /**
   * Starts a background reload of `key` (stale-while-revalidate,
   * refresh-ahead) in the layer's scope, unless a load of that key is already
   * in flight or the layer is closing: then `undefined`, at no cost. The
   * reload shares single-flight with foreground loads; a failure keeps the
   * old entry and is counted as a revalidation failure.
   */
  readonly revalidate: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    loader: Effect.Effect<unknown, unknown, unknown>
  ) => Effect.Effect<void, never, unknown> | undefined
  /** Runs `loader` once per key across concurrent callers, storing its result. */
  readonly load: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    loader: Effect.Effect<unknown, unknown, unknown>
  ) => Effect.Effect<FlightResult>
  /** Stores a value (or negative entry) created at `createdAt`. Never fails; returns a store error if any. */
  readonly write: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    value: unknown,
    createdAt: number,
    negative: boolean,
    guard?: () => boolean
  ) => Effect.Effect<CacheStoreError | CacheEncodeError | CacheValueTooLarge | undefined>
  /** Deletes one key; never fails; returns a store error if any. */
  readonly remove: (state: KeyspaceState, key: string) => Effect.Effect<CacheStoreError | undefined>
  /**
   * Stores `value` as the new entry of `key`, created now, for a write the
   * source has made. If it cannot be stored the old entry is deleted; if that
   * fails too, this process hides every entry of `key` created until now
   * (see `hide`). Never fails; returns the first error, if any.
   */
  readonly replace: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    value: unknown
  ) => Effect.Effect<CacheStoreError | CacheEncodeError | CacheValueTooLarge | undefined>
  /**
   * In this process, reads of `key` ignore entries created until now, until
   * the key is written or deleted successfully, or until such an entry must
   * have expired. For when the store could neither update nor delete it.
   */
  readonly hide: (state: KeyspaceState, key: string) => void
  /** The write-behind queue. */
  readonly writeBehind: WriteBehind.WriteBehindQueue
  /**
   * Adds a source of writes not yet made to the source (durable
   * write-behind), consulted by loads like the in-memory queue. Returns the
   * function that removes it.
   */
  readonly registerPending: (lookup: (key: string) => PendingWrite | undefined) => () => void
  /** Counts, logs and reports a write-behind operation given up; invalidates its cache entry. */
  readonly reportDeadLetter: (
    state: KeyspaceState,
    letter: WriteBehind.DeadLetter,
    callback: ((letter: WriteBehind.DeadLetter) => Effect.Effect<void>) | undefined
  ) => Effect.Effect<void>
  /** Records a store failure (count + rate-limited warning). */
  readonly storeFailed: (state: KeyspaceState | undefined, op: StoreOp, error: CacheStoreError) => Effect.Effect<void>
  /** Records a tag invalidation now. */
  readonly invalidateTag: (tag: string) => Effect.Effect<void, CacheStoreError>
  /**
   * Marks in-flight loads as invalidated, so that they do not store their
   * result: the load of `key` when `exact`, else of every key starting with it.
   */
  readonly invalidateFlights: (key: string, exact: boolean) => void
  /** Whether the layer is closing or has closed. */
  readonly isClosed: () => boolean
  /** Fails when closed. */
  readonly ensureOpen: (op: string) => Effect.Effect<void, CacheShuttingDown>
  /** A snapshot of the counters. */
  readonly stats: Effect.Effect<CacheStats>
  /** The tag retention in milliseconds. */
  readonly tagRetention: number
  /** A random number fixed per runtime (from Effect's `Random`), for jitter. */
  readonly salt: number
}

/** The Cachet runtime service. */
export class CachetService extends Context.Service<CachetService, RuntimeService>()("cachet/Cachet") {}

// ---------------------------------------------------------------------------
// Cluster-wide single flight (optional)
// ---------------------------------------------------------------------------

/**
 * A cross-process lease for loads of keyspaces with
 * `singleFlight: { scope: "cluster" }` (`cachet/redis` provides one on Redis;
 * public as `TieredStore.LoadLease`). Read once, when the runtime is built,
 * from the context of `Cachet.layer`; when it is absent nothing changes and
 * nothing is paid.
 *
 * `run` answers with `poll` as soon as it finds the value another process
 * stored, else takes the lease of `key` and runs `load` holding it (the load
 * both runs the loader and stores its result, so the lease outlives the
 * write), else waits (bounded by `policy.wait`) and then runs `load` by
 * itself. It never fails: a lease backend that fails means `load` runs.
 */
export class LoadLease extends Context.Service<
  LoadLease,
  {
    readonly run: <A>(
      key: string,
      policy: ClusterSingleFlight,
      load: Effect.Effect<A>,
      poll: Effect.Effect<A | undefined>
    ) => Effect.Effect<A>
  }
>()("cachet/LoadLease") {}

/** `Effect.service(CachetService)`, allocated once. */
export const service: Effect.Effect<RuntimeService, never, CachetService> = Effect.service(CachetService)

/** Builds the runtime in the current scope, on the `CacheStore` in context. */
export const make = (options?: RuntimeOptions): Effect.Effect<RuntimeService, never, CacheStore | Scope.Scope> => {
  // Static configuration fails at construction, naming the option.
  const tagRetention = millisOr("Cachet.layer", "tagRetention", options?.tagRetention, 24 * 60 * 60 * 1000)
  const logInterval = millisOr("Cachet.layer", "logInterval", options?.logInterval, 10_000)
  const metricPrefix = options?.metricPrefix ?? "cachet"
  const writeBehindOptions = WriteBehind.resolveOptions(options?.writeBehind)
  return Effect.gen(function* () {
    const store = yield* CacheStore
    const clock = yield* Clock.Clock
    const scope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    const states = new Map<string, KeyspaceState>()
    // Failures outside any keyspace (tag invalidation) count in the totals.
    const globalCounters = new Counters()
    const flights = new Map<string, Flight>()
    const registrations: Array<Metric.Registration> = []
    // Set first thing when the layer starts closing: from then on nothing is
    // written to the store, loads bypass the cache, writes are refused.
    let closed = false
    // Keys whose entries created until a time must not be served here (see
    // `hide`). Empty in normal operation: the read path checks `.size`.
    const floors = new Map<string, number>()
    const maxFloors = 100_000
    // Loads and background reloads run here, not in the caller's fiber. Its
    // own scope (closed by the layer's finalizer, below) so that closing the
    // layer stops them before write-behind drains and nothing else.
    const background = Scope.makeUnsafe("parallel")
    const salt = yield* Random.nextInt
    // Cluster-wide single flight: only consulted by keyspaces that ask for it.
    const lease = Option.getOrUndefined(yield* Effect.serviceOption(LoadLease))

    // Metrics: the hit path increments plain counters; these series read them
    // when metrics are snapshotted or exported (no per-request Metric update).
    const counterSeries = (
      name: string,
      description: string,
      attributes: Record<string, string>,
      get: () => number
    ) => {
      const metric = Metric.counter(`${metricPrefix}_${name}`, { description, attributes, incremental: true })
      registrations.push(
        Metric.registerUnsafe(metric, context, {
          get: () => ({ count: get(), incremental: true }),
          update: () => {},
          modify: () => {}
        })
      )
    }
    const gaugeSeries = (
      name: string,
      description: string,
      get: () => number,
      attributes: Record<string, string> = {}
    ) => {
      const metric = Metric.gauge(`${metricPrefix}_${name}`, { description, attributes })
      registrations.push(
        Metric.registerUnsafe(metric, context, { get: () => ({ value: get() }), update: () => {}, modify: () => {} })
      )
    }
    let storeInfo: StoreInfo | undefined = yield* store.info
    if (storeInfo !== undefined) {
      const info = storeInfo
      gaugeSeries("store_entries", "Entries held by the store", () => info.entries)
      counterSeries("store_evictions_total", "Entries evicted by the store for capacity", {}, () => info.evictions)
    }

    // One finalizer, so the order holds whatever the scope's strategy:
    // refuse new work, stop loads and reloads, drain write-behind (it writes
    // to the source, never to the store), then remove the metric series.
    yield* Scope.addFinalizer(
      scope,
      Effect.suspend(() => {
        closed = true
        return Scope.close(background, Exit.void).pipe(
          // A load interrupted before it started never completes its flight:
          // release whoever still waits on one.
          Effect.andThen(
            Effect.sync(() => {
              for (const flight of flights.values()) {
                Deferred.doneUnsafe(flight.deferred, Effect.succeed({ exit: Exit.interrupt(), storeError: undefined }))
              }
              flights.clear()
            })
          ),
          Effect.andThen(Effect.suspend(() => writeBehind.shutdown)),
          Effect.ensuring(
            Effect.sync(() => {
              for (const r of registrations) r.remove()
            })
          )
        )
      })
    )

    const warn = Warn.make(() => clock.currentTimeMillisUnsafe(), logInterval)
    const warnUnsafe = Warn.unsafe(warn, context)

    const stateOf = (keyspace: Keyspace<any, any, any>): KeyspaceState => {
      const existing = states.get(keyspace.name)
      if (existing !== undefined && existing.keyspace === keyspace) return existing
      return register(keyspace, existing)
    }

    const register = (keyspace: Keyspace<any, any, any>, existing: KeyspaceState | undefined): KeyspaceState => {
      if (existing !== undefined) {
        // Two keyspace objects with one name would share keys: refuse.
        throw new Error(
          `cachet: two different keyspaces are named ${JSON.stringify(keyspace.name)}; keyspace names must be unique`
        )
      }
      const counters = new Counters()
      const attrs = { keyspace: keyspace.name }
      const state: KeyspaceState = {
        keyspace,
        counters,
        codec: {
          keyspace: keyspace.name,
          encode: keyspace.encode,
          decode: keyspace.decode,
          onCorrupt: (error) => {
            counters.decodeErrors++
            // A corrupt entry is data, not an outage: log it, rate-limited.
            warnUnsafe(`decode:${keyspace.name}`, `cachet: dropped an unreadable entry: ${error.message}`, {
              keyspace: keyspace.name,
              key: error.key
            })
          }
        },
        loadDuration: Metric.histogram(`${metricPrefix}_load_duration_seconds`, {
          description: "Loader run time",
          attributes: attrs,
          boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })
        }),
        meanLoadMillis: -1
      }
      // The histogram is a real metric (updated per load, not per hit); it is
      // removed with the layer like the hook-backed series.
      registrations.push({ remove: () => Metric.removeUnsafe(state.loadDuration, context) })
      const series = (result: string, get: () => number) =>
        counterSeries("requests_total", "Cache requests by result", { ...attrs, result }, get)
      series("hit", () => counters.hits)
      series("miss", () => counters.misses)
      series("stale", () => counters.staleHits)
      counterSeries(
        "loads_total",
        "Loader runs",
        { ...attrs, outcome: "success" },
        () => counters.loads - counters.loadFailures
      )
      counterSeries("loads_total", "Loader runs", { ...attrs, outcome: "failure" }, () => counters.loadFailures)
      counterSeries("sets_total", "Entries written", attrs, () => counters.sets)
      counterSeries("deletes_total", "Entries deleted", attrs, () => counters.deletes)
      for (const op of ["get", "set", "delete", "tags"] as const) {
        counterSeries(
          "store_errors_total",
          "Store failures by operation",
          { ...attrs, op },
          () => counters.storeErrorsByOp[op]
        )
      }
      counterSeries("decode_errors_total", "Unreadable entries dropped", attrs, () => counters.decodeErrors)
      counterSeries(
        "encode_errors_total",
        "Values refused by their Schema on write",
        attrs,
        () => counters.encodeErrors
      )
      counterSeries(
        "revalidations_total",
        "Background revalidations",
        { ...attrs, outcome: "success" },
        () => counters.revalidations - counters.revalidationFailures
      )
      counterSeries(
        "revalidations_total",
        "Background revalidations",
        { ...attrs, outcome: "failure" },
        () => counters.revalidationFailures
      )
      gaugeSeries(
        "write_behind_queue_depth",
        "Write-behind operations queued or being written",
        () => counters.writeBehindDepth,
        attrs
      )
      for (const [outcome, get] of [
        ["success", () => counters.writeBehindWrites],
        ["retry", () => counters.writeBehindRetries],
        ["coalesced", () => counters.writeBehindCoalesced],
        ["dead_letter", () => counters.writeBehindDeadLetters]
      ] as const) {
        counterSeries("write_behind_total", "Write-behind operations by outcome", { ...attrs, outcome }, get)
      }
      states.set(keyspace.name, state)
      return state
    }

    const keyOf = (state: KeyspaceState, params: unknown): string | undefined => {
      try {
        return state.keyspace.keyUnsafe(params)
      } catch (error) {
        state.counters.keyErrors++
        warnUnsafe(
          `key:${state.keyspace.name}`,
          `cachet: bypassing the cache: ${String((error as CacheKeyError).message)}`,
          {
            keyspace: state.keyspace.name
          }
        )
        return undefined
      }
    }

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

    const isHidden = (state: KeyspaceState, key: string, entry: StoredEntry): boolean => {
      const floor = floors.get(key)
      if (floor === undefined) return false
      // Every entry created by `floor` has expired by then: forget the floor.
      if (clock.currentTimeMillisUnsafe() >= floor + state.keyspace.ttl + state.keyspace.staleFor) {
        floors.delete(key)
        return false
      }
      return entry.createdAt <= floor
    }

    const hide = (state: KeyspaceState, key: string) => {
      floors.delete(key)
      floors.set(key, clock.currentTimeMillisUnsafe())
      // Bounded: past the bound the oldest floor goes (its key may then show
      // its old entry here too, as it may on other instances).
      if (floors.size > maxFloors) floors.delete(floors.keys().next().value!)
      warnUnsafe(
        `hide:${state.keyspace.name}`,
        `cachet: could neither update nor delete ${key} in the store; this process ignores its old entry, other instances may serve it until it expires`,
        { keyspace: state.keyspace.name, key }
      )
    }

    const stateNow = (entry: StoredEntry) => {
      const now = clock.currentTimeMillisUnsafe()
      return now < entry.freshUntil ? FRESH : now < entry.staleUntil ? STALE : GONE
    }

    // An entry is gone when one of its tags was invalidated at or after its
    // creation (invalidation wins a tie within one millisecond).
    const getTagTimeUnsafe = store.getTagTimeUnsafe
    const readSync =
      store.getUnsafe === undefined || getTagTimeUnsafe === undefined
        ? null
        : (() => {
            const getUnsafe = store.getUnsafe
            return (state: KeyspaceState, key: string, now?: number): StoredEntry | undefined => {
              const entry = getUnsafe(key, now)
              if (entry === undefined) return entry
              // `floors` is empty unless a write could not reach the store:
              // one size check on the hit path.
              if (floors.size !== 0 && isHidden(state, key, entry)) return undefined
              if (entry.tags.length === 0) return entry
              for (const tag of entry.tags) {
                const time = getTagTimeUnsafe(tag)
                if (time !== undefined && time >= entry.createdAt) return undefined
              }
              return entry
            }
          })()

    const read = (
      state: KeyspaceState,
      key: string,
      strict: boolean
    ): Effect.Effect<StoredEntry | undefined, CacheStoreError> => {
      if (readSync !== null) return Effect.sync(() => readSync(state, key))
      const degrade = (op: StoreOp) => (error: CacheStoreError) =>
        strict ? Effect.fail(error) : Effect.as(storeFailed(state, op, error), undefined)
      return store.get(key, state.codec).pipe(
        Effect.catch(degrade("get")),
        Effect.flatMap((entry): Effect.Effect<StoredEntry | undefined, CacheStoreError> => {
          if (entry !== undefined && floors.size !== 0 && isHidden(state, key, entry)) return Effect.succeed(undefined)
          if (entry === undefined || entry.tags.length === 0) return Effect.succeed(entry)
          return store.getTagTimes(entry.tags).pipe(
            Effect.map((times) => (times.some((t) => t !== undefined && t >= entry.createdAt) ? undefined : entry)),
            // Unverifiable tags: read as a miss rather than risk serving an
            // invalidated entry.
            Effect.catch(degrade("tags"))
          )
        })
      )
    }

    const write = (
      state: KeyspaceState,
      key: string,
      params: unknown,
      value: unknown,
      createdAt: number,
      negative: boolean,
      guard?: () => boolean
    ): Effect.Effect<CacheStoreError | CacheEncodeError | CacheValueTooLarge | undefined> =>
      Effect.suspend((): Effect.Effect<CacheStoreError | CacheEncodeError | CacheValueTooLarge | undefined> => {
        // Nothing is written to the store once the layer is closing. The
        // guard (a load's "not invalidated since I started") is checked here,
        // in the same synchronous step that issues the store write, so an
        // invalidation or Cachet.set cannot slip in between check and write.
        if (closed || (guard !== undefined && !guard())) return Effect.succeed(undefined)
        const ks = state.keyspace
        if (negative ? !ks.negative?.error || !isOf(ks.negative.error, value) : !ks.is(value)) {
          state.counters.encodeErrors++
          const error = new CacheEncodeError({
            keyspace: ks.name,
            message: `${negative ? "error" : "value"} does not satisfy the keyspace Schema; not stored`
          })
          return Effect.as(warn(`encode:${ks.name}`, `cachet: ${error.message}`, { keyspace: ks.name }), error)
        }
        let tags: ReadonlyArray<string> = emptyTags
        let freshUntil: number
        let staleUntil: number
        if (negative) {
          freshUntil = staleUntil = createdAt + ks.negative!.ttl
        } else {
          freshUntil = createdAt + ks.ttl
          staleUntil = freshUntil + ks.staleFor
          if (ks.tagsOf !== undefined) {
            try {
              tags = ks.tagsOf(params, value)
            } catch (cause) {
              state.counters.encodeErrors++
              return Effect.succeed(
                new CacheEncodeError({ keyspace: ks.name, message: `tags function threw: ${String(cause)}` })
              )
            }
            if (tags.length > 0) {
              // Entries with tags never outlive the tag records that could
              // invalidate them.
              staleUntil = Math.min(staleUntil, createdAt + tagRetention)
              freshUntil = Math.min(freshUntil, staleUntil)
            }
          }
        }
        const entry: StoredEntry = negative
          ? { value, createdAt, freshUntil, staleUntil, tags, negative: true }
          : { value, createdAt, freshUntil, staleUntil, tags }
        return store.set(key, entry, state.codec).pipe(
          Effect.matchEffect({
            onSuccess: () => {
              state.counters.sets++
              if (floors.size !== 0) floors.delete(key)
              return Effect.succeed(undefined)
            },
            onFailure: (error): Effect.Effect<CacheStoreError | CacheEncodeError | CacheValueTooLarge> => {
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

    const remove = (state: KeyspaceState, key: string): Effect.Effect<CacheStoreError | undefined> =>
      Effect.suspend(() =>
        closed
          ? Effect.undefined
          : store.delete(key).pipe(
              Effect.matchEffect({
                onSuccess: (existed) => {
                  if (existed) state.counters.deletes++
                  if (floors.size !== 0) floors.delete(key)
                  return Effect.undefined
                },
                onFailure: (error) => Effect.as(storeFailed(state, "delete", error), error)
              })
            )
      )

    const replace = (
      state: KeyspaceState,
      key: string,
      params: unknown,
      value: unknown
    ): Effect.Effect<CacheStoreError | CacheEncodeError | CacheValueTooLarge | undefined> =>
      Effect.flatMap(write(state, key, params, value, clock.currentTimeMillisUnsafe(), false), (error) => {
        if (error === undefined) return Effect.undefined
        // The source has the new value: the old entry must not outlive it.
        return Effect.map(remove(state, key), (removeError) => {
          if (removeError !== undefined) hide(state, key)
          return error
        })
      })

    const load = (
      state: KeyspaceState,
      key: string,
      params: unknown,
      loader: Effect.Effect<unknown, unknown, unknown>
    ): Effect.Effect<FlightResult> =>
      // Forking the load and registering as its waiter happen without an
      // interruption point between them; only the wait itself is
      // interruptible. Otherwise a caller interrupted right after the fork
      // would leave a load that nobody waits on and nobody stops.
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          // Closing: no cache to fill; the loader answers.
          if (closed) {
            return Effect.map(restore(Effect.exit(loader)), (exit) => ({
              exit,
              storeError: undefined
            })) as Effect.Effect<FlightResult>
          }
          const existing = flights.get(key)
          if (existing !== undefined) return wait(existing, key, restore)
          const created = startFlight(state, key, params, loader, false)
          // The load runs in a fiber of the layer's scope, not the caller's:
          // a caller's interruption must not cancel a load others wait on.
          return Effect.flatMap(
            Effect.forkIn(created.run, background, { startImmediately: true, uninterruptible: false }),
            (fiber) => {
              created.flight.fiber = fiber
              return wait(created.flight, key, restore)
            }
          )
        })
      )

    const startFlight = (
      state: KeyspaceState,
      key: string,
      params: unknown,
      loader: Effect.Effect<unknown, unknown, unknown>,
      isBackground: boolean
    ) => {
      const flight: Flight = {
        deferred: Deferred.makeUnsafe<FlightResult>(),
        waiters: 0,
        fiber: undefined,
        invalidated: false,
        background: isBackground
      }
      flights.set(key, flight)
      const run = runLoad(state, key, params, loader, flight).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (flights.get(key) === flight) flights.delete(key)
            Deferred.doneUnsafe(
              flight.deferred,
              Exit.isSuccess(exit) ? exit : Effect.succeed({ exit, storeError: undefined })
            )
          })
        )
      )
      return { flight, run }
    }

    const revalidate = (
      state: KeyspaceState,
      key: string,
      params: unknown,
      loader: Effect.Effect<unknown, unknown, unknown>
    ): Effect.Effect<void, never, unknown> | undefined => {
      // Deduplicated per key: any load of the key in flight (foreground or
      // background) will refresh the entry; nothing to start.
      if (closed || flights.has(key)) return undefined
      // Registering the flight and forking it happen in one uninterruptible
      // step: a reader interrupted in between must not leave a flight that
      // never runs (later readers would wait on it). Not started immediately:
      // the reader that triggered it gets its value first; the reload runs in
      // the layer's scope with the reader's context.
      return Effect.uninterruptible(
        Effect.suspend(() => {
          if (closed || flights.has(key)) return Effect.void
          const created = startFlight(state, key, params, loader, true)
          return Effect.map(Effect.forkIn(created.run, background, { startImmediately: false }), (fiber) => {
            created.flight.fiber = fiber
          })
        })
      )
    }

    const wait = (
      flight: Flight,
      key: string,
      restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    ): Effect.Effect<FlightResult> => {
      flight.waiters++
      return restore(Deferred.await(flight.deferred)).pipe(
        Effect.onExit((exit) =>
          Effect.suspend(() => {
            flight.waiters--
            if (Exit.isSuccess(exit) || flight.waiters > 0 || flight.fiber === undefined || flight.background) {
              return Effect.void
            }
            // The last waiter left: stop the load. It no longer serves new
            // callers (they start their own) and its result is not stored.
            flight.invalidated = true
            if (flights.get(key) === flight) flights.delete(key)
            return Effect.asVoid(Fiber.interrupt(flight.fiber))
          })
        )
      )
    }

    const runLoad = (
      state: KeyspaceState,
      key: string,
      params: unknown,
      loader: Effect.Effect<unknown, unknown, unknown>,
      flight: Flight,
      leased = false
    ): Effect.Effect<FlightResult> =>
      Effect.gen(function* () {
        const startedAt = clock.currentTimeMillisUnsafe()
        const stillValid = () => !flight.invalidated
        // Write-behind: a key with a queued write answers with that value
        // (the source does not have it yet); one with a queued delete loads,
        // but its value is not stored. Free when nothing is queued.
        let keep = true
        if (!writeBehind.isEmpty() || pendingLookups.length !== 0) {
          const pending = pendingWrite(key)
          if (pending?.op === "set") {
            let storeError: CacheStoreError | undefined
            if (!flight.invalidated) {
              const error = yield* write(state, key, params, pending.value, startedAt, false, stillValid)
              if (error?._tag === "CacheStoreError") storeError = error
            }
            return { exit: Exit.succeed(pending.value), storeError }
          }
          if (pending !== undefined) keep = false
        }
        // Cluster-wide single flight: the loader (and the write of its
        // result) runs under the key's lease, or the value another process
        // stored answers. Keyspaces without it pay one property read.
        const cluster = state.keyspace.singleFlight
        if (cluster !== undefined && !leased) {
          if (lease !== undefined) {
            return yield* lease.run(
              key,
              cluster,
              runLoad(state, key, params, loader, flight, true),
              polled(state, key, flight.background)
            )
          }
          yield* warn(
            `lease:${state.keyspace.name}`,
            `cachet: keyspace ${state.keyspace.name} asks for cluster-wide single flight, but no lease service is provided (TieredStore.layer or TieredStore.layerLease); loading once per process`,
            { keyspace: state.keyspace.name }
          )
        }
        const started = clock.currentTimeNanosUnsafe()
        const exit = yield* Effect.exit(loader)
        const ns = Number(clock.currentTimeNanosUnsafe() - started)
        state.loadDuration.updateUnsafe(ns / 1e9, context)
        const ms = ns / 1e6
        state.meanLoadMillis = state.meanLoadMillis < 0 ? ms : 0.8 * state.meanLoadMillis + 0.2 * ms
        state.counters.loads++
        // A loader may end with a typed "answer that must not be stored"
        // (the HTTP cache's non-storable response): not a failure to count.
        const failed = Exit.isFailure(exit) && !isNotStored(exit.cause)
        if (failed) state.counters.loadFailures++
        if (flight.background) {
          state.counters.revalidations++
          if (failed) {
            // The stale (or still fresh) entry stays; the next reader past
            // its refresh point or in its stale window tries again.
            state.counters.revalidationFailures++
            yield* warn(
              `revalidate:${state.keyspace.name}`,
              `cachet: background reload failed; keeping the cached value: ${Cause.pretty(exit.cause)}`,
              { keyspace: state.keyspace.name, key }
            )
            return { exit, storeError: undefined }
          }
        }
        if (flight.invalidated || !keep) return { exit, storeError: undefined }
        let storeError: CacheStoreError | undefined
        if (Exit.isSuccess(exit)) {
          const error = yield* write(state, key, params, exit.value, startedAt, false, stillValid)
          if (error?._tag === "CacheStoreError") storeError = error
        } else if (state.keyspace.negative !== undefined) {
          const failure = Cause.findErrorOption(exit.cause)
          if (Option.isSome(failure) && isOf(state.keyspace.negative.error, failure.value)) {
            const error = yield* write(state, key, params, failure.value, startedAt, true, stillValid)
            if (error?._tag === "CacheStoreError") storeError = error
          }
        }
        return { exit, storeError }
      }) as Effect.Effect<FlightResult>

    /**
     * For cluster-wide single flight: the value another process stored for
     * `key`, if any. A foreground load takes any fresh entry; a background
     * reload (of an entry that may still be fresh) only one newer than the
     * entry seen on the first poll.
     */
    const polled = (
      state: KeyspaceState,
      key: string,
      isBackground: boolean
    ): Effect.Effect<FlightResult | undefined> => {
      let first = true
      let baseline = Number.NEGATIVE_INFINITY
      return Effect.map(
        Effect.orElseSucceed(read(state, key, false), () => undefined),
        (entry) => {
          const isFirst = first
          first = false
          if (entry === undefined || stateNow(entry) !== FRESH) return undefined
          if (isBackground && isFirst) {
            baseline = entry.createdAt
            return undefined
          }
          if (entry.createdAt <= baseline) return undefined
          return { exit: entry.negative ? Exit.fail(entry.value) : Exit.succeed(entry.value), storeError: undefined }
        }
      )
    }

    const invalidateFlights = (keyOrPrefix: string, exact: boolean) => {
      if (exact) {
        const flight = flights.get(keyOrPrefix)
        if (flight !== undefined) {
          flight.invalidated = true
          flights.delete(keyOrPrefix)
        }
        return
      }
      for (const [key, flight] of flights) {
        if (key.startsWith(keyOrPrefix)) {
          flight.invalidated = true
          flights.delete(key)
        }
      }
    }

    const invalidateTag = (tag: string): Effect.Effect<void, CacheStoreError> =>
      Effect.suspend(() => {
        const escaped = escapePart(tag)
        const now = clock.currentTimeMillisUnsafe()
        // Loads in flight may have read data the invalidation covers. Their
        // entries carry createdAt = load start <= now, so the tag check
        // already rejects them; nothing else to do here.
        return store.setTagTime(escaped, now, tagRetention)
      })

    const pendingLookups: Array<(key: string) => PendingWrite | undefined> = []
    const pendingWrite = (key: string): PendingWrite | undefined => {
      const queued = writeBehind.pending(key)
      if (queued !== undefined) return queued
      for (const lookup of pendingLookups) {
        const found = lookup(key)
        if (found !== undefined) return found
      }
      return undefined
    }
    const registerPending = (lookup: (key: string) => PendingWrite | undefined) => {
      pendingLookups.push(lookup)
      return () => {
        const i = pendingLookups.indexOf(lookup)
        if (i !== -1) pendingLookups.splice(i, 1)
      }
    }

    const writeBehind: WriteBehind.WriteBehindQueue = WriteBehind.make(writeBehindOptions, clock, context, {
      written: (pending) => {
        pending.state.counters.writeBehindWrites++
      },
      deadLetter: (pending, cause, reason) =>
        reportDeadLetter(
          pending.state,
          {
            keyspace: pending.state.keyspace.name,
            key: pending.key,
            params: pending.params,
            op: pending.op,
            value: pending.op === "set" ? pending.value : undefined,
            attempts: pending.attempts,
            reason,
            cause
          },
          writeBehindOptions.onDeadLetter
        )
    })

    const reportDeadLetter = (
      state: KeyspaceState,
      letter: WriteBehind.DeadLetter,
      callback: ((letter: WriteBehind.DeadLetter) => Effect.Effect<void>) | undefined
    ): Effect.Effect<void> =>
      Effect.gen(function* () {
        state.counters.writeBehindDeadLetters++
        yield* Effect.logError(
          `cachet: write-behind gave up on ${letter.op} ${letter.key} after ${letter.attempts} attempt(s) (${letter.reason})`
        ).pipe(
          Effect.annotateLogs({ keyspace: letter.keyspace, key: letter.key, op: letter.op, reason: letter.reason }),
          Effect.annotateLogs("cause", Cause.pretty(letter.cause))
        )
        // The cache must not keep a value the source will never have
        // (unless a newer write of the key is queued). At shutdown the
        // store is not touched: `remove` is a no-op once closing.
        if (letter.op === "set" && pendingWrite(letter.key) === undefined) {
          invalidateFlights(letter.key, true)
          yield* remove(state, letter.key)
        }
        if (callback !== undefined) {
          yield* Effect.suspend(() => callback(letter)).pipe(
            Effect.catchCause((failure) =>
              Effect.logError(`cachet: onDeadLetter failed: ${Cause.pretty(failure)}`).pipe(
                Effect.annotateLogs({ keyspace: letter.keyspace, key: letter.key })
              )
            )
          )
        }
      })

    const stats: Effect.Effect<CacheStats> = Effect.map(store.info, (info) => {
      storeInfo = info
      const all = [...states.values()]
      const keyspaces: Record<string, KeyspaceStats> = {}
      for (const s of all) keyspaces[s.keyspace.name] = statsOf([s.counters])
      return {
        ...statsOf([globalCounters, ...all.map((s) => s.counters)]),
        keyspaces,
        store: info && { entries: info.entries, bytes: info.bytes, evictions: info.evictions }
      }
    })

    return {
      store,
      clock,
      scope,
      stateOf,
      keyOf,
      read,
      readSync,
      stateNow,
      revalidate,
      load,
      write,
      remove,
      replace,
      hide,
      writeBehind,
      registerPending,
      reportDeadLetter,
      storeFailed,
      invalidateTag,
      invalidateFlights,
      isClosed: () => closed,
      ensureOpen: (op) => (closed ? Effect.fail(new CacheShuttingDown({ op })) : Effect.void),
      stats,
      tagRetention,
      salt
    } satisfies RuntimeService
  })
}

const emptyTags: ReadonlyArray<string> = []

// Schema.is builds a guard per call: keep one per schema.
const guards = new WeakMap<object, (u: unknown) => boolean>()
const isOf = (schema: Keyspace<any, any, any>["value"], u: unknown): boolean => {
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
