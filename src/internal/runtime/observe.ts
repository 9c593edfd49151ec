/**
 * Tracing and events: the runtime's spans (through Effect's tracer) and the
 * in-process stream of cache events, with what each costs when nobody looks.
 *
 * - Spans: `cachet.load`, `cachet.revalidate`, `cachet.writeBehind.flush`
 *   and `cachet.store.<op>` for the store calls of loads, writes and
 *   invalidations (tracing `"loads"`, the default); `"all"` adds a
 *   `cachet.get` span per read, hits included (and `cachet.store.get` for
 *   each store read); `"off"` none.
 *   Attributes: `cachet.keyspace`, `cachet.result`, and `cachet.key` only
 *   with `traceKeys`.
 * - Events: each subscriber of `Cachet.events` has its own bounded queue;
 *   an event that finds it full is dropped and counted (`dropped`). With no
 *   subscriber no event is built.
 *
 * The hit path reads one number, `active` (subscribers, plus one when reads
 * are traced): zero in the default configuration, and then a hit allocates
 * nothing here.
 *
 * This module does not export spans anywhere: that is the tracer's job
 * (effect/observability's `Otlp`, or any `Tracer` in context).
 *
 * @internal
 */
import { type Clock, Effect, Queue, type Scope, Tracer } from "effect"
import type { StoreService } from "../store.ts"
import type { KeyspaceState } from "./keyspaces.ts"

/**
 * `spanned()` when a tracing backend is installed, else `plain`: with
 * effect's native tracer (the default `Tracer`, which exports nothing) a
 * span is work nobody can observe, so cachet starts none and builds no
 * attributes (the span of every load and store write was ~40% of a memory
 * miss). Effect's own docs name this comparison for that purpose.
 */
export const whenTraced = <A, E, R>(
  plain: Effect.Effect<A, E, R>,
  spanned: () => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => (fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer ? plain : spanned()))

/** What is traced (see `Cachet.Options`). */
export type TracingMode = "loads" | "all" | "off"

/** A cache event (see `Cachet.CacheEvent`). */
export type CacheEvent =
  | { readonly _tag: "Hit"; readonly keyspace: string; readonly key: string; readonly at: number }
  | { readonly _tag: "Miss"; readonly keyspace: string; readonly key: string; readonly at: number }
  | { readonly _tag: "Stale"; readonly keyspace: string; readonly key: string; readonly at: number }
  | {
      readonly _tag: "Load"
      readonly keyspace: string
      readonly key: string
      readonly at: number
      readonly millis: number
      readonly success: boolean
      readonly background: boolean
    }
  | { readonly _tag: "Set"; readonly keyspace: string; readonly key: string; readonly at: number }
  | { readonly _tag: "Delete"; readonly keyspace: string; readonly key: string; readonly at: number }
  | {
      readonly _tag: "Invalidate"
      readonly keyspace: string | undefined
      readonly tag: string | undefined
      readonly at: number
    }
  | { readonly _tag: "BusReset"; readonly reason: "subscribed" | "gap"; readonly at: number }
  | {
      readonly _tag: "DeadLetter"
      readonly keyspace: string
      readonly key: string
      readonly op: "set" | "delete"
      readonly reason: string
      readonly at: number
    }

/** The event kinds that carry only a keyspace and a key. */
export type KeyEventTag = "Hit" | "Miss" | "Stale" | "Set" | "Delete"

export interface Observe {
  /**
   * Subscribers, plus one when reads are traced: the hit path's only check
   * (`!== 0`). A plain field, not a getter, so the check is one load.
   */
  active: number
  readonly tracing: TracingMode
  readonly traceKeys: boolean
  /** Events dropped because a subscriber's queue was full. */
  readonly dropped: () => number
  readonly subscribers: () => number
  /** Whether anybody reads events (build them only then). */
  readonly listening: () => boolean
  /** Hands `event` to every subscriber (dropped and counted when one is full). */
  readonly emit: (event: CacheEvent) => void
  /** `emit` of a keyspace-and-key event, when anybody listens. */
  readonly emitKey: (tag: KeyEventTag, state: KeyspaceState, key: string) => void
  /** A subscription for the scope: a bounded dropping queue of events. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<CacheEvent>, never, Scope.Scope>
  /** The attributes of a span about `key` of `state`. */
  readonly attributes: (state: KeyspaceState, key: string) => Record<string, unknown>
  /**
   * A read when `active !== 0`: emits its event and, with tracing `"all"`,
   * wraps `answer` in a `cachet.get` span with its result.
   */
  readonly read: <A, E, R>(
    result: "hit" | "miss" | "stale",
    state: KeyspaceState,
    key: string,
    answer: Effect.Effect<A, E, R>,
    /** The read's span when it was started before the store call (`traceRead`). */
    span?: Tracer.Span
  ) => Effect.Effect<A, E, R>
  /**
   * With tracing `"all"`: runs `read` in a `cachet.get` span started now,
   * before the store call (a remote read), and hands it the span.
   */
  readonly traceRead: <A, E, R>(
    state: KeyspaceState,
    key: string,
    /** The span, or `undefined` when none was started (no tracing backend, see `whenTraced`). */
    read: (span: Tracer.Span | undefined) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
  /** `cachet.writeBehind.flush` around a batch, unless tracing is off. */
  readonly flushSpan: (<A, E, R>(size: number, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) | undefined
}

export interface Options {
  readonly tracing: TracingMode
  readonly traceKeys: boolean
  /** Events queued per subscriber before new ones are dropped. */
  readonly capacity: number
}

export const resolveTracing = (value: unknown): TracingMode => {
  if (value === undefined) return "loads"
  if (value === "loads" || value === "all" || value === "off") return value
  throw new Error(`cachet: Cachet.layer option "tracing" must be "loads", "all" or "off", got ${String(value)}`)
}

const resultOf = { hit: "Hit", miss: "Miss", stale: "Stale" } as const

export const make = (clock: Clock.Clock, options: Options): Observe => {
  const queues = new Set<Queue.Queue<CacheEvent>>()
  let dropped = 0
  const traceReads = options.tracing === "all"

  const emit = (event: CacheEvent) => {
    for (const queue of queues) if (!Queue.offerUnsafe(queue, event)) dropped++
  }

  const attributes = (state: KeyspaceState, key: string): Record<string, unknown> =>
    options.traceKeys
      ? { "cachet.keyspace": state.keyspace.name, "cachet.key": key }
      : { "cachet.keyspace": state.keyspace.name }

  const observe: Observe = {
    active: traceReads ? 1 : 0,
    tracing: options.tracing,
    traceKeys: options.traceKeys,
    dropped: () => dropped,
    subscribers: () => queues.size,
    listening: () => queues.size !== 0,
    emit,
    emitKey: (tag, state, key) => {
      if (queues.size === 0) return
      emit({ _tag: tag, keyspace: state.keyspace.name, key, at: clock.currentTimeMillisUnsafe() })
    },
    subscribe: Effect.acquireRelease(
      Effect.map(Queue.dropping<CacheEvent>(options.capacity), (queue) => {
        queues.add(queue)
        observe.active++
        return queue
      }),
      (queue) =>
        Effect.sync(() => {
          if (queues.delete(queue)) observe.active--
          Queue.shutdownUnsafe(queue)
        })
    ),
    attributes,
    read: (result, state, key, answer, span) => {
      if (queues.size !== 0) {
        emit({ _tag: resultOf[result], keyspace: state.keyspace.name, key, at: clock.currentTimeMillisUnsafe() })
      }
      if (!traceReads) return answer
      if (span !== undefined) {
        span.attribute("cachet.result", result)
        return answer
      }
      return whenTraced(answer, () => {
        const attrs = attributes(state, key)
        attrs["cachet.result"] = result
        return Effect.withSpan(answer, "cachet.get", { attributes: attrs, captureStackTrace: false })
      })
    },
    traceRead: (state, key, read) =>
      // withSpan (it takes captureStackTrace: false, useSpan does not): the
      // span is the parent of the read, which receives it.
      // (The unspanned read is built only when it runs: building a store read
      // twice could issue it twice.)
      whenTraced(
        Effect.suspend(() => read(undefined)),
        () =>
          Effect.withSpan(Effect.flatMap(Effect.orDie(Effect.currentSpan), read), "cachet.get", {
            attributes: attributes(state, key),
            captureStackTrace: false
          })
      ),
    flushSpan:
      options.tracing === "off"
        ? undefined
        : (size, effect) =>
            whenTraced(effect, () =>
              Effect.withSpan(effect, "cachet.writeBehind.flush", {
                attributes: { "cachet.batch": size },
                captureStackTrace: false
              })
            )
  }
  return observe
}

/**
 * The keyspace of a store key (`<keyspace>:<key>`, or `<keyspace>@<version>:<key>`),
 * for span attributes: the name alone, as load and read spans give it (names
 * hold neither ":" nor "@").
 */
const keyspaceOfKey = (key: string): string => {
  const i = key.search(/[:@]/)
  return i < 0 ? key : key.slice(0, i)
}

/**
 * The store, with a `cachet.store.<op>` span around every call but reads
 * (`get`, `getMany`, `getShared`, `getTagTimes`: a remote hit is one of
 * them, and stays unspanned unless tracing is `"all"`) and `time` (a
 * load's start, read from a local anchor almost always). The synchronous
 * members (`getUnsafe`) pass through untouched: the memory hit path.
 */
export const traceStore = (store: StoreService, mode: TracingMode, traceKeys: boolean): StoreService => {
  if (mode === "off") return store
  // Attributes are built only when a span is (see `whenTraced`).
  const span =
    <A, E>(op: string, attributes: () => Record<string, unknown>) =>
    (effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      whenTraced(effect, () =>
        Effect.withSpan(effect, `cachet.store.${op}`, {
          attributes: { "cachet.store": store.name, ...attributes() },
          captureStackTrace: false
        })
      )
  const ofKey = (key: string): Record<string, unknown> =>
    traceKeys ? { "cachet.keyspace": keyspaceOfKey(key), "cachet.key": key } : { "cachet.keyspace": keyspaceOfKey(key) }
  const ofKeys = (keys: ReadonlyArray<string>): Record<string, unknown> => ({
    "cachet.keyspace": keys.length === 0 ? "" : keyspaceOfKey(keys[0]!),
    "cachet.keys": keys.length
  })
  const reads = mode === "all"
  const setOrdered = store.setOrdered
  const setOrderedMany = store.setOrderedMany
  const deletePattern = store.deletePattern
  const getShared = store.getShared
  return {
    ...store,
    get: reads ? (key, codec) => span<any, any>("get", () => ofKey(key))(store.get(key, codec)) : store.get,
    getMany: reads
      ? (keys, codec) => span<any, any>("getMany", () => ofKeys(keys))(store.getMany(keys, codec))
      : store.getMany,
    getShared:
      reads && getShared !== undefined
        ? (key, codec) => span<any, any>("getShared", () => ofKey(key))(getShared(key, codec))
        : getShared,
    set: (key, entry, codec) => span<void, any>("set", () => ofKey(key))(store.set(key, entry, codec)),
    setMany: (entries, codec) =>
      span<void, any>("setMany", () => ofKeys(entries.map(([k]) => k)))(store.setMany(entries, codec)),
    setOrdered:
      setOrdered === undefined
        ? undefined
        : (key, entry, codec, since, expect) =>
            span<number | undefined, any>("set", () => ofKey(key))(setOrdered(key, entry, codec, since, expect)),
    setOrderedMany:
      setOrderedMany === undefined
        ? undefined
        : (entries, codec) =>
            span<ReadonlyArray<number | undefined>, any>("setMany", () => ofKeys(entries.map(([k]) => k)))(
              setOrderedMany(entries, codec)
            ),
    deletePattern:
      deletePattern === undefined
        ? undefined
        : (prefix, pattern) =>
            span<number, any>("deletePattern", () => ({ "cachet.keyspace": keyspaceOfKey(prefix) }))(
              deletePattern(prefix, pattern)
            ),
    delete: (key) => span<boolean, any>("delete", () => ofKey(key))(store.delete(key)),
    deleteMany: (keys) => span<number, any>("deleteMany", () => ofKeys(keys))(store.deleteMany(keys)),
    deletePrefix: (prefix) =>
      span<number, any>("deletePrefix", () => ({ "cachet.keyspace": keyspaceOfKey(prefix) }))(
        store.deletePrefix(prefix)
      ),
    setTagTime: (tag, at, retain) => span<void, any>("setTagTime", () => ({}))(store.setTagTime(tag, at, retain))
  }
}
