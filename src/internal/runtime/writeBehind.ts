/**
 * The write-behind queue: values are cached at once and written to the
 * source later, by one flusher fiber per runtime (owned by `background.ts`). Public signatures and docs
 * live in `Strategy.ts`.
 *
 * **Layout**
 *
 * - `queue`: `Map<storeKey, Pending>`, in the order keys were first queued.
 *   It holds at most one operation per key: a newer `set` or `delete`
 *   replaces the queued one (last write wins), keeping its place in line.
 * - `inFlight`: `Map<storeKey, Pending>`, the operations being written. The
 *   flusher runs one batch at a time and a key appears once per batch, so two
 *   operations of one key never run at the same time: an older write can
 *   never land after a newer one (or resurrect a newer delete).
 * - A failed operation goes back into `queue` with the time of its next
 *   attempt (from the retry `Schedule`), unless a newer operation for its key
 *   is queued: then it is superseded and dropped.
 *
 * This module does not touch the cache store: the strategy writes the cache
 * before queueing, and the runtime decides what a dead letter does to it.
 *
 * @internal
 */
import { Cause, type Clock, Duration, Effect, Exit, Fiber, Latch, Option, Pull, Schedule, Schema } from "effect"
import { CacheShuttingDown } from "../../CacheError.ts"
import { millisOr } from "../duration.ts"
import { positiveInt } from "../numbers.ts"
import { estimateSize } from "../size.ts"
import type { KeyspaceState } from "./keyspaces.ts"

/**
 * The write-behind queue is full: the call was refused, nothing was cached
 * and nothing was queued.
 *
 * **Details**
 *
 * `limit` names the bound that was hit (`maxEntries` or `maxBytes`);
 * `entries` and `bytes` are the queue's size at that moment. An update of a
 * key that is already queued replaces it and needs no new room, so it is
 * refused only when its value is larger than the bytes left.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Strategy } from "cachet"
 * declare const save: Effect.Effect<void, Strategy.WriteBehindQueueFull>
 * const orSlowPath = save.pipe(Effect.catchTag("WriteBehindQueueFull", (e) => Effect.logWarning(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class WriteBehindQueueFull extends Schema.TaggedError<WriteBehindQueueFull>("cachet/WriteBehindQueueFull")(
  "WriteBehindQueueFull",
  {
    keyspace: Schema.String,
    key: Schema.String,
    limit: Schema.Literals(["maxEntries", "maxBytes"]),
    entries: Schema.Number,
    bytes: Schema.Number
  }
) {
  override get message(): string {
    return `write-behind queue full (${this.limit}: ${this.entries} entries, ${this.bytes} bytes); ${this.key} was not queued`
  }
}

/** A write that could not be made: reported to `onDeadLetter`. */
export interface DeadLetter {
  readonly keyspace: string
  readonly key: string
  readonly params: unknown
  readonly op: "set" | "delete"
  /** The value of a `set`; `undefined` for a `delete`. */
  readonly value: unknown
  /** Attempts made (0 when shutdown came before the first). */
  readonly attempts: number
  /** `RetriesExhausted`: the retry schedule gave up. `Shutdown`: the layer closed before it could be written. */
  readonly reason: "RetriesExhausted" | "Shutdown"
  /** The last failure (or the interruption at shutdown). */
  readonly cause: Cause.Cause<unknown>
}

/** Options of write-behind, from `Cachet.layer({ writeBehind })`. */
export interface WriteBehindOptions {
  /** Most operations queued or being written. Default 10,000. */
  readonly maxEntries?: number | undefined
  /** Most bytes of queued values (measured with `sizeOf`). Default 64 MiB. */
  readonly maxBytes?: number | undefined
  /** Size of a value in bytes. Default: a structural estimate. Called once per queued write. */
  readonly sizeOf?: ((value: unknown) => number) | undefined
  /** Most operations written per batch. A batch starts early when this many are queued. Default 100. */
  readonly batchSize?: number | undefined
  /** Writers run at once within a batch. Default 8. */
  readonly concurrency?: number | undefined
  /** How long a write waits (and coalesces with later writes of its key) before it is attempted. Default 1 second. */
  readonly flushInterval?: Duration.Input | undefined
  /** When to try a failed write again; its input is the failure. Default: 5 retries, exponential from 100 ms. */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /** On close, how long to keep writing what is queued. Default 10 seconds. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** Called with every write that could not be made. Failures of the callback are logged. */
  readonly onDeadLetter?: ((letter: DeadLetter) => Effect.Effect<void>) | undefined
}

/** One queued operation. */
export interface Pending {
  readonly state: KeyspaceState
  readonly key: string
  readonly params: unknown
  readonly op: "set" | "delete"
  readonly value: unknown
  /** The writer, with the caller's context already provided. */
  readonly writer: Effect.Effect<unknown, unknown>
  readonly bytes: number
  /** Order of acknowledgement; `flush` waits for everything up to its call's. */
  seq: number
  /** When the next attempt is due (epoch ms). */
  dueAt: number
  attempts: number
  step: ((now: number, input: unknown) => Pull.Pull<[unknown, Duration.Duration], unknown, unknown>) | undefined
  lastCause: Cause.Cause<unknown> | undefined
}

/** What the runtime does when an operation settles. */
export interface Hooks {
  readonly written: (pending: Pending) => void
  readonly deadLetter: (
    pending: Pending,
    cause: Cause.Cause<unknown>,
    reason: DeadLetter["reason"]
  ) => Effect.Effect<void>
  /** Many operations given up at once (shutdown): reported together, logged per keyspace. */
  readonly deadLetters: (
    left: ReadonlyArray<readonly [Pending, Cause.Cause<unknown>]>,
    reason: DeadLetter["reason"]
  ) => Effect.Effect<void>
  /** Wraps one batch's writes (the `cachet.writeBehind.flush` span), unless tracing is off. */
  readonly flushSpan?: (<A, E, R>(size: number, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) | undefined
}

/** The queue, as the runtime and strategies use it. */
export interface WriteBehindQueue {
  /** Queues an operation; returns why not when it was refused. */
  readonly offer: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    op: "set" | "delete",
    value: unknown,
    writer: Effect.Effect<unknown, unknown>
  ) => WriteBehindQueueFull | CacheShuttingDown | undefined
  /** The newest operation of `key` not yet written, if any. */
  readonly pending: (key: string) => Pending | undefined
  /** Whether anything is queued or being written. Cheap: the load path checks it. */
  readonly isEmpty: () => boolean
  /** Writes what is queued now; resolves when each is written, dead-lettered or superseded. */
  readonly flush: Effect.Effect<void>
  /** Refuses new operations, writes what is queued within `shutdownTimeout`, dead-letters the rest. */
  readonly shutdown: Effect.Effect<void>
}

export interface Resolved {
  readonly maxEntries: number
  readonly maxBytes: number
  readonly sizeOf: (value: unknown) => number
  readonly batchSize: number
  readonly concurrency: number
  readonly flushInterval: number
  readonly retry: Schedule.Schedule<unknown, unknown>
  readonly shutdownTimeout: number
  readonly onDeadLetter: ((letter: DeadLetter) => Effect.Effect<void>) | undefined
}

const optionError = (option: string, message: string): never => {
  throw new Error(`cachet: Cachet.layer option "writeBehind.${option}" ${message}`)
}

const SUBJECT = "Cachet.layer"
const positiveInteger = (option: string, value: number | undefined, fallback: number): number =>
  positiveInt(SUBJECT, `writeBehind.${option}`, value, fallback)
const millis = (option: string, input: Duration.Input | undefined, fallback: number): number =>
  millisOr(SUBJECT, `writeBehind.${option}`, input, fallback, { allowZero: true })

/** The default retry: 5 retries, 100 ms, 200 ms, 400 ms, 800 ms, 1.6 s. */
const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.upTo({ times: 5 })
)

/** Validates options; throws naming the option. */
export const resolveOptions = (options: WriteBehindOptions | undefined): Resolved => {
  const retry = options?.retry ?? defaultRetry
  if (!Schedule.isSchedule(retry)) optionError("retry", "must be a Schedule")
  if (options?.sizeOf !== undefined && typeof options.sizeOf !== "function") {
    optionError("sizeOf", "must be a function")
  }
  if (options?.onDeadLetter !== undefined && typeof options.onDeadLetter !== "function") {
    optionError("onDeadLetter", "must be a function")
  }
  return {
    maxEntries: positiveInteger("maxEntries", options?.maxEntries, 10_000),
    maxBytes: positiveInteger("maxBytes", options?.maxBytes, 64 * 1024 * 1024),
    sizeOf: options?.sizeOf ?? estimateSize,
    batchSize: positiveInteger("batchSize", options?.batchSize, 100),
    concurrency: positiveInteger("concurrency", options?.concurrency, 8),
    flushInterval: millis("flushInterval", options?.flushInterval, 1_000),
    retry,
    shutdownTimeout: millis("shutdownTimeout", options?.shutdownTimeout, 10_000),
    onDeadLetter: options?.onDeadLetter
  }
}

/**
 * Builds the queue. Nothing runs until the first `offer`: the flusher fiber
 * is started then, so a runtime that never uses write-behind pays nothing.
 */
export const make = (
  options: Resolved,
  clock: Clock.Clock,
  forkWorker: (flusher: Effect.Effect<never>) => Fiber.Fiber<never>,
  hooks: Hooks
): WriteBehindQueue => {
  const queue = new Map<string, Pending>()
  const inFlight = new Map<string, Pending>()
  let live = 0
  let liveBytes = 0
  let seq = 0
  // Entries with `seq <= flushTarget` are due now, whatever their interval.
  let flushTarget = 0
  let closing = false
  let flusher: Fiber.Fiber<never> | undefined
  // Opened to wake the flusher; it closes it before each scan, so a signal
  // that arrives during a scan is not lost.
  const wake = Latch.makeUnsafe(false)
  // When the flusher wakes on its own (epoch ms); -Infinity while it works.
  let wakesAt = Number.NEGATIVE_INFINITY
  const waiters: Array<{ readonly target: number; readonly done: Latch.Latch }> = []

  const settledUpTo = (target: number): boolean => {
    for (const p of queue.values()) if (p.seq <= target) return false
    for (const p of inFlight.values()) if (p.seq <= target) return false
    return true
  }

  const checkWaiters = () => {
    if (waiters.length === 0) return
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i]!
      if (settledUpTo(waiter.target)) {
        waiters.splice(i, 1)
        waiter.done.openUnsafe()
      }
    }
  }

  const awaitSettled = (target: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (settledUpTo(target)) return Effect.void
      const done = Latch.makeUnsafe(false)
      const waiter = { target, done }
      waiters.push(waiter)
      return done.await.pipe(
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            const i = waiters.indexOf(waiter)
            if (i !== -1) waiters.splice(i, 1)
          })
        )
      )
    })

  /** An operation leaves the queue for good (written, dead, superseded). */
  const settle = (p: Pending) => {
    if (inFlight.get(p.key) === p) inFlight.delete(p.key)
    if (queue.get(p.key) === p) queue.delete(p.key)
    live--
    liveBytes -= p.bytes
    p.state.counters.writeBehindDepth--
    checkWaiters()
  }

  /** `p` failed and a newer operation of its key is queued: drop `p`. */
  const supersede = (p: Pending, newer: Pending) => {
    // flush() waiting for `p` now waits for what replaced it.
    if (p.seq < newer.seq) newer.seq = p.seq
    p.state.counters.writeBehindCoalesced++
    settle(p)
  }

  /** The delay before the next attempt, or `undefined` when the schedule is done. */
  const nextDelay = (p: Pending, cause: Cause.Cause<unknown>): Effect.Effect<number | undefined> =>
    Effect.gen(function* () {
      if (p.step === undefined) p.step = yield* Schedule.toStep(options.retry)
      const step = p.step
      return yield* Pull.matchEffect(step(clock.currentTimeMillisUnsafe(), Cause.squash(cause)), {
        onSuccess: ([, delay]) => Effect.succeed(Duration.toMillis(delay)),
        onDone: () => Effect.undefined,
        // A schedule that fails gives up.
        onFailure: () => Effect.undefined
      })
    })

  const attempt = (p: Pending): Effect.Effect<void> =>
    Effect.flatMap(Effect.exit(p.writer), (exit): Effect.Effect<void> => {
      p.attempts++
      if (Exit.isSuccess(exit)) {
        settle(p)
        hooks.written(p)
        return Effect.void
      }
      p.lastCause = exit.cause
      const newer = queue.get(p.key)
      if (newer !== undefined) {
        supersede(p, newer)
        return Effect.void
      }
      return Effect.flatMap(nextDelay(p, exit.cause), (delay) => {
        if (delay === undefined) {
          settle(p)
          return hooks.deadLetter(p, exit.cause, "RetriesExhausted")
        }
        const newer = queue.get(p.key)
        if (newer !== undefined) {
          supersede(p, newer)
          return Effect.void
        }
        // Back in line, due after the delay. It stays in `inFlight` until
        // now, so a read never sees the key without its pending value.
        p.dueAt = clock.currentTimeMillisUnsafe() + delay
        inFlight.delete(p.key)
        queue.set(p.key, p)
        p.state.counters.writeBehindRetries++
        return Effect.void
      })
    })

  const flushLoop: Effect.Effect<never> = Effect.gen(function* () {
    while (true) {
      wake.closeUnsafe()
      const now = clock.currentTimeMillisUnsafe()
      const bySize = queue.size >= options.batchSize
      const batch: Array<Pending> = []
      let nextDue = Number.POSITIVE_INFINITY
      for (const p of queue.values()) {
        const due = p.dueAt <= now || (p.attempts === 0 && (bySize || p.seq <= flushTarget))
        // No check against `inFlight`: the scan runs between batches, and a
        // batch settles all it took (written, dead, superseded, or back in
        // `queue`), so nothing is in flight here.
        if (due) {
          batch.push(p)
          if (batch.length === options.batchSize) break
        } else if (p.dueAt < nextDue) {
          nextDue = p.dueAt
        }
      }
      if (batch.length === 0) {
        wakesAt = nextDue
        if (nextDue === Number.POSITIVE_INFINITY) yield* wake.await
        else yield* Effect.raceFirst(wake.await, Effect.sleep(nextDue - now))
        continue
      }
      wakesAt = Number.NEGATIVE_INFINITY
      for (const p of batch) {
        queue.delete(p.key)
        inFlight.set(p.key, p)
      }
      const writes = Effect.forEach(batch, attempt, { concurrency: options.concurrency, discard: true })
      yield* hooks.flushSpan === undefined ? writes : hooks.flushSpan(batch.length, writes)
    }
  })

  const offer: WriteBehindQueue["offer"] = (state, key, params, op, value, writer) => {
    if (closing) return new CacheShuttingDown({ op: op === "set" ? "writeBehind" : "deleteBehind" })
    const bytes = op === "set" ? options.sizeOf(value) + 2 * key.length : 2 * key.length
    const existing = queue.get(key)
    const entries = live + (existing === undefined ? 1 : 0)
    const total = liveBytes - (existing?.bytes ?? 0) + bytes
    if (entries > options.maxEntries || total > options.maxBytes) {
      return new WriteBehindQueueFull({
        keyspace: state.keyspace.name,
        key,
        limit: entries > options.maxEntries ? "maxEntries" : "maxBytes",
        entries: live,
        bytes: liveBytes
      })
    }
    const now = clock.currentTimeMillisUnsafe()
    const pending: Pending = {
      state,
      key,
      params,
      op,
      value,
      writer,
      bytes,
      // A coalesced operation keeps its place, its flush order and its due
      // time (a key waiting for a retry keeps waiting).
      seq: existing === undefined ? ++seq : existing.seq,
      dueAt: existing === undefined ? now + options.flushInterval : existing.dueAt,
      attempts: 0,
      step: undefined,
      lastCause: undefined
    }
    if (existing !== undefined) {
      // Replaced in place (`Map.set` on a present key keeps its position).
      existing.state.counters.writeBehindCoalesced++
      existing.state.counters.writeBehindDepth--
      live--
      liveBytes -= existing.bytes
    }
    queue.set(key, pending)
    live++
    liveBytes += bytes
    state.counters.writeBehindDepth++
    if (flusher === undefined) {
      flusher = forkWorker(flushLoop)
    } else if (pending.dueAt < wakesAt || queue.size >= options.batchSize) {
      wake.openUnsafe()
    }
    return undefined
  }

  const pending = (key: string): Pending | undefined => queue.get(key) ?? inFlight.get(key)

  const flush: Effect.Effect<void> = Effect.suspend(() => {
    if (live === 0) return Effect.void
    flushTarget = seq
    wake.openUnsafe()
    return awaitSettled(seq)
  })

  const shutdown: Effect.Effect<void> = Effect.suspend(() => {
    closing = true
    const fiber = flusher
    if (fiber === undefined) return Effect.void
    // Everything is due now: the first attempt without its interval, and
    // one immediate retry of what waits for its backoff; then the retry
    // schedule applies, until the deadline.
    flushTarget = Number.POSITIVE_INFINITY
    const now = clock.currentTimeMillisUnsafe()
    for (const p of queue.values()) p.dueAt = Math.min(p.dueAt, now)
    wake.openUnsafe()
    return Effect.timeoutOption(awaitSettled(Number.POSITIVE_INFINITY), options.shutdownTimeout).pipe(
      Effect.flatMap((done) =>
        Effect.andThen(
          Fiber.interrupt(fiber),
          Option.isSome(done)
            ? Effect.void
            : Effect.suspend(() => {
                // What is left: one letter per key, for its newest operation
                // (an older one being written is superseded by it).
                const left: Array<Pending> = []
                for (const p of [...inFlight.values()]) {
                  const newer = queue.get(p.key)
                  if (newer !== undefined) supersede(p, newer)
                  else left.push(p)
                }
                left.push(...queue.values())
                for (const p of left) settle(p)
                return hooks.deadLetters(
                  left.map((p) => [p, p.lastCause ?? Cause.interrupt()] as const),
                  "Shutdown"
                )
              })
        )
      )
    )
  })

  return { offer, pending, isEmpty: () => live === 0, flush, shutdown }
}
