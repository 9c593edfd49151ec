/**
 * Strategy machinery over the runtime. Public signatures and docs live in
 * `Strategy.ts`.
 *
 * @internal
 */
import { Cause, Context, Effect, Exit, type Fiber, Random, type Tracer } from "effect"
import { CacheEncodeError, CacheKeyError, CacheShuttingDown, type CacheStoreError } from "../CacheError.ts"
import type { StoredEntry } from "../CacheStore.ts"
import type { Keyspace, TimeoutError } from "../Keyspace.ts"
import { type CallOptions, isEmpty, type Policy, withCall } from "./runtime/policy.ts"
import {
  type Cachet,
  GONE,
  type KeyspaceState,
  type RuntimeService,
  runtimeIn,
  STALE,
  service
} from "./runtime/service.ts"
import type { WriteBehindQueueFull } from "./runtime/writeBehind.ts"
import { NotFresh } from "./store.ts"

/**
 * What to do with an entry that is not fresh. Strategies differ here only:
 * cache-aside loads (stale is the fallback if the loader fails),
 * stale-while-revalidate serves stale and revalidates in the background.
 */
export type OnEntry = (
  rt: RuntimeService,
  state: KeyspaceState,
  key: string,
  params: unknown,
  loader: Effect.Effect<unknown, unknown, unknown>,
  entry: StoredEntry | undefined,
  strict: boolean,
  /** The call's options (lifetimes, timeouts), read on this miss only. */
  call: CallOptions | undefined
) => Effect.Effect<unknown, unknown, unknown>

/**
 * What to do on a fresh hit besides serving it: `undefined` to just serve
 * (the common case: nothing is allocated), or the effect that answers
 * instead. Refresh-ahead uses it to start a refresh past the refresh point.
 */
export type OnFresh = (
  rt: RuntimeService,
  state: KeyspaceState,
  key: string,
  params: unknown,
  /** The loader, when the read was given one built; else `make` builds it (only if the hook reloads). */
  loader: Effect.Effect<unknown, unknown, unknown> | undefined,
  make: MakeLoader | undefined,
  entry: StoredEntry,
  call: CallOptions | undefined,
  /** The hit's clock reading. */
  now: number
) => Effect.Effect<unknown, unknown, unknown> | undefined

/** Serves a fresh entry: its value, or its cached error for a negative entry. */
const serve = (entry: StoredEntry): Effect.Effect<unknown, unknown> =>
  entry.negative ? Effect.fail(entry.value) : Effect.succeed(entry.value)

/** A fresh hit of a sliding keyspace: the entry's freshness moves forward, then it is served. */
const slide = (
  rt: RuntimeService,
  state: KeyspaceState,
  key: string,
  params: unknown,
  entry: StoredEntry,
  now: number
) => {
  const touch = rt.touch(state, key, params, entry, now)
  return touch === undefined ? serve(entry) : Effect.andThen(touch, serve(entry))
}

/** The policy of a miss: the keyspace's, or with the call's overrides (compiled here, not on a hit). */
const policyOf = (state: KeyspaceState, call: CallOptions | undefined): Policy =>
  isEmpty(call) ? state.policy : withCall(state.policy, state.keyspace, call)

/** Builds the loader of `params` (`Cachet.cached`): called on a miss only, never on a fresh hit. */
export type MakeLoader = (params: unknown) => Effect.Effect<unknown, unknown, unknown>

/**
 * Reads `key` and either serves a fresh hit or hands over to `onEntry`.
 * With a store in the process the read is synchronous: a hit is one
 * `withFiber` and one `succeed`. `onFresh` is one `undefined` check on a hit
 * when the strategy has none.
 */
export const readThrough = (
  loader: Effect.Effect<unknown, unknown, unknown>,
  keyspace: Keyspace<any, any, any>,
  params: unknown,
  strict: boolean,
  onEntry: OnEntry,
  onFresh?: OnFresh,
  call?: CallOptions
): Effect.Effect<unknown, unknown, unknown> =>
  // withFiber + a context lookup: one primitive, where flatMap(service, f)
  // is two (the service tag, then the continuation).
  Effect.withFiber((fiber) => readIn(fiber, loader, undefined, keyspace, params, strict, onEntry, onFresh, call))

/**
 * `readThrough` in a fiber, with the loader given either built (`loader`, a
 * strategy over an effect) or as the function that builds it (`make`, from
 * `Cachet.cached`): then it is built only when something needs it (a miss,
 * an observed read, an `onFresh` hook), so a fresh hit allocates nothing
 * for it.
 */
const readIn = (
  fiber: Fiber.Fiber<unknown, unknown>,
  loader: Effect.Effect<unknown, unknown, unknown> | undefined,
  make: MakeLoader | undefined,
  keyspace: Keyspace<any, any, any>,
  params: unknown,
  strict: boolean,
  onEntry: OnEntry,
  onFresh: OnFresh | undefined,
  call: CallOptions | undefined
): Effect.Effect<unknown, unknown, unknown> => {
  const rt = runtimeIn(fiber.context)
  // After the layer closed there is no cache to use: the loader answers.
  if (rt.closed) return loader ?? make!(params)
  const state = rt.stateOf(keyspace)
  const key = rt.keyOf(state, params)
  if (key === undefined) return loader ?? make!(params)
  if (rt.readSync !== null) {
    // One clock read for the store's expiry check, the tag check and the
    // freshness check.
    const now = rt.clock.currentTimeMillisUnsafe()
    // A plain fresh hit that nothing observes or extends: the value alone,
    // no entry object.
    if (rt.readFresh !== null && onFresh === undefined && !state.sliding && rt.observe.active === 0) {
      const value = rt.readFresh(key, now)
      if (value !== NotFresh) {
        state.counters.hits++
        return Effect.succeed(value)
      }
    }
    const entry = rt.readSync(state, key, now)
    if (entry !== undefined && now < entry.freshUntil) {
      return hit(rt, state, key, params, loader, make, entry, onFresh, call, now)
    }
    const built = loader ?? make!(params)
    if (rt.observe.active !== 0) return observed(rt, state, key, params, built, entry, strict, onEntry, undefined, call)
    return onEntry(rt, state, key, params, built, entry, strict, call)
  }
  // A store outside the process: with tracing "all" the read's span
  // (`cachet.get`) starts before the store call, which it then contains.
  if (rt.observe.tracing === "all") {
    const built = loader ?? make!(params)
    return rt.observe.traceRead(state, key, (span) =>
      readRemote(rt, state, key, params, built, strict, onEntry, onFresh, span, call)
    )
  }
  if (rt.readFront !== null) {
    // TieredStore: a fresh L1 copy is served without an Effect step.
    const now = rt.clock.currentTimeMillisUnsafe()
    const entry = rt.readFront(state, key, now)
    if (entry !== undefined) return hit(rt, state, key, params, loader, make, entry, onFresh, call, now)
  }
  return readRemote(rt, state, key, params, loader ?? make!(params), strict, onEntry, onFresh, undefined, call)
}

/** A fresh hit read at `now` (in the process, or from a remote store inside `span` with tracing "all"). */
const hit = (
  rt: RuntimeService,
  state: KeyspaceState,
  key: string,
  params: unknown,
  loader: Effect.Effect<unknown, unknown, unknown> | undefined,
  make: MakeLoader | undefined,
  entry: StoredEntry,
  onFresh: OnFresh | undefined,
  call: CallOptions | undefined,
  now: number,
  span?: Tracer.Span
): Effect.Effect<unknown, unknown, unknown> => {
  state.counters.hits++
  // Events or traced reads: off by default, and then one number read.
  if (rt.observe.active !== 0) {
    const built = loader ?? make!(params)
    return rt.observe.read(
      "hit",
      state,
      key,
      answerFresh(rt, state, key, params, built, undefined, entry, onFresh, call, now),
      span
    )
  }
  return answerFresh(rt, state, key, params, loader, make, entry, onFresh, call, now)
}

/** The answer to a fresh hit: the strategy's `onFresh` if it answers, else the entry (extended when sliding). */
const answerFresh = (
  rt: RuntimeService,
  state: KeyspaceState,
  key: string,
  params: unknown,
  loader: Effect.Effect<unknown, unknown, unknown> | undefined,
  make: MakeLoader | undefined,
  entry: StoredEntry,
  onFresh: OnFresh | undefined,
  call: CallOptions | undefined,
  now: number
): Effect.Effect<unknown, unknown, unknown> => {
  if (onFresh !== undefined) {
    const answer = onFresh(rt, state, key, params, loader, make, entry, call, now)
    if (answer !== undefined) return answer
  }
  // One boolean on the hit path; sliding keyspaces pay the rest.
  if (state.sliding) return slide(rt, state, key, params, entry, now)
  return serve(entry)
}

/** `readThrough` on a store outside the process (no synchronous read). */
const readRemote = (
  rt: RuntimeService,
  state: KeyspaceState,
  key: string,
  params: unknown,
  loader: Effect.Effect<unknown, unknown, unknown>,
  strict: boolean,
  onEntry: OnEntry,
  onFresh: OnFresh | undefined,
  span: Tracer.Span | undefined,
  call: CallOptions | undefined
): Effect.Effect<unknown, unknown, unknown> =>
  Effect.flatMap(rt.read(state, key, strict), (entry) => {
    if (entry !== undefined) {
      // One clock reading for the freshness check and the hit.
      const now = rt.clock.currentTimeMillisUnsafe()
      if (now < entry.freshUntil) return hit(rt, state, key, params, loader, undefined, entry, onFresh, call, now, span)
    }
    if (rt.observe.active !== 0) return observed(rt, state, key, params, loader, entry, strict, onEntry, span, call)
    return onEntry(rt, state, key, params, loader, entry, strict, call)
  })

/**
 * A read that was not a fresh hit, when it is observed: its event ("stale"
 * when the entry is past freshness but inside its stale window, else
 * "miss"; what the strategy then does with it is its own) and, with
 * tracing "all", its `cachet.get` span.
 */
const observed = (
  rt: RuntimeService,
  state: KeyspaceState,
  key: string,
  params: unknown,
  loader: Effect.Effect<unknown, unknown, unknown>,
  entry: StoredEntry | undefined,
  strict: boolean,
  onEntry: OnEntry,
  span: Tracer.Span | undefined,
  call: CallOptions | undefined
): Effect.Effect<unknown, unknown, unknown> =>
  rt.observe.read(
    stale(rt, entry) ? "stale" : "miss",
    state,
    key,
    onEntry(rt, state, key, params, loader, entry, strict, call),
    span
  )

/** Whether `entry` can answer as a stale value: a value (not a cached error) inside its stale window or fresher. */
const usable = (rt: RuntimeService, entry: StoredEntry | undefined): entry is StoredEntry =>
  entry !== undefined && !entry.negative && rt.stateNow(entry) !== GONE

/** Whether `entry` is a value past its freshness and inside its stale window. */
const stale = (rt: RuntimeService, entry: StoredEntry | undefined): entry is StoredEntry =>
  entry !== undefined && !entry.negative && rt.stateNow(entry) === STALE

/**
 * Loads through single-flight and answers from the load: the value on
 * success; on failure the stale entry if it is still inside its stale window
 * (stale-if-error), else the loader's failure.
 */
export const loadOrStale: OnEntry = (rt, state, key, params, loader, entry, strict, call) => {
  const policy = policyOf(state, call)
  const fallback = usable(rt, entry)
  // Failure backoff: the key's loader rests; its stale value answers.
  if (fallback && policy.failureBackoff !== undefined && rt.backoff.resting(key)) {
    state.counters.staleHits++
    state.counters.backoffSkips++
    return Effect.succeed(entry.value)
  }
  return Effect.flatMap(rt.load(state, key, params, loader, policy, fallback), ({ exit, storeError, timedOut }) => {
    if (Exit.isSuccess(exit)) {
      state.counters.misses++
      return strict && storeError !== undefined ? Effect.fail(storeError) : exit
    }
    if (usable(rt, entry) && !Cause.hasInterruptsOnly(exit.cause)) {
      state.counters.staleHits++
      // A failure (or a hard timeout) answered from stale: the loader rests.
      if (timedOut !== "soft" && policy.failureBackoff !== undefined) rt.backoff.rest(key, policy.failureBackoff)
      return Effect.succeed(entry.value)
    }
    state.counters.misses++
    return exit
  })
}

/**
 * Stale-while-revalidate: a stale entry is served at once and one background
 * reload of its key starts (none if one is in flight); anything else loads.
 */
const serveStaleOrLoad: OnEntry = (rt, state, key, params, loader, entry, strict, call) => {
  if (stale(rt, entry)) {
    state.counters.staleHits++
    const policy = policyOf(state, call)
    if (policy.failureBackoff !== undefined && rt.backoff.resting(key)) {
      state.counters.backoffSkips++
      return Effect.succeed(entry.value)
    }
    const reload = rt.revalidate(state, key, params, loader, policy)
    return reload === undefined ? Effect.succeed(entry.value) : Effect.as(reload, entry.value)
  }
  return loadOrStale(rt, state, key, params, loader, entry, strict, call)
}

/**
 * Read-only: serves fresh entries (and stale ones as the fallback of a failed
 * loader) but never writes: on a miss the loader runs for this caller alone.
 */
const loadWithoutStoring: OnEntry = (rt, state, _key, _params, loader, entry) =>
  Effect.flatMap(Effect.exit(loader), (exit) => {
    if (Exit.isFailure(exit) && usable(rt, entry) && !Cause.hasInterruptsOnly(exit.cause)) {
      state.counters.staleHits++
      return Effect.succeed(entry.value)
    }
    state.counters.misses++
    return exit
  })

/**
 * The error a strategy adds unless its mode is provably "degrade": a mode
 * that may be "fail" (a widened `Options`, a mode chosen at run time) adds
 * it. Distributes over a union of option types.
 */
export type StrictError<O> = O extends unknown
  ? "onStoreError" extends keyof O
    ? "fail" extends O["onStoreError" & keyof O]
      ? CacheStoreError
      : never
    : never
  : never

/** Options every strategy takes. */
export interface ModeOptions {
  readonly onStoreError?: "degrade" | "fail" | undefined
}

/** Options of the read strategies: the mode, and per-call lifetimes and timeouts. */
export interface ReadOptions extends ModeOptions, CallOptions {}

/** Options of a write (`writeThrough`, `Cachet.set`): the mode, and this value's lifetimes. */
export interface WriteOptions extends ModeOptions, Pick<CallOptions, "ttl" | "staleFor"> {}

/** The policy of a write: the keyspace's, or with the call's lifetimes (compiled here). */
export const writePolicyOf = (state: KeyspaceState, options: WriteOptions | undefined): Policy | undefined =>
  options === undefined || (options.ttl === undefined && options.staleFor === undefined)
    ? undefined
    : withCall(state.policy, state.keyspace, { ttl: options.ttl, staleFor: options.staleFor })

type Cast<A, E, R, EN, O> = Effect.Effect<A, E | EN | StrictError<O> | TimeoutError<O>, R | Cachet>

/** A read strategy, data-first, over `onEntry` (what a read that is not a fresh hit does). */
const readStrategy =
  (onEntry: OnEntry) =>
  <A, E, R, P, EN, O extends ReadOptions = {}>(
    self: Effect.Effect<A, E, R>,
    keyspace: Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): Cast<A, E, R, EN, O> =>
    readThrough(self, keyspace, params, options?.onStoreError === "fail", onEntry, undefined, options) as Cast<
      A,
      E,
      R,
      EN,
      O
    >

/** `Strategy.cacheAside`, data-first. */
export const cacheAside = readStrategy(loadOrStale)

/** `Strategy.staleWhileRevalidate`, data-first. */
export const staleWhileRevalidate = readStrategy(serveStaleOrLoad)

/** Options of refresh-ahead. */
export interface RefreshAheadOptions extends ReadOptions {
  readonly at?: number | undefined
  readonly jitter?: number | undefined
  readonly beta?: number | undefined
}

const fraction = (option: string, value: number | undefined, fallback: number, min: number, max: number) => {
  if (value === undefined) return fallback
  if (typeof value !== "number" || !(value >= min && value <= max)) {
    throw new Error(`cachet: Strategy.refreshAhead option "${option}" must be between ${min} and ${max}, got ${value}`)
  }
  return value
}

/** A number in [0, 1) from a key, a time and a salt (FNV-1a). */
const unitHash = (key: string, createdAt: number, salt: number): number => {
  let h = (0x811c9dc5 ^ salt) >>> 0
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= createdAt | 0
  h = Math.imul(h, 0x01000193)
  h ^= (createdAt / 4294967296) | 0
  h = Math.imul(h, 0x01000193)
  h ^= h >>> 15
  h = Math.imul(h, 0x2c1b3c6d)
  h ^= h >>> 12
  return (h >>> 0) / 4294967296
}

// -ln(u) for the smallest double u > 0 is about 36.04: past this many
// `delta * beta` before the refresh point, XFetch can never trigger.
const xfetchReach = 37

/**
 * The refresh-ahead hook for one set of options.
 *
 * - The refresh point of an entry is `createdAt + at * ttl` (its own ttl,
 *   `freshUntil - createdAt`).
 * - `jitter` moves it earlier by up to `jitter * ttl`, by an amount fixed per
 *   entry (a hash of its key, its `createdAt` and the runtime's salt), so
 *   entries written together refresh at different times; no randomness at
 *   read time, so each entry still refreshes once.
 * - `beta` (XFetch): a read within reach of the point refreshes when
 *   `now - delta * beta * ln(random) >= point`, `delta` being the keyspace's
 *   mean load time; earlier reads refresh with a small, growing probability.
 */
const refreshHook = (at: number, jitter: number, beta: number): OnFresh => {
  const earliest = at - jitter
  return (rt, state, key, params, loader, make, entry, call, now) => {
    if (entry.negative) return undefined
    const ttl = entry.freshUntil - entry.createdAt
    const delta = beta > 0 && state.meanLoadMillis > 0 ? state.meanLoadMillis * beta : 0
    // Fast path for the common case: well before any refresh point.
    if (now < entry.createdAt + earliest * ttl - delta * xfetchReach) return undefined
    let point = entry.createdAt + at * ttl
    if (jitter > 0) point -= jitter * ttl * unitHash(key, entry.createdAt, rt.salt)
    if (delta === 0) {
      if (now < point) return undefined
      const reload = rt.revalidate(state, key, params, loader ?? make!(params), policyOf(state, call))
      return reload === undefined ? undefined : Effect.as(reload, entry.value)
    }
    if (now < point - delta * xfetchReach) return undefined
    return Effect.withFiber((fiber) => {
      const u = fiber.getRef(Random.Random).nextDoubleUnsafe()
      if (now - delta * Math.log(u) < point) return Effect.succeed(entry.value)
      const reload = rt.revalidate(state, key, params, loader ?? make!(params), policyOf(state, call))
      return reload === undefined ? Effect.succeed(entry.value) : Effect.as(reload, entry.value)
    })
  }
}

const defaultRefreshHook = refreshHook(0.8, 0, 0)

/** Validates refresh-ahead options (throws naming the option) and builds the hook. */
export const refreshAheadHook = (options: RefreshAheadOptions | undefined): OnFresh => {
  if (options === undefined || (options.at === undefined && options.jitter === undefined && !options.beta)) {
    return defaultRefreshHook
  }
  const at = fraction("at", options.at, 0.8, 0, 1)
  const jitter = fraction("jitter", options.jitter, 0, 0, at)
  const beta = fraction("beta", options.beta, 0, 0, 100)
  return refreshHook(at, jitter, beta)
}

/** `Strategy.refreshAhead`, data-first. */
export const refreshAhead = <A, E, R, P, EN, O extends RefreshAheadOptions>(
  self: Effect.Effect<A, E, R>,
  keyspace: Keyspace<P, A, EN>,
  params: P,
  options?: O
): Cast<A, E, R, EN, O> =>
  readThrough(
    self,
    keyspace,
    params,
    options?.onStoreError === "fail",
    loadOrStale,
    refreshAheadHook(options),
    options
  ) as Cast<A, E, R, EN, O>

/** `Strategy.readOnly`, data-first. */
export const readOnly = readStrategy(loadWithoutStoring)

/** `Strategy.bypass`, data-first. */
export const bypass = <A, E, R, P, EN>(
  self: Effect.Effect<A, E, R>,
  _keyspace: Keyspace<P, A, EN>,
  _params: P
): Effect.Effect<A, E | EN, R | Cachet> => self

/**
 * `Strategy.writeThrough`, data-first: runs the write; on success stores its
 * value, or invalidates the key when that fails.
 */
export const writeThrough = <A, E, R, P, EN, O extends WriteOptions = {}>(
  self: Effect.Effect<A, E, R>,
  keyspace: Keyspace<P, A, EN>,
  params: P,
  options?: O
): Effect.Effect<A, E | StrictError<O>, R | Cachet> =>
  Effect.flatMap(service, (rt) => {
    // Closing: the cache is not touched (nothing is written to a store once
    // the layer closes); the write still runs.
    if (rt.closed) return self
    const state = rt.stateOf(keyspace)
    const key = rt.keyOf(state, params)
    if (key === undefined) return self
    const strict = options?.onStoreError === "fail"
    const policy = writePolicyOf(state, options)
    // A load of the key that started before the write may return the old
    // value: keep it out of the cache.
    rt.invalidateFlights(key, true)
    return Effect.flatMap(self, (value) => {
      // Again, for loads that started while the source was being written.
      rt.invalidateFlights(key, true)
      return Effect.flatMap(rt.replace(state, key, params, value, policy), (error) =>
        strict && error?._tag === "CacheStoreError" ? Effect.fail(error) : Effect.succeed(value)
      )
    })
  }) as Effect.Effect<A, E | StrictError<O>, R | Cachet>

/** The writer of `writeBehind`: an effect, or a function of the value. */
export type Writer<A, E, R> = Effect.Effect<unknown, E, R> | ((value: A) => Effect.Effect<unknown, E, R>)

/** The errors of `writeBehind` besides strict mode's. */
export type WriteBehindError = CacheShuttingDown | WriteBehindQueueFull | CacheEncodeError | CacheKeyError

/** The key of `params`, or the `CacheKeyError` (counted) that refuses them. */
export const keyOrFail = (state: KeyspaceState, params: unknown): string | CacheKeyError => {
  try {
    return state.keyspace.keyUnsafe(params)
  } catch (error) {
    state.counters.keyErrors++
    return error instanceof CacheKeyError
      ? error
      : new CacheKeyError({ keyspace: state.keyspace.name, message: String(error) })
  }
}

/** `Strategy.writeBehind`. */
export const writeBehind = <P, A, EN, E, R, O extends ModeOptions = {}>(
  keyspace: Keyspace<P, A, EN>,
  params: P,
  value: A,
  writer: Writer<A, E, R>,
  options?: O
): Effect.Effect<void, WriteBehindError | StrictError<O>, R | Cachet> =>
  Effect.flatMap(service, (rt): Effect.Effect<void, WriteBehindError | CacheStoreError, R> => {
    if (rt.closed) return Effect.fail(new CacheShuttingDown({ op: "writeBehind" }))
    const state = rt.stateOf(keyspace)
    const key = keyOrFail(state, params)
    if (typeof key !== "string") return Effect.fail(key)
    if (!keyspace.is(value)) {
      state.counters.encodeErrors++
      return Effect.fail(
        new CacheEncodeError({
          keyspace: keyspace.name,
          message: "value does not satisfy the keyspace Schema; not stored, not queued"
        })
      )
    }
    return Effect.contextWith(
      (context: Context.Context<R>): Effect.Effect<void, WriteBehindError | CacheStoreError> => {
        const effect = typeof writer === "function" ? writer(value) : writer
        const refused = rt.writeBehind.offer(state, key, params, "set", value, Effect.provideContext(effect, context))
        if (refused !== undefined) return Effect.fail(refused)
        rt.invalidateFlights(key, true)
        return Effect.flatMap(rt.replace(state, key, params, value), (error) =>
          options?.onStoreError === "fail" && error?._tag === "CacheStoreError" ? Effect.fail(error) : Effect.void
        )
      }
    )
  }) as Effect.Effect<void, WriteBehindError | StrictError<O>, R | Cachet>

/** `Strategy.deleteBehind`. */
export const deleteBehind = <P, A, EN, E, R, O extends ModeOptions = {}>(
  keyspace: Keyspace<P, A, EN>,
  params: P,
  deleter: Effect.Effect<unknown, E, R>,
  options?: O
): Effect.Effect<void, CacheShuttingDown | WriteBehindQueueFull | CacheKeyError | StrictError<O>, R | Cachet> =>
  Effect.flatMap(service, (rt): Effect.Effect<void, WriteBehindError | CacheStoreError, R> => {
    if (rt.closed) return Effect.fail(new CacheShuttingDown({ op: "deleteBehind" }))
    const state = rt.stateOf(keyspace)
    const key = keyOrFail(state, params)
    if (typeof key !== "string") return Effect.fail(key)
    return Effect.contextWith(
      (context: Context.Context<R>): Effect.Effect<void, WriteBehindError | CacheStoreError> => {
        const refused = rt.writeBehind.offer(
          state,
          key,
          params,
          "delete",
          undefined,
          Effect.provideContext(deleter, context)
        )
        if (refused !== undefined) return Effect.fail(refused)
        rt.invalidateFlights(key, true)
        return Effect.flatMap(rt.remove(state, key), (error) => {
          if (error === undefined) return Effect.void
          rt.hide(state, key)
          return options?.onStoreError === "fail" ? Effect.fail(error) : Effect.void
        })
      }
    )
  }) as Effect.Effect<void, CacheShuttingDown | WriteBehindQueueFull | CacheKeyError | StrictError<O>, R | Cachet>

/** `Strategy.flushWriteBehind`. */
export const flushWriteBehind: Effect.Effect<void, never, Cachet> = Effect.flatMap(
  service,
  (rt) => rt.writeBehind.flush
)

// ---------------------------------------------------------------------------
// Strategies from context
// ---------------------------------------------------------------------------

/** A read strategy as a value (see `Strategy.Strategy`). */
export type AnyStrategy = <P, A, EN>(
  keyspace: Keyspace<P, A, EN>,
  params: P
) => <E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | EN, R | Cachet>

// One reference per keyspace name, so that `Strategy.layer` layers for
// different keyspaces merge freely (each provides its own key).
const references = new Map<string, Context.Reference<AnyStrategy | undefined>>()

/** The context reference holding the default strategy of keyspace `name`. */
export const referenceFor = (name: string): Context.Reference<AnyStrategy | undefined> => {
  let reference = references.get(name)
  if (reference === undefined) {
    reference = Context.Reference<AnyStrategy | undefined>(`cachet/Strategy/keyspace/${name}`, {
      defaultValue: () => undefined
    })
    references.set(name, reference)
  }
  return reference
}

/** The default strategy of every keyspace without its own. */
export const DefaultStrategy: Context.Reference<AnyStrategy | undefined> = Context.Reference<AnyStrategy | undefined>(
  "cachet/Strategy/default",
  { defaultValue: () => undefined }
)

/**
 * What a strategy value does on a read, when it is one of ours: its
 * `onEntry` and `onFresh` (run by `readThrough`), or `"bypass"`. Attached to
 * the public strategy functions (`Strategy.ts`), so that `Cachet.cached` and
 * `Strategy.auto` run the read directly, with no combinator in between, and
 * `Cachet.cached` builds the loader only on a miss. A strategy without one
 * (a user's arrow) is applied as before.
 */
export type ReadPlan = { readonly onEntry: OnEntry; readonly onFresh: OnFresh | undefined } | "bypass"

const planKey: unique symbol = Symbol.for("cachet/Strategy/plan")

/** Attaches `plan` to a public strategy function (see {@link ReadPlan}). */
export const withPlan = <F extends object>(strategy: F, plan: ReadPlan): F => {
  Object.defineProperty(strategy, planKey, { value: plan, enumerable: false })
  return strategy
}

const planOf = (strategy: object): ReadPlan | undefined => (strategy as { [planKey]?: ReadPlan })[planKey]

/** The plans of the built-in read strategies, for `Strategy.ts`. */
export const plans = {
  cacheAside: { onEntry: loadOrStale, onFresh: undefined },
  staleWhileRevalidate: { onEntry: serveStaleOrLoad, onFresh: undefined },
  refreshAhead: { onEntry: loadOrStale, onFresh: defaultRefreshHook },
  readOnly: { onEntry: loadWithoutStoring, onFresh: undefined },
  bypass: "bypass"
} as const satisfies Record<string, ReadPlan>

/**
 * One read with `strategy` in a fiber: a built-in strategy runs its plan
 * (the loader built from `make` only if needed); any other is applied to
 * the loader.
 */
const readWith = (
  fiber: Fiber.Fiber<unknown, unknown>,
  strategy: AnyStrategy | undefined,
  loader: Effect.Effect<unknown, unknown, unknown> | undefined,
  make: MakeLoader | undefined,
  keyspace: Keyspace<any, any, any>,
  params: unknown
): Effect.Effect<unknown, unknown, unknown> => {
  if (strategy === undefined)
    return readIn(fiber, loader, make, keyspace, params, false, loadOrStale, undefined, undefined)
  const plan = planOf(strategy)
  if (plan === undefined) return strategy(keyspace, params)(loader ?? make!(params))
  if (plan === "bypass") return loader ?? make!(params)
  return readIn(fiber, loader, make, keyspace, params, false, plan.onEntry, plan.onFresh, undefined)
}

/** The strategy from context for `keyspace`: its own (`Strategy.layer`), else the default one, else none. */
const strategyIn = (
  fiber: Fiber.Fiber<unknown, unknown>,
  reference: Context.Reference<AnyStrategy | undefined>
): AnyStrategy | undefined => fiber.getRef(reference) ?? fiber.getRef(DefaultStrategy)

/**
 * `Cachet.cached`: a memoised function of `params`. With a built-in
 * strategy (or none: the one from context) a fresh hit calls neither `make`
 * nor a combinator: one `withFiber`, the read and the value.
 */
export const memoised = <P, A, EN, E, R>(
  keyspace: Keyspace<P, A, EN>,
  make: (params: P) => Effect.Effect<A, E, R>,
  strategy?: AnyStrategy
): ((params: P) => Effect.Effect<A, E | EN, R | Cachet>) => {
  const build = make as MakeLoader
  type Out = Effect.Effect<A, E | EN, R | Cachet>
  if (strategy === undefined) {
    const reference = referenceFor(keyspace.name)
    return (params) =>
      Effect.withFiber((fiber) =>
        readWith(fiber, strategyIn(fiber, reference), undefined, build, keyspace, params)
      ) as Out
  }
  const plan = planOf(strategy)
  if (plan === undefined) return (params) => strategy(keyspace, params)(make(params)) as Out
  if (plan === "bypass") return make as (params: P) => Out
  const { onEntry, onFresh } = plan
  return (params) =>
    Effect.withFiber((fiber) =>
      readIn(fiber, undefined, build, keyspace, params, false, onEntry, onFresh, undefined)
    ) as Out
}

/** `Strategy.auto`, data-first: the keyspace's strategy from context, else the default one, else cache-aside. */
export const auto = <A, E, R, P, EN>(
  self: Effect.Effect<A, E, R>,
  keyspace: Keyspace<P, A, EN>,
  params: P
): Effect.Effect<A, E | EN, R | Cachet> =>
  Effect.withFiber((fiber) =>
    readWith(fiber, strategyIn(fiber, referenceFor(keyspace.name)), self, undefined, keyspace, params)
  ) as Effect.Effect<A, E | EN, R | Cachet>
