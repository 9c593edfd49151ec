/**
 * A history checker for cache coherence, in the spirit of Jepsen/Elle: the
 * operations of several clients on a versioned register per key, each with
 * its invocation and completion time on one monotonic clock, are checked
 * against the one promise a cache must keep.
 *
 * The promise: a read of key k that starts after an acknowledged write or
 * invalidation of k has completed returns a version at least as new as the
 * one that write made the source hold, except within a documented bound
 * (0 for a shared store; the bus delivery bound for TieredStore with its
 * bus; `l1MaxTtl` without). Writes change the source first (version v),
 * then write or invalidate the cache; their completion is the
 * acknowledgement. Writes of one key do not overlap (the workload issues
 * them one at a time; loads overlap everything): two overlapping writes
 * reach the store in either order, and no cache can see the source's
 * versions to order them, so the promise is about loads and reads.
 */

/** One operation as a client saw it. */
export type Operation =
  | {
      readonly type: "write"
      readonly client: string
      readonly key: string
      /** The source's version after this write. */
      readonly version: number
      readonly invokedAt: number
      /** When the write (source and cache) was acknowledged; undefined when it failed or never returned. */
      readonly completedAt: number | undefined
    }
  | {
      readonly type: "read"
      readonly client: string
      readonly key: string
      /** The version the read returned (0: the initial one). */
      readonly version: number
      readonly invokedAt: number
      readonly completedAt: number
    }

/** A read that returned a version older than an acknowledged write before it. */
export interface Violation {
  readonly read: Extract<Operation, { readonly type: "read" }>
  readonly write: Extract<Operation, { readonly type: "write" }>
  /** The operations of that key between the write's acknowledgement and the read's completion. */
  readonly between: ReadonlyArray<Operation>
}

export interface Report {
  readonly operations: number
  readonly reads: number
  readonly writes: number
  readonly violations: ReadonlyArray<Violation>
}

type Write = Extract<Operation, { readonly type: "write" }>

/** A time window (recorder clock) during which the store did not answer. */
export interface Outage {
  readonly from: number
  readonly to: number
}

/**
 * Checks `history` with a staleness bound of `boundMillis`. O(n log n): per
 * key, acknowledged writes sorted by completion with a running maximum of
 * their versions; each read looks up the newest write acknowledged more
 * than `boundMillis` before it started.
 *
 * `outages`: a write acknowledged while the store did not answer reached
 * only its own process (it is journalled and replayed once the store
 * answers); for the other processes it counts as acknowledged at the
 * outage's end, with `outageBoundMillis` (the replay's bound) instead of
 * `boundMillis`.
 */
export const check = (
  history: ReadonlyArray<Operation>,
  boundMillis = 0,
  outages: ReadonlyArray<Outage> = [],
  outageBoundMillis = boundMillis
): Report => {
  const byKey = new Map<string, Array<Operation>>()
  for (const op of history) {
    let ops = byKey.get(op.key)
    if (ops === undefined) byKey.set(op.key, (ops = []))
    ops.push(op)
  }
  const violations: Array<Violation> = []
  let reads = 0
  let writes = 0
  for (const ops of byKey.values()) {
    const acked = ops
      .filter((op): op is Write => op.type === "write" && op.completedAt !== undefined)
      .map((op) => {
        const during = outages.find((o) => op.completedAt! >= o.from && op.completedAt! <= o.to)
        // Shifted so that "acknowledged before start - boundMillis" means
        // "before the outage's end + outageBoundMillis".
        return during === undefined ? op : { ...op, completedAt: during.to + outageBoundMillis - boundMillis }
      })
      .sort((a, b) => a.completedAt! - b.completedAt!)
    writes += ops.filter((op) => op.type === "write").length
    // best[i]: the write with the highest version among acked[0..i].
    const best: Array<Write> = []
    for (let i = 0; i < acked.length; i++) {
      const previous = best[i - 1]
      best.push(previous === undefined || acked[i]!.version > previous.version ? acked[i]! : previous)
    }
    for (const op of ops) {
      if (op.type !== "read") continue
      reads++
      // The last write acknowledged strictly before read start - bound.
      let lo = 0
      let hi = acked.length
      const limit = op.invokedAt - boundMillis
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (acked[mid]!.completedAt! < limit) lo = mid + 1
        else hi = mid
      }
      if (lo === 0) continue
      const newest = best[lo - 1]!
      if (op.version < newest.version) {
        const from = newest.completedAt!
        violations.push({
          read: op,
          write: newest,
          between: ops
            .filter((o) => (o.completedAt ?? o.invokedAt) >= from && o.invokedAt <= op.completedAt)
            .slice(0, 20)
        })
      }
    }
  }
  return { operations: history.length, reads, writes, violations }
}

/** A readable account of a violation: the write, the read, and what happened to that key in between. */
export const describe = (violation: Violation): string => {
  const line = (op: Operation) =>
    `  ${op.client} ${op.type} ${op.key} v${op.version} [${op.invokedAt}, ${op.completedAt ?? "…"}]`
  return [
    `read of ${violation.read.key} returned v${violation.read.version} after v${violation.write.version} was acknowledged:`,
    line(violation.write),
    ...violation.between.filter((o) => o !== violation.write && o !== violation.read).map(line),
    line(violation.read)
  ].join("\n")
}
