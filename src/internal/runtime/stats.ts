/**
 * Counters and metrics: plain numbers that the hit path increments, and the
 * Metric series (one set per runtime) that read them when metrics are exported.
 *
 * @internal
 */
import { Context, Metric } from "effect"
import type { StoreInfo } from "../store.ts"

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
  /** Writes from loads refused because the key was written or invalidated since the load started. */
  fencedWrites = 0
  /** Invalidations the store could not take, journalled to be replayed. */
  journaled = 0
  /** Invalidations that found the journal full (the keyspace then bypasses the cache until a resync). */
  journalOverflows = 0
  /** Write-behind operations queued or being written. */
  writeBehindDepth = 0
  writeBehindWrites = 0
  writeBehindRetries = 0
  writeBehindCoalesced = 0
  writeBehindDeadLetters = 0
  /** Misses of a versioned keyspace where an earlier version still held the key. */
  versionMisses = 0
  /** Different keyspaces seen with this keyspace's name (each bypasses the cache). */
  duplicateKeyspaces = 0
  /** Readers answered from stale at a soft timeout (the load went on). */
  softTimeouts = 0
  /** Readers that stopped waiting at a hard timeout. */
  hardTimeouts = 0
  /** Misses answered from stale because the key's loader rests after a failure. */
  backoffSkips = 0
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
  /**
   * Loads whose result was not stored because the key, one of its tags or
   * its keyspace was written or invalidated (by any process) after the load
   * started: the cache kept the newer state.
   */
  readonly fencedWrites: number
  /**
   * Invalidations the store could not take (down, paused): applied in this
   * process at once, journalled, and replayed in order when it answers.
   */
  readonly journaled: number
  /** Journalled invalidations that found the journal full: the keyspace bypassed the cache until a resync. */
  readonly journalOverflows: number
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
  /**
   * Misses of a keyspace at `version` 2 or more where an earlier version's
   * entry of the same key was still stored (a deploy that changed the
   * Schema): a subset of `misses`.
   */
  readonly versionMisses: number
  /**
   * Keyspace objects with this name but another definition that a runtime
   * met: each bypasses the cache (its keys are `keyErrors`).
   */
  readonly duplicateKeyspaces: number
  /** Readers answered from a stale value at a soft timeout (the load went on in the background). */
  readonly softTimeouts: number
  /** Readers that stopped waiting at a hard timeout (stale value, or `CacheLoadTimeout`). */
  readonly hardTimeouts: number
  /** Reads answered from stale without calling the loader, during a failure backoff. */
  readonly backoffSkips: number
  /** (hits + staleHits) / (hits + staleHits + misses); 0 before any request. */
  readonly hitRate: number
}

/** A snapshot of the runtime's counters, in total and per keyspace. */
export interface CacheStats extends KeyspaceStats {
  readonly keyspaces: Readonly<Record<string, KeyspaceStats>>
  readonly store: StoreInfo | undefined
}

export const statsOf = (counters: ReadonlyArray<Counters>): KeyspaceStats => {
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
    fencedWrites: sum((c) => c.fencedWrites),
    journaled: sum((c) => c.journaled),
    journalOverflows: sum((c) => c.journalOverflows),
    writeBehindQueued: sum((c) => c.writeBehindDepth),
    writeBehindWrites: sum((c) => c.writeBehindWrites),
    writeBehindRetries: sum((c) => c.writeBehindRetries),
    writeBehindCoalesced: sum((c) => c.writeBehindCoalesced),
    writeBehindDeadLetters: sum((c) => c.writeBehindDeadLetters),
    versionMisses: sum((c) => c.versionMisses),
    duplicateKeyspaces: sum((c) => c.duplicateKeyspaces),
    softTimeouts: sum((c) => c.softTimeouts),
    hardTimeouts: sum((c) => c.hardTimeouts),
    backoffSkips: sum((c) => c.backoffSkips),
    hitRate: requests === 0 ? 0 : (hits + staleHits) / requests
  }
}

// Two runtimes in one process (two layers, a test beside the app) with the
// same prefix and keyspace names would replace each other's series (a
// series is identified by name and attributes). So each live runtime of a
// prefix in a registry takes a slot: the first keeps the plain series (what
// a one-runtime process has always exported), the others add a `runtime`
// attribute. Closing a runtime removes only its own series and frees its slot.
const slots = new WeakMap<object, Map<string, Set<number>>>()

const takeSlot = (context: Context.Context<never>, prefix: string): { slot: number; free: () => void } => {
  const registry = Context.get(context, Metric.MetricRegistry)
  let byPrefix = slots.get(registry)
  if (byPrefix === undefined) {
    byPrefix = new Map()
    slots.set(registry, byPrefix)
  }
  let taken = byPrefix.get(prefix)
  if (taken === undefined) {
    taken = new Set()
    byPrefix.set(prefix, taken)
  }
  let slot = 0
  while (taken.has(slot)) slot++
  taken.add(slot)
  const set = taken
  return { slot, free: () => set.delete(slot) }
}

/** The metric series of one runtime; `removeAll` takes them out of the registry. */
export interface Metrics {
  /** This runtime's `runtime` attribute, `undefined` for the first live runtime of its prefix. */
  readonly runtime: string | undefined
  /** A counter read from `get` when exported (no per-request update). */
  readonly counter: (name: string, description: string, attributes: Record<string, string>, get: () => number) => void
  /** A gauge read from `get` when exported. */
  readonly gauge: (name: string, description: string, attributes: Record<string, string>, get: () => number) => void
  /** A real histogram (updated per load, not per hit), removed with the others. */
  readonly histogram: (
    name: string,
    description: string,
    attributes: Record<string, string>,
    boundaries: ReadonlyArray<number>
  ) => Metric.Histogram<number>
  readonly removeAll: () => void
}

/** Series named `<prefix>_<name>`, registered in `context`'s metric registry. */
export const makeMetrics = (prefix: string, context: Context.Context<never>): Metrics => {
  const { slot, free } = takeSlot(context, prefix)
  const runtime = slot === 0 ? undefined : String(slot + 1)
  const registrations: Array<Metric.Registration> = []
  const withRuntime = (attributes: Record<string, string>) =>
    runtime === undefined ? attributes : { ...attributes, runtime }
  return {
    runtime,
    counter: (name, description, attributes, get) => {
      const metric = Metric.counter(`${prefix}_${name}`, {
        description,
        attributes: withRuntime(attributes),
        incremental: true
      })
      registrations.push(
        Metric.registerUnsafe(metric, context, {
          get: () => ({ count: get(), incremental: true }),
          update: () => {},
          modify: () => {}
        })
      )
    },
    gauge: (name, description, attributes, get) => {
      const metric = Metric.gauge(`${prefix}_${name}`, { description, attributes: withRuntime(attributes) })
      registrations.push(
        Metric.registerUnsafe(metric, context, { get: () => ({ value: get() }), update: () => {}, modify: () => {} })
      )
    },
    histogram: (name, description, attributes, boundaries) => {
      const metric = Metric.histogram(`${prefix}_${name}`, {
        description,
        attributes: withRuntime(attributes),
        boundaries
      })
      registrations.push({ remove: () => Metric.removeUnsafe(metric, context) })
      return metric
    },
    removeAll: () => {
      for (const r of registrations) r.remove()
      registrations.length = 0
      free()
    }
  }
}

/** The series of the store's own figures, when it keeps them. */
export const registerStore = (metrics: Metrics, info: StoreInfo): void => {
  metrics.gauge("store_entries", "Entries held by the store", {}, () => info.entries)
  metrics.counter("store_evictions_total", "Entries evicted by the store for capacity", {}, () => info.evictions)
  if (info.fallbackHits !== undefined) {
    metrics.counter(
      "store_fallback_hits_total",
      "Reads answered from the store's last-known-good copy while its backend failed",
      {},
      () => info.fallbackHits ?? 0
    )
  }
}

/** The series of one keyspace's counters. */
export const registerKeyspace = (metrics: Metrics, name: string, counters: Counters): void => {
  const attrs = { keyspace: name }
  const series = (result: string, get: () => number) =>
    metrics.counter("requests_total", "Cache requests by result", { ...attrs, result }, get)
  series("hit", () => counters.hits)
  series("miss", () => counters.misses)
  series("stale", () => counters.staleHits)
  metrics.counter(
    "loads_total",
    "Loader runs",
    { ...attrs, outcome: "success" },
    () => counters.loads - counters.loadFailures
  )
  metrics.counter("loads_total", "Loader runs", { ...attrs, outcome: "failure" }, () => counters.loadFailures)
  metrics.counter("sets_total", "Entries written", attrs, () => counters.sets)
  metrics.counter("deletes_total", "Entries deleted", attrs, () => counters.deletes)
  for (const op of ["get", "set", "delete", "tags"] as const) {
    metrics.counter(
      "store_errors_total",
      "Store failures by operation",
      { ...attrs, op },
      () => counters.storeErrorsByOp[op]
    )
  }
  metrics.counter("decode_errors_total", "Unreadable entries dropped", attrs, () => counters.decodeErrors)
  metrics.counter("encode_errors_total", "Values refused by their Schema on write", attrs, () => counters.encodeErrors)
  metrics.counter(
    "journaled_total",
    "Invalidations journalled while the store did not answer",
    attrs,
    () => counters.journaled
  )
  metrics.counter(
    "journal_overflows_total",
    "Invalidations that found the journal full",
    attrs,
    () => counters.journalOverflows
  )
  metrics.counter(
    "version_misses_total",
    "Misses where an earlier version of the keyspace still held the key",
    attrs,
    () => counters.versionMisses
  )
  metrics.counter(
    "fenced_writes_total",
    "Load results not stored: the key was written or invalidated since the load started",
    attrs,
    () => counters.fencedWrites
  )
  metrics.counter(
    "revalidations_total",
    "Background revalidations",
    { ...attrs, outcome: "success" },
    () => counters.revalidations - counters.revalidationFailures
  )
  metrics.counter(
    "revalidations_total",
    "Background revalidations",
    { ...attrs, outcome: "failure" },
    () => counters.revalidationFailures
  )
  metrics.counter(
    "load_timeouts_total",
    "Readers that stopped waiting for a load",
    { ...attrs, kind: "soft" },
    () => counters.softTimeouts
  )
  metrics.counter(
    "load_timeouts_total",
    "Readers that stopped waiting for a load",
    { ...attrs, kind: "hard" },
    () => counters.hardTimeouts
  )
  metrics.counter(
    "backoff_skips_total",
    "Reads answered from stale while the key's loader rests after a failure",
    attrs,
    () => counters.backoffSkips
  )
  metrics.gauge(
    "write_behind_queue_depth",
    "Write-behind operations queued or being written",
    attrs,
    () => counters.writeBehindDepth
  )
  for (const [outcome, get] of [
    ["success", () => counters.writeBehindWrites],
    ["retry", () => counters.writeBehindRetries],
    ["coalesced", () => counters.writeBehindCoalesced],
    ["dead_letter", () => counters.writeBehindDeadLetters]
  ] as const) {
    metrics.counter("write_behind_total", "Write-behind operations by outcome", { ...attrs, outcome }, get)
  }
}
