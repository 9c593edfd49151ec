/**
 * Single-flight: concurrent misses of one key run the loader once, in a fiber
 * owned by the layer (not the caller), and store its result unless invalidated.
 *
 * @internal
 */
import { Cause, type Clock, type Context, Effect, Exit, Fiber, Option } from "effect"
import { CacheLoadTimeout, type CacheStoreError } from "../../CacheError.ts"
import type { LoadLease } from "../loadLease.ts"
import type { Warn } from "../warn.ts"
import type { Background } from "./background.ts"
import type { Backoff } from "./backoff.ts"
import { type BatchWrite, type Entries, FRESH, isOf, type WriteError } from "./entries.ts"
import type { KeyspaceState } from "./keyspaces.ts"
import { type Observe, whenTraced } from "./observe.ts"
import type { Policy } from "./policy.ts"

/** The outcome of one load: the loader's exit, and a store failure on write. */
export interface FlightResult {
  readonly exit: Exit.Exit<unknown, unknown>
  readonly storeError: CacheStoreError | undefined
  /**
   * Set when this caller stopped waiting at a timeout (the exit is then a
   * `CacheLoadTimeout`): `"soft"` (the load goes on in the background) or
   * `"hard"`.
   */
  readonly timedOut?: "soft" | "hard" | undefined
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

interface Flight {
  /** The load's result, once done; `undefined` while it runs. */
  result: FlightResult | undefined
  /** The fibers waiting for `result` (their `Effect.callback` resumes). */
  resumes: Array<(answer: Effect.Effect<FlightResult>) => void> | undefined
  /**
   * Waits for `result`, counting this caller among the waiters while it
   * waits; an interrupted waiter leaves (the last one out stops the load).
   * One effect per flight, shared by all its waiters: a waiter costs one
   * resume in `resumes`, like a waiter of effect's `Cache`.
   */
  readonly join: Effect.Effect<FlightResult>
  /** Waits for `result` without counting as a waiter (for `boundedAwait`, which counts itself). */
  readonly await: Effect.Effect<FlightResult>
  waiters: number
  fiber: Fiber.Fiber<unknown> | undefined
  /** Set when the key is invalidated during the load: its result is not stored. */
  invalidated: boolean
  /**
   * A background reload (revalidation, refresh): nobody started it by
   * waiting, so it is not stopped when the callers that joined it leave.
   */
  readonly background: boolean
  /** The store's clock when the load started (see `loadStart`). */
  since: number | null | undefined
  /** Set when the store refused the load's write (a newer write or invalidation): the span's result. */
  fenced: boolean
  /** Set at a soft timeout: the load goes on when its waiters leave. */
  detached: boolean
  /** The batch this flight is part of (`loadMany`), if any. */
  group: Group | undefined
}

/** The flights of one batch load: its fiber is stopped when none of them has a waiter. */
interface Group {
  fiber: Fiber.Fiber<unknown> | undefined
  live: number
}

type Loader = Effect.Effect<unknown, unknown, unknown>

/** One load's inputs (`runLoad`), and its start on this process's clock. */
interface LoadJob {
  readonly state: KeyspaceState
  readonly key: string
  readonly params: unknown
  readonly loader: Loader
  readonly flight: Flight
  readonly policy: Policy
  readonly leased: boolean
  readonly startedAt: number
}

/** One key of a batch load. */
export interface BatchItem {
  readonly key: string
  readonly params: unknown
}

/**
 * Loads the values of many parameters in one call: one exit per parameter,
 * aligned with them.
 */
export type BatchLoader = (
  params: ReadonlyArray<unknown>
) => Effect.Effect<ReadonlyArray<Exit.Exit<unknown, unknown>>, never, unknown>

export interface Flights {
  /**
   * `policy` (default the keyspace's) gives the lifetimes of what is stored
   * and the timeouts of this caller's wait; a soft timeout applies only
   * when `staleFallback` (a stale value can answer: an entry exists but is
   * not fresh, which is also the load span's `cachet.result` "stale").
   */
  readonly load: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    loader: Loader,
    policy?: Policy,
    staleFallback?: boolean
  ) => Effect.Effect<FlightResult>
  /**
   * Loads many keys with one batch loader call: keys with a load in flight
   * join it; the others become flights of one batch, so that other callers
   * join them; their results are written in one batched, fenced store call.
   * One result per item, aligned.
   */
  readonly loadMany: (
    state: KeyspaceState,
    items: ReadonlyArray<BatchItem>,
    loader: BatchLoader,
    policy: Policy
  ) => Effect.Effect<Array<FlightResult>>
  readonly revalidate: (
    state: KeyspaceState,
    key: string,
    params: unknown,
    loader: Loader,
    policy?: Policy
  ) => Effect.Effect<void, never, unknown> | undefined
  readonly invalidate: (keyOrPrefix: string, exact: boolean) => void
  /** Marks in-flight loads under `prefix` whose key part after it `covers` (pattern invalidation). */
  readonly invalidateWhere: (prefix: string, covers: (keyPart: string) => boolean) => void
  /** At close: releases whoever still waits on a flight whose load was interrupted before it started. */
  readonly releaseAll: () => void
}

export interface Deps {
  readonly clock: Clock.Clock
  readonly context: Context.Context<never>
  readonly background: Background
  readonly entries: Entries
  readonly warn: Warn
  /** Cluster-wide single flight, when a lease service is provided. */
  readonly lease: LoadLease["Service"] | undefined
  readonly isClosed: () => boolean
  /** Whether any write is queued for the source (cheap: checked on every load). */
  readonly hasPending: () => boolean
  /** The newest write of `key` queued for the source, if any. */
  readonly pendingWrite: (key: string) => PendingWrite | undefined
  /** The store's clock, when the store orders writes on it (`CacheStore.time`). */
  readonly storeTime: ((key: string) => Effect.Effect<number, CacheStoreError>) | undefined
  /** Classifies a miss of a versioned keyspace (see `versions.ts`); never delays the load. */
  readonly probeVersions?: ((state: KeyspaceState, key: string) => Effect.Effect<void>) | undefined
  /** Spans and events. */
  readonly observe: Observe
  readonly backoff: Backoff
}

export const make = ({
  clock,
  context,
  background,
  entries,
  warn,
  lease,
  isClosed,
  hasPending,
  pendingWrite,
  storeTime,
  probeVersions,
  observe,
  backoff
}: Deps): Flights => {
  const flights = new Map<string, Flight>()
  const { write, writeMany, read, stateNow, storeFailed } = entries

  /**
   * The store's clock before the load starts: its write is ordered there,
   * and refused if anything wrote or invalidated the key since (any
   * process). `null` when it cannot be read: the result is then not stored.
   * Only misses pay it (one round trip before the loader); never a hit.
   */
  const loadStart = (state: KeyspaceState, key: string): Effect.Effect<number | null | undefined> =>
    storeTime === undefined
      ? Effect.undefined
      : storeTime(key).pipe(Effect.catch((error) => Effect.as(storeFailed(state, "get", error), null)))

  const load: Flights["load"] = (state, key, params, loader, policy, staleFallback) =>
    Effect.suspend(() => {
      // Joining a load in flight without a timeout (a stampede's 999 other
      // callers): one shared effect, no mask. Registering as a waiter is one
      // synchronous step of the join itself: a caller interrupted before it
      // never counted. (The caller that starts a load takes `wait` below,
      // inside the mask: it must count before it can be interrupted, or
      // the load would run on with nobody to stop it.)
      if (!isClosed()) {
        const existing = flights.get(key)
        if (existing !== undefined) {
          const p = policy ?? state.policy
          if (p.hard === undefined && (staleFallback !== true || p.soft === undefined)) return existing.join
        }
      }
      return startOrWait(state, key, params, loader, policy, staleFallback)
    })

  const startOrWait = (
    state: KeyspaceState,
    key: string,
    params: unknown,
    loader: Loader,
    policy: Policy | undefined,
    staleFallback: boolean | undefined
  ): Effect.Effect<FlightResult> =>
    // Forking the load and registering as its waiter happen without an
    // interruption point between them; only the wait itself is
    // interruptible. Otherwise a caller interrupted right after the fork
    // would leave a load that nobody waits on and nobody stops.
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        // Closing: no cache to fill; the loader answers.
        if (isClosed()) {
          return Effect.map(restore(Effect.exit(loader)), (exit) => ({
            exit,
            storeError: undefined
          })) as Effect.Effect<FlightResult>
        }
        const p = policy ?? state.policy
        const soft = staleFallback === true ? p.soft : undefined
        const hard = p.hard
        const existing = flights.get(key)
        if (existing !== undefined) return wait(existing, key, restore, state, soft, hard)
        const created = startFlight(state, key, params, loader, false, p, staleFallback === true)
        // The load runs in a fiber of the layer's scope, not the caller's:
        // a caller's interruption must not cancel a load others wait on.
        return Effect.flatMap(background.fork(created.run, true), (fiber) => {
          created.flight.fiber = fiber
          return wait(created.flight, key, restore, state, soft, hard)
        })
      })
    )

  // The span of a load or reload (unless tracing is off, or no tracing backend is
  // installed: `whenTraced`): started in the
  // load's fiber, whose context is the caller's, so its parent is the
  // caller's span. `cachet.result`: "miss" or "stale" (what the caller
  // found), or "fenced" when the store refused the write.
  const traced = (
    state: KeyspaceState,
    key: string,
    flight: Flight,
    stale: boolean,
    run: Effect.Effect<FlightResult>
  ): Effect.Effect<FlightResult> => {
    if (observe.tracing === "off") return run
    return whenTraced(run, () => {
      const attributes = observe.attributes(state, key)
      // The span ends with the loader's failure (its status in an exporter),
      // while the flight itself still answers with the result.
      let result: FlightResult | undefined
      // withSpan, not useSpan, to turn off the call-site stack trace: it
      // would point into this file, and costs a `new Error()` per load (10% of
      // a miss on the profile).
      return Effect.withSpan(
        Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) =>
          Effect.flatMap(run, (r) => {
            result = r
            span.attribute("cachet.result", flight.fenced ? "fenced" : stale ? "stale" : "miss")
            return Exit.isFailure(r.exit) ? Effect.failCause(r.exit.cause) : Effect.succeed(r)
          })
        ),
        flight.background ? "cachet.revalidate" : "cachet.load",
        { attributes, captureStackTrace: false }
      ).pipe(
        Effect.catchCause((cause) =>
          result === undefined ? Effect.failCause(cause as Cause.Cause<never>) : Effect.succeed(result)
        )
      )
    })
  }

  const newFlight = (key: string, isBackground: boolean, group: Group | undefined): Flight => {
    // A waiter interrupted while registered: its resume stays in `resumes`
    // (resuming an interrupted callback is a no-op) and is dropped when the
    // flight completes; no per-waiter cleanup to allocate.
    const leave = Effect.suspend(() => {
      flight.waiters--
      if (flight.waiters > 0 || flight.background || flight.detached) return Effect.void
      return abandon(flight, key)
    })
    const flight: Flight = {
      result: undefined,
      resumes: undefined,
      join: Effect.callback<FlightResult>((resume) => {
        if (flight.result !== undefined) return resume(Effect.succeed(flight.result))
        flight.waiters++
        ;(flight.resumes ??= []).push(resume)
        return leave
      }),
      await: Effect.callback<FlightResult>((resume) => {
        if (flight.result !== undefined) return resume(Effect.succeed(flight.result))
        ;(flight.resumes ??= []).push(resume)
      }),
      waiters: 0,
      fiber: undefined,
      invalidated: false,
      background: isBackground,
      since: undefined,
      detached: false,
      group,
      fenced: false
    }
    return flight
  }

  /** Completes a flight (once; later calls are ignored) and resumes its waiters. */
  const complete = (flight: Flight, result: FlightResult): void => {
    if (flight.result !== undefined) return
    flight.result = result
    const resumes = flight.resumes
    if (resumes === undefined) return
    // Cleared before resuming, as Deferred does: a waiter resumed
    // synchronously must not see (or change) the list mid-iteration.
    flight.resumes = undefined
    const answer = Exit.succeed(result)
    for (let i = 0; i < resumes.length; i++) resumes[i]!(answer)
  }

  const startFlight = (
    state: KeyspaceState,
    key: string,
    params: unknown,
    loader: Loader,
    isBackground: boolean,
    policy: Policy,
    stale: boolean
  ) => {
    const flight = newFlight(key, isBackground, undefined)
    flights.set(key, flight)
    const run = traced(state, key, flight, stale, runLoad(state, key, params, loader, flight, policy)).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (flights.get(key) === flight) flights.delete(key)
          complete(flight, Exit.isSuccess(exit) ? exit.value : { exit, storeError: undefined })
        })
      )
    )
    return { flight, run }
  }

  const revalidate: Flights["revalidate"] = (state, key, params, loader, policy) => {
    // Deduplicated per key: any load of the key in flight (foreground or
    // background) will refresh the entry; nothing to start.
    if (isClosed() || flights.has(key)) return undefined
    // Registering the flight and forking it happen in one uninterruptible
    // step: a reader interrupted in between must not leave a flight that
    // never runs (later readers would wait on it). Not started immediately:
    // the reader that triggered it gets its value first; the reload runs in
    // the layer's scope with the reader's context.
    return Effect.uninterruptible(
      Effect.suspend(() => {
        if (isClosed() || flights.has(key)) return Effect.void
        const created = startFlight(state, key, params, loader, true, policy ?? state.policy, true)
        return Effect.map(background.fork(created.run, false), (fiber) => {
          created.flight.fiber = fiber
        })
      })
    )
  }

  /**
   * Waits on a flight, bounded by `soft` (the load is detached and goes on)
   * and `hard`. Timers are Effect's `Clock` (`Effect.timeoutOption`).
   */
  const boundedAwait = (
    flight: Flight,
    state: KeyspaceState,
    soft: number | undefined,
    hard: number | undefined
  ): Effect.Effect<FlightResult> => {
    const awaited = flight.await
    if (soft === undefined && hard === undefined) return awaited
    const first = soft ?? hard!
    return Effect.flatMap(Effect.timeoutOption(awaited, first), (result): Effect.Effect<FlightResult> => {
      if (Option.isSome(result)) return Effect.succeed(result.value)
      if (soft !== undefined) {
        // Answered from stale now; the load finishes in the layer's scope
        // and stores its result (fenced) when done.
        flight.detached = true
        state.counters.softTimeouts++
        return Effect.succeed({
          exit: Exit.fail(new CacheLoadTimeout({ keyspace: state.keyspace.name, after: soft })),
          storeError: undefined,
          timedOut: "soft"
        })
      }
      state.counters.hardTimeouts++
      return Effect.succeed({
        exit: Exit.fail(new CacheLoadTimeout({ keyspace: state.keyspace.name, after: hard! })),
        storeError: undefined,
        timedOut: "hard"
      })
    })
  }

  const wait = (
    flight: Flight,
    key: string,
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
    state: KeyspaceState,
    soft?: number,
    hard?: number
  ): Effect.Effect<FlightResult> => {
    flight.waiters++
    return restore(boundedAwait(flight, state, soft, hard)).pipe(
      Effect.onExit((exit) =>
        Effect.suspend(() => {
          flight.waiters--
          const left = Exit.isFailure(exit) || exit.value.timedOut !== undefined
          if (!left || flight.waiters > 0 || flight.background || flight.detached) return Effect.void
          return abandon(flight, key)
        })
      )
    )
  }

  /**
   * The last waiter left: stop the load. It no longer serves new callers
   * (they start their own) and its result is not stored. A flight of a
   * batch stops the batch when it was the batch's last one waited on.
   */
  const abandon = (flight: Flight, key: string): Effect.Effect<void> => {
    const group = flight.group
    const fiber = group === undefined ? flight.fiber : group.fiber
    if (fiber === undefined) return Effect.void
    flight.invalidated = true
    if (flights.get(key) === flight) flights.delete(key)
    if (group !== undefined && --group.live > 0) return Effect.void
    return Effect.asVoid(Fiber.interrupt(fiber))
  }

  // A chain of steps rather than `Effect.gen`: a generator with three
  // yields cost ~0.75-1.2 us more than the same flatMaps here, about a tenth
  // of a memory miss.
  const runLoad = (
    state: KeyspaceState,
    key: string,
    params: unknown,
    loader: Loader,
    flight: Flight,
    policy: Policy,
    leased = false
  ): Effect.Effect<FlightResult> =>
    Effect.suspend(() => {
      const job: LoadJob = {
        state,
        key,
        params,
        loader,
        flight,
        policy,
        leased,
        startedAt: clock.currentTimeMillisUnsafe()
      }
      const afterProbe = () =>
        leased
          ? loadSince(job, flight.since)
          : Effect.flatMap(loadStart(state, key), (since) => {
              flight.since = since
              return loadSince(job, since)
            })
      // A miss (not a reload) of a versioned keyspace: was it the deploy?
      if (state.olderNamespaces !== undefined && !flight.background && !leased && probeVersions !== undefined) {
        return Effect.flatMap(probeVersions(state, key), afterProbe)
      }
      return afterProbe()
    })

  const storeErrorOf = (error: WriteError | undefined): CacheStoreError | undefined =>
    error?._tag === "CacheStoreError" ? error : undefined

  /** `runLoad` once the load's start on the store's clock (`since`) is known. */
  const loadSince = (job: LoadJob, since: number | null | undefined): Effect.Effect<FlightResult> => {
    const { state, key, params, loader, flight, policy, leased, startedAt } = job
    const stillValid = () => !flight.invalidated
    const onFenced = () => {
      flight.fenced = true
    }
    // The load's write: fenced at its start, with the call's policy.
    const writeLoaded = (value: unknown, negative: boolean) =>
      write(state, key, params, value, startedAt, negative, stillValid, since, policy, onFenced)
    // Write-behind: a key with a queued write answers with that value
    // (the source does not have it yet); one with a queued delete loads,
    // but its value is not stored. Free when nothing is queued.
    let keep = true
    if (hasPending()) {
      const pending = pendingWrite(key)
      if (pending?.op === "set") {
        const exit = Exit.succeed(pending.value)
        if (flight.invalidated) return Effect.succeed({ exit, storeError: undefined })
        return Effect.map(writeLoaded(pending.value, false), (error) => ({ exit, storeError: storeErrorOf(error) }))
      }
      if (pending !== undefined) keep = false
    }
    const runLoader = (): Effect.Effect<FlightResult> => {
      const started = clock.currentTimeNanosUnsafe()
      // The loader's requirements are the caller's context, which the load's fiber runs in.
      return Effect.flatMap(
        Effect.exit(loader as Effect.Effect<unknown, unknown>),
        (exit): Effect.Effect<FlightResult> => {
          const failed = recordLoad(state, key, flight.background, started, exit)
          if (flight.background) {
            state.counters.revalidations++
            if (failed && exit._tag === "Failure") {
              // The stale (or still fresh) entry stays; the next reader past
              // its refresh point or in its stale window tries again.
              state.counters.revalidationFailures++
              // The stale value answered this failure: with a failure backoff,
              // the key's loader rests.
              if (policy.failureBackoff !== undefined) backoff.rest(key, policy.failureBackoff)
              return Effect.as(
                warn(
                  `revalidate:${state.keyspace.name}`,
                  `cachet: background reload failed; keeping the cached value: ${Cause.pretty(exit.cause)}`,
                  { keyspace: state.keyspace.name, key }
                ),
                { exit, storeError: undefined }
              )
            }
          }
          if (flight.invalidated || !keep) {
            // Invalidated (or written) in this process while loading: not stored.
            if (flight.invalidated) flight.fenced = true
            return Effect.succeed({ exit, storeError: undefined })
          }
          if (Exit.isSuccess(exit)) {
            return Effect.map(writeLoaded(exit.value, false), (error) => ({ exit, storeError: storeErrorOf(error) }))
          }
          if (state.keyspace.negative !== undefined) {
            const failure = Cause.findErrorOption(exit.cause)
            if (Option.isSome(failure) && isOf(state.keyspace.negative.error, failure.value)) {
              return Effect.map(writeLoaded(failure.value, true), (error) => ({
                exit,
                storeError: storeErrorOf(error)
              }))
            }
          }
          return Effect.succeed({ exit, storeError: undefined })
        }
      )
    }
    // Cluster-wide single flight: the loader (and the write of its
    // result) runs under the key's lease, or the value another process
    // stored answers. Keyspaces without it pay one property read.
    const cluster = state.keyspace.singleFlight
    if (cluster !== undefined && !leased) {
      if (lease !== undefined) {
        return lease.run(
          key,
          cluster,
          runLoad(state, key, params, loader, flight, policy, true),
          polled(state, key, flight.background)
        )
      }
      return Effect.flatMap(
        warn(
          `lease:${state.keyspace.name}`,
          `cachet: keyspace ${state.keyspace.name} asks for cluster-wide single flight, but no lease service is provided (TieredStore.layer or TieredStore.layerLease); loading once per process`,
          { keyspace: state.keyspace.name }
        ),
        runLoader
      )
    }
    return runLoader()
  }

  /** Counts one loader run and its time; whether it failed (a not-stored answer is no failure). */
  const recordLoad = (
    state: KeyspaceState,
    key: string,
    background: boolean,
    started: bigint,
    exit: Exit.Exit<unknown, unknown>
  ): boolean => {
    const ns = Number(clock.currentTimeNanosUnsafe() - started)
    state.loadDuration.updateUnsafe(ns / 1e9, context)
    const ms = ns / 1e6
    state.meanLoadMillis = state.meanLoadMillis < 0 ? ms : 0.8 * state.meanLoadMillis + 0.2 * ms
    state.counters.loads++
    if (observe.listening()) {
      observe.emit({
        _tag: "Load",
        keyspace: state.keyspace.name,
        key,
        at: clock.currentTimeMillisUnsafe(),
        millis: ms,
        success: Exit.isSuccess(exit),
        background
      })
    }
    // A loader may end with a typed "answer that must not be stored"
    // (the HTTP cache's non-storable response): not a failure to count.
    const failed = exit._tag === "Failure" && !isNotStored(exit.cause)
    if (failed) state.counters.loadFailures++
    return failed
  }

  const loadMany: Flights["loadMany"] = (state, items, loader, policy) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        if (isClosed()) {
          return Effect.map(restore(loader(items.map((item) => item.params))), (exits) =>
            exits.map((exit): FlightResult => ({ exit, storeError: undefined }))
          ) as Effect.Effect<Array<FlightResult>>
        }
        // Keys already loading are joined; the rest (once each) form the batch.
        const joined = new Map<string, Flight>()
        const batch: Array<{ readonly item: BatchItem; readonly flight: Flight }> = []
        const group: Group = { fiber: undefined, live: 0 }
        for (const item of items) {
          if (joined.has(item.key)) continue
          const existing = flights.get(item.key)
          if (existing !== undefined) {
            joined.set(item.key, existing)
            continue
          }
          const flight = newFlight(item.key, false, group)
          flights.set(item.key, flight)
          joined.set(item.key, flight)
          batch.push({ item, flight })
        }
        group.live = batch.length
        const waitAll = Effect.forEach(
          items,
          (item) => wait(joined.get(item.key)!, item.key, restore, state, undefined, policy.hard),
          { concurrency: "unbounded" }
        )
        if (batch.length === 0) return waitAll
        return Effect.flatMap(background.fork(runBatch(state, batch, loader, policy), true), (fiber) => {
          group.fiber = fiber
          return waitAll
        })
      })
    )

  const runBatch = (
    state: KeyspaceState,
    batch: ReadonlyArray<{ readonly item: BatchItem; readonly flight: Flight }>,
    loader: BatchLoader,
    policy: Policy
  ): Effect.Effect<void> => {
    const settle = (results: ReadonlyArray<FlightResult>) => {
      batch.forEach(({ item, flight }, i) => {
        if (flights.get(item.key) === flight) flights.delete(item.key)
        complete(flight, results[i]!)
      })
    }
    return Effect.gen(function* () {
      const startedAt = clock.currentTimeMillisUnsafe()
      // Each key's fence: the store's clock before the load (from a node's
      // anchor on Redis: no round trip in the usual case).
      const since = yield* Effect.forEach(batch, ({ item, flight }) =>
        Effect.map(loadStart(state, item.key), (t) => (flight.since = t))
      )
      // Write-behind, as for single loads: a key with a queued write answers
      // with that value (and stores it); one with a queued delete loads, but
      // is not stored. Free when nothing is queued.
      const queued: Array<PendingWrite | undefined> = hasPending()
        ? batch.map(({ item }) => pendingWrite(item.key))
        : []
      const toLoad =
        queued.length === 0 ? batch.map((_, i) => i) : batch.flatMap((_, i) => (queued[i]?.op === "set" ? [] : [i]))
      const exits: Array<Exit.Exit<unknown, unknown>> = batch.map((_, i) => Exit.succeed(queued[i]?.value))
      if (toLoad.length > 0) {
        const started = clock.currentTimeNanosUnsafe()
        const loaded = yield* loader(toLoad.map((i) => batch[i]!.item.params))
        toLoad.forEach((i, j) => {
          exits[i] = loaded[j]!
          recordLoad(state, batch[i]!.item.key, false, started, loaded[j]!)
        })
      }
      const writes: Array<BatchWrite> = []
      batch.forEach(({ item, flight }, i) => {
        const exit = exits[i]!
        if (Exit.isSuccess(exit) && !flight.invalidated && queued[i]?.op !== "delete") {
          writes.push({
            key: item.key,
            params: item.params,
            value: exit.value,
            createdAt: startedAt,
            since: since[i],
            guard: () => !flight.invalidated
          })
        }
      })
      const storeError = yield* writeMany(state, writes, policy)
      settle(exits.map((exit) => ({ exit, storeError })))
    }).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit)) settle(batch.map(() => ({ exit, storeError: undefined })))
        })
      )
    ) as Effect.Effect<void>
  }

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
      // From the shared store: an L1 copy would hide the lease holder's write.
      Effect.orElseSucceed(read(state, key, false, true), () => undefined),
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

  const invalidate = (keyOrPrefix: string, exact: boolean) => {
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

  const invalidateWhere: Flights["invalidateWhere"] = (prefix, covers) => {
    for (const [key, flight] of flights) {
      if (key.startsWith(prefix) && covers(key.slice(prefix.length))) {
        flight.invalidated = true
        flights.delete(key)
      }
    }
  }

  const releaseAll = () => {
    for (const flight of flights.values()) {
      complete(flight, { exit: Exit.interrupt(), storeError: undefined })
    }
    flights.clear()
  }

  return { load, loadMany, revalidate, invalidate, invalidateWhere, releaseAll }
}
