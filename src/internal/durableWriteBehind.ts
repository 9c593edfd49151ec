/**
 * Durable write-behind: the queue lives in a `PersistedQueue` (effect's
 * persistence; in Redis with `PersistedQueue.layerStoreRedis` over the
 * `Redis` service that `IoRedis.layer` provides), so an acknowledged write
 * survives a crash of the process. Public signatures and docs live in
 * `Strategy.ts`.
 *
 * **Layout**
 *
 * One queue element per operation: `{ keyspace, key, params, op, value, seq }`,
 * `value` encoded with the keyspace's JSON codec, `seq` strictly increasing
 * per process (clock microseconds, at least the previous one plus one). Writers cannot be persisted, so they are
 * registered per keyspace with the layer and looked up by keyspace name when
 * an element is taken, possibly by another process after a restart.
 *
 * **Order**
 *
 * One worker per layer takes one element at a time and retries it in place
 * (on the `retry` schedule), so within a process nothing overtakes a failing
 * write. `latest` remembers, per key, the newest `seq` this process queued or
 * wrote: an older element is skipped (last write wins, and a delete is not
 * resurrected by an older write redelivered after a crash). Across several
 * processes taking from one queue there is no such order: give each instance
 * its own queue name (stable across restarts).
 *
 * @internal
 */
import { Cause, Clock, Context, type Duration, Effect, Exit, Layer, Result, Schedule, Schema } from "effect"
import * as PersistedQueue from "effect/persistence/PersistedQueue"
import * as Redis from "effect/persistence/Redis"
import { CacheEncodeError, type CacheKeyError, CacheShuttingDown, type CacheStoreError } from "../CacheError.ts"
import type { Keyspace } from "../Keyspace.ts"
import { millisOr } from "./duration.ts"
import { type Cachet, type KeyspaceState, type PendingWrite, type RuntimeService, service } from "./runtime/service.ts"
import type { DeadLetter } from "./runtime/writeBehind.ts"
import * as Warn from "./warn.ts"

/**
 * The durable write-behind queue could not be written (the backend of the
 * `PersistedQueue` failed, or the parameters are not JSON): the call was
 * refused, nothing was cached.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Strategy } from "cachet"
 * declare const save: Effect.Effect<void, Strategy.WriteBehindPersistError>
 * const handled = save.pipe(Effect.catchTag("WriteBehindPersistError", (e) => Effect.logError(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class WriteBehindPersistError extends Schema.TaggedError<WriteBehindPersistError>(
  "cachet/WriteBehindPersistError"
)("WriteBehindPersistError", {
  keyspace: Schema.String,
  key: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    const cause = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `could not queue the write of ${this.key} durably${cause}`
  }
}

/** A writer registered for durable write-behind. */
export interface DurableWriter<R> {
  readonly keyspace: Keyspace<any, any, any>
  readonly set: (value: any, params: any) => Effect.Effect<unknown, unknown, R>
  readonly delete: ((params: any) => Effect.Effect<unknown, unknown, R>) | undefined
}

/** Options of the durable layer. */
export interface DurableOptions<R> {
  readonly queue: string
  readonly writers: ReadonlyArray<DurableWriter<R>>
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  readonly onDeadLetter?: ((letter: DeadLetter) => Effect.Effect<void>) | undefined
  readonly maxTrackedKeys?: number | undefined
}

/** The durable queue service. */
export class DurableWriteBehind extends Context.Service<
  DurableWriteBehind,
  {
    /** Persists one operation; returns once it is acknowledged by the queue's backend. */
    readonly offer: (
      state: KeyspaceState,
      key: string,
      params: unknown,
      op: "set" | "delete",
      value: unknown,
      encoded: unknown
    ) => Effect.Effect<void, WriteBehindPersistError>
    /** Whether a writer is registered for the keyspace (and for deletes). */
    readonly canWrite: (keyspace: string, op: "set" | "delete") => boolean
  }
>()("cachet/DurableWriteBehind") {}

const supersededMarker: unknown = Symbol.for("cachet/durableWriteBehind/superseded")

const Element = Schema.Struct({
  keyspace: Schema.String,
  key: Schema.String,
  params: Schema.Json,
  op: Schema.Literals(["set", "delete"]),
  value: Schema.Json,
  seq: Schema.Number
})
type Element = typeof Element.Type

/** The layer: registers the writers, runs one worker in its scope. */
export const layer = <R>(
  options: DurableOptions<R>
): Layer.Layer<DurableWriteBehind, never, PersistedQueue.PersistedQueueFactory | Cachet | R> => {
  if (typeof options.queue !== "string" || options.queue.length === 0) {
    throw new Error(`cachet: Strategy.layerDurableWriteBehind option "queue" must be a non-empty string`)
  }
  const writers = new Map<string, DurableWriter<R>>()
  for (const writer of options.writers) {
    if (writers.has(writer.keyspace.name)) {
      throw new Error(
        `cachet: Strategy.layerDurableWriteBehind option "writers": two writers for keyspace ${JSON.stringify(writer.keyspace.name)}`
      )
    }
    writers.set(writer.keyspace.name, writer)
  }
  const maxTracked = options.maxTrackedKeys ?? 100_000
  return Layer.effect(
    DurableWriteBehind,
    Effect.gen(function* () {
      const rt = yield* service
      const context = yield* Effect.context<R>()
      const queue = yield* PersistedQueue.make({
        name: options.queue,
        schema: Element,
        // Retries happen in place (below); the queue's own attempts only
        // count redeliveries after a crash.
        maxAttempts: 1_000_000
      })
      // Per key: the newest seq queued or written by this process.
      const latest = new Map<string, number>()
      // Per key: the newest operation queued by this process, not yet written.
      const pending = new Map<string, PendingWrite & { readonly seq: number }>()
      // Strictly increasing in this process: clock microseconds, but never
      // below the last one plus one. A counter that wraps (1,000 writes in a
      // millisecond) or a clock stepped back would order a newer write
      // before an older one, and the newer would be dropped as superseded.
      let lastSeq = 0
      const nextSeq = () => {
        lastSeq = Math.max(lastSeq + 1, rt.clock.currentTimeMillisUnsafe() * 1_000)
        return lastSeq
      }
      const track = (key: string, seq: number) => {
        const known = latest.get(key)
        if (known !== undefined && known >= seq) return
        latest.delete(key)
        latest.set(key, seq)
        if (latest.size > maxTracked) latest.delete(latest.keys().next().value!)
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => rt.registerPending((key) => pending.get(key))),
        (unregister) => Effect.sync(unregister)
      )

      const superseded = (element: Element) => {
        const known = latest.get(element.key)
        return known !== undefined && known > element.seq
      }

      const settled = (element: Element) => {
        const mine = pending.get(element.key)
        if (mine !== undefined && mine.seq <= element.seq) pending.delete(element.key)
      }

      const process = (element: Element, attempts: number): Effect.Effect<void> =>
        Effect.gen(function* () {
          const writer = writers.get(element.keyspace)
          const state = writer === undefined ? undefined : rt.stateOf(writer.keyspace)
          if (superseded(element)) {
            if (state !== undefined) state.counters.writeBehindCoalesced++
            return
          }
          let write: Effect.Effect<unknown, unknown, R>
          let value: unknown
          if (writer === undefined || state === undefined) {
            write = Effect.die(new Error(`no durable writer is registered for keyspace ${element.keyspace}`))
          } else if (element.op === "delete") {
            write =
              writer.delete === undefined
                ? Effect.die(new Error(`the durable writer of ${element.keyspace} has no delete`))
                : writer.delete(element.params)
          } else {
            const decoded = writer.keyspace.decode(element.value, element.key)
            if (Result.isFailure(decoded)) {
              write = Effect.die(decoded.failure)
            } else {
              value = decoded.success
              write = writer.set(value, element.params)
            }
          }
          let tries = 0
          const exit = yield* Effect.exit(
            Effect.suspend(() => {
              // A newer operation of the key was queued while this one waited
              // for its retry: stop, it will be written instead.
              if (superseded(element)) return Effect.fail(supersededMarker)
              tries++
              return write
            }).pipe(
              Effect.provideContext(context),
              options.retry === undefined
                ? (self) => self
                : Effect.retry({ schedule: options.retry, while: (error) => error !== supersededMarker })
            )
          )
          if (Exit.isSuccess(exit)) {
            track(element.key, element.seq)
            settled(element)
            if (state !== undefined) state.counters.writeBehindWrites++
            return
          }
          if (state !== undefined) state.counters.writeBehindRetries += tries - 1
          if (superseded(element)) {
            if (state !== undefined) state.counters.writeBehindCoalesced++
            return
          }
          settled(element)
          const letter: DeadLetter = {
            keyspace: element.keyspace,
            key: element.key,
            params: element.params,
            op: element.op,
            value,
            attempts: attempts - 1 + tries,
            reason: "RetriesExhausted",
            cause: exit.cause
          }
          if (state === undefined) {
            yield* Effect.logError(`cachet: durable write-behind gave up on ${element.op} ${element.key}`).pipe(
              Effect.annotateLogs("cause", Cause.pretty(exit.cause))
            )
            if (options.onDeadLetter !== undefined) yield* options.onDeadLetter(letter)
            return
          }
          yield* rt.reportDeadLetter(state, letter, options.onDeadLetter)
        })

      // The worker: one element at a time. Interrupted with the layer; an
      // element it holds goes back to the queue (PersistedQueue's finalizer,
      // or its lock expiry after a crash).
      yield* Effect.forkScoped(
        Effect.forever(
          queue
            .take((element, metadata) => process(element, metadata.attempts))
            .pipe(
              Effect.catchCause((cause) =>
                Cause.hasInterruptsOnly(cause)
                  ? Effect.failCause(cause)
                  : Effect.logError(`cachet: durable write-behind queue failed: ${Cause.pretty(cause)}`).pipe(
                      Effect.andThen(Effect.sleep("1 second"))
                    )
              )
            )
        )
      )

      return DurableWriteBehind.of({
        canWrite: (keyspace, op) => {
          const writer = writers.get(keyspace)
          return writer !== undefined && (op === "set" || writer.delete !== undefined)
        },
        offer: (state, key, params, op, value, encoded) =>
          Effect.suspend(() => {
            const seq = nextSeq()
            return queue
              .offer({
                keyspace: state.keyspace.name,
                key,
                params: params as Schema.Json,
                op,
                value: encoded as Schema.Json,
                seq
              })
              .pipe(
                Effect.mapError((cause) => new WriteBehindPersistError({ keyspace: state.keyspace.name, key, cause })),
                Effect.tap(() =>
                  Effect.sync(() => {
                    track(key, seq)
                    pending.set(key, { op, value, seq })
                  })
                )
              )
          })
      })
    })
  )
}

/** The errors of the durable calls besides strict mode's. */
export type DurableError = CacheShuttingDown | WriteBehindPersistError | CacheEncodeError | CacheKeyError

const refuse = (
  rt: RuntimeService,
  state: KeyspaceState,
  params: unknown
): string | CacheKeyError | CacheShuttingDown => {
  if (rt.closed) return new CacheShuttingDown({ op: "writeBehindDurable" })
  const key = rt.keyOf(state, params)
  if (key === undefined) {
    // keyOf counted and logged it; rebuild the error for the caller.
    try {
      state.keyspace.keyUnsafe(params)
    } catch (error) {
      return error as CacheKeyError
    }
  }
  return key!
}

/** `Strategy.writeBehindDurable`. */
export const writeBehindDurable = <P, A, EN, O extends { readonly onStoreError?: "degrade" | "fail" | undefined }>(
  keyspace: Keyspace<P, A, EN>,
  params: P,
  value: A,
  options?: O
): Effect.Effect<void, DurableError | CacheStoreError, DurableWriteBehind | Cachet> =>
  Effect.flatMap(service, (rt) =>
    Effect.flatMap(
      Effect.service(DurableWriteBehind),
      (durable): Effect.Effect<void, DurableError | CacheStoreError> => {
        const state = rt.stateOf(keyspace)
        const key = refuse(rt, state, params)
        if (typeof key !== "string") return Effect.fail(key)
        if (!durable.canWrite(keyspace.name, "set")) {
          return Effect.die(new Error(`cachet: no durable writer is registered for keyspace ${keyspace.name}`))
        }
        const encoded = keyspace.is(value) ? keyspace.encode(value) : undefined
        if (encoded === undefined || Result.isFailure(encoded)) {
          state.counters.encodeErrors++
          return Effect.fail(
            encoded?._tag === "Failure"
              ? encoded.failure
              : new CacheEncodeError({ keyspace: keyspace.name, message: "value does not satisfy the keyspace Schema" })
          )
        }
        return Effect.flatMap(durable.offer(state, key, params, "set", value, encoded.success), () => {
          rt.invalidateFlights(key, true)
          return Effect.flatMap(rt.replace(state, key, params, value), (error) =>
            options?.onStoreError === "fail" && error?._tag === "CacheStoreError" ? Effect.fail(error) : Effect.void
          )
        })
      }
    )
  )

/** `Strategy.deleteBehindDurable`. */
export const deleteBehindDurable = <P, A, EN, O extends { readonly onStoreError?: "degrade" | "fail" | undefined }>(
  keyspace: Keyspace<P, A, EN>,
  params: P,
  options?: O
): Effect.Effect<void, DurableError | CacheStoreError, DurableWriteBehind | Cachet> =>
  Effect.flatMap(service, (rt) =>
    Effect.flatMap(
      Effect.service(DurableWriteBehind),
      (durable): Effect.Effect<void, DurableError | CacheStoreError> => {
        const state = rt.stateOf(keyspace)
        const key = refuse(rt, state, params)
        if (typeof key !== "string") return Effect.fail(key)
        if (!durable.canWrite(keyspace.name, "delete")) {
          return Effect.die(new Error(`cachet: no durable delete is registered for keyspace ${keyspace.name}`))
        }
        return Effect.flatMap(durable.offer(state, key, params, "delete", undefined, null), () => {
          rt.invalidateFlights(key, true)
          return Effect.flatMap(rt.remove(state, key), (error) => {
            if (error === undefined) return Effect.void
            rt.hide(state, key)
            return options?.onStoreError === "fail" ? Effect.fail(error) : Effect.void
          })
        })
      }
    )
  )

// ---------------------------------------------------------------------------
// The queue on Redis, with a cache's timings
// ---------------------------------------------------------------------------

/** Options of `Strategy.layerDurableQueueRedis`. */
export interface QueueRedisOptions {
  readonly prefix?: string | undefined
  readonly lockExpiration?: Duration.Input | undefined
  readonly recoveryInterval?: Duration.Input | undefined
  readonly pollInterval?: Duration.Input | undefined
}

/** The resolved timings (ms) and the delivery bound they give. */
export interface QueueRedisTimings {
  readonly lockExpiration: number
  readonly recoveryInterval: number
  readonly pollInterval: number
  /** After a crash, a write the dead process held is taken again within this (plus the restart). */
  readonly redeliveryBound: number
}

const SUBJECT = "Strategy.layerDurableQueueRedis"

/** Validates the options (a bad one throws, naming it) and applies the defaults. */
export const queueRedisTimings = (options?: QueueRedisOptions): QueueRedisTimings => {
  const lockExpiration = millisOr(SUBJECT, "lockExpiration", options?.lockExpiration, 10_000, { min: 1 })
  const recoveryInterval = millisOr(SUBJECT, "recoveryInterval", options?.recoveryInterval, 2_000, { min: 1 })
  const pollInterval = millisOr(SUBJECT, "pollInterval", options?.pollInterval, 500, { min: 1 })
  if (recoveryInterval * 2 > lockExpiration) {
    // The same interval refreshes a live worker's locks: two refreshes must
    // fit in one expiration, or a slow tick lets a live write be taken twice.
    throw new Error(
      `cachet: ${SUBJECT} option "recoveryInterval" must be at most half of "lockExpiration" (${lockExpiration} ms), got ${recoveryInterval} ms`
    )
  }
  if (options?.prefix !== undefined && (typeof options.prefix !== "string" || options.prefix === "")) {
    throw new Error(`cachet: ${SUBJECT} option "prefix" must be a non-empty string`)
  }
  return {
    lockExpiration,
    recoveryInterval,
    pollInterval,
    redeliveryBound: lockExpiration + recoveryInterval + pollInterval
  }
}

/**
 * Whether a script is the Redis store's lock recovery (its `resetQueue`):
 * recognised by its text. A test (writeBehindDurable.redis.test.ts) fails if
 * an effect upgrade changes it.
 */
const isRecoveryScript = (lua: string): boolean =>
  lua.includes("recovery revokes ownership") && lua.includes('redis.call("HGETALL", key_pending)')

/** `PersistedQueue.layer` over effect's Redis store, with the timings above. */
export const layerQueueRedis = (
  options?: QueueRedisOptions
): Layer.Layer<PersistedQueue.PersistedQueueFactory, never, Redis.Redis> => {
  const timings = queueRedisTimings(options)
  const connected = Layer.effect(
    Redis.Redis,
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      // Do not start the queue before Redis answers (bounded: with Redis
      // still down after 10 s, go on; offers then fail, and recovery retries).
      yield* redis
        .send("PING")
        .pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 }), Effect.ignore)
      const clock = yield* Clock.Clock
      const warn = Warn.make(() => clock.currentTimeMillisUnsafe())
      return Redis.Redis.of({
        ...redis,
        eval: (script) => {
          const run = redis.eval(script)
          if (!isRecoveryScript(script.lua)) return run
          // effect 4.1's Redis store runs this script on a loop that ends at
          // its first error, and with it every later recovery of a crashed
          // process's writes. A failed recovery is a warning; the loop goes
          // on and the next one, `recoveryInterval` later, tries again.
          return (...params) =>
            run(...params).pipe(
              Effect.catch((error) =>
                Effect.as(
                  warn(
                    "durable-recovery",
                    `cachet: durable write-behind could not recover expired locks (retried every ${timings.recoveryInterval} ms): ${error.cause instanceof Error ? error.cause.message : String(error.cause)}`
                  ),
                  undefined as never
                )
              )
            )
        }
      })
    })
  )
  return PersistedQueue.layer.pipe(
    Layer.provide(
      PersistedQueue.layerStoreRedis({
        prefix: options?.prefix,
        lockExpiration: timings.lockExpiration,
        lockRefreshInterval: timings.recoveryInterval,
        pollInterval: timings.pollInterval
      })
    ),
    Layer.provide(connected)
  )
}
