/**
 * The coherence workload: clients (cache instances, in this process or in a
 * child process) run a random mix of slow loads, explicit writes and
 * invalidations against a versioned register per key, and record the history
 * the checker judges. Shared by `test/coherence/`, its child process
 * (`child.ts`) and `npm run soak -- --coherence`.
 */
import { Clock, Context, Effect, Layer, Schema, type Scope, Semaphore } from "effect"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as TieredStore from "../../src/redis/TieredStore.ts"
import * as Strategy from "../../src/Strategy.ts"
import type { Operation } from "./checker.ts"

export const Items = Keyspace.make({
  name: "item",
  key: "{id}",
  value: Schema.Number,
  ttl: "1 minute",
  tags: (p) => ["items", `item:${p.id}`]
})

/** A clock `offset` ms away from `base` (an instance whose clock is skewed). */
export const skewed = (base: Clock.Clock, offset: number): Clock.Clock => ({
  currentTimeMillisUnsafe: () => base.currentTimeMillisUnsafe() + offset,
  currentTimeMillis: Effect.sync(() => base.currentTimeMillisUnsafe() + offset),
  currentTimeNanosUnsafe: () => base.currentTimeNanosUnsafe() + BigInt(offset) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => base.currentTimeNanosUnsafe() + BigInt(offset) * 1_000_000n),
  monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
  monotonicTimeNanos: base.monotonicTimeNanos,
  sleep: (duration) => base.sleep(duration)
})

/**
 * Where the instances keep their entries (JSON: it is also passed to a child
 * process). `faults: true` gives short bounds for fault runs: 200 ms calls,
 * a breaker open 200 ms after 3 failures, a journal replayed every 50 ms.
 */
export type Setup =
  | { readonly store: "redis"; readonly url: string; readonly prefix: string; readonly faults?: boolean }
  | {
      readonly store: "cluster"
      readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>
      readonly prefix: string
      readonly faults?: boolean
    }
  | {
      readonly store: "tiered"
      readonly url: string
      readonly prefix: string
      readonly bus: boolean
      readonly l1MaxTtl: number
      readonly faults?: boolean
    }

const faultBounds = { commandTimeout: 200, breaker: { failures: 3, openFor: "200 millis" } } as const

/** The runtime of one instance of `setup`, on `clock`. */
export const runtimeLayer = (setup: Setup, clock: Clock.Clock): Layer.Layer<Cachet.Cachet> => {
  const bounds = setup.faults === true ? faultBounds : {}
  const cachet = Cachet.layer(setup.faults === true ? { journalRetry: "50 millis" } : {})
  const withStore =
    setup.store === "redis"
      ? cachet.pipe(Layer.provide(RedisStore.layer({ url: setup.url, prefix: setup.prefix, ...bounds })))
      : setup.store === "cluster"
        ? cachet.pipe(Layer.provide(RedisStore.layer({ cluster: [...setup.nodes], prefix: setup.prefix, ...bounds })))
        : cachet.pipe(
            Layer.provideMerge(
              TieredStore.layer({
                l2: { url: setup.url, prefix: setup.prefix, ...bounds },
                bus: setup.bus,
                l1MaxTtl: `${setup.l1MaxTtl} millis`
              })
            )
          )
  return withStore.pipe(Layer.provide(Layer.succeed(Clock.Clock, clock)))
}

/** Polls (real time, bounded) until a TieredStore instance's bus subscription is confirmed. */
const subscribed = (ctx: Context.Context<Cachet.Cachet>): Effect.Effect<void, Error> =>
  Effect.gen(function* () {
    const tiered = Context.getOption(ctx as Context.Context<unknown>, TieredStore.Tiered)
    if (tiered._tag === "None") return
    for (let i = 0; i < 500; i++) {
      if ((yield* tiered.value.stats).bus?.subscribed === true) return
      yield* sleepReal(10)
    }
    return yield* Effect.fail(new Error("bus not subscribed after 5 s"))
  })

/** One instance of `setup` with its clock `offset` ms off, ready (its bus subscribed) when it answers. */
export const instance = (
  setup: Setup,
  offset: number
): Effect.Effect<Context.Context<Cachet.Cachet>, Error, Scope.Scope> =>
  Effect.clockWith((base) => Layer.build(runtimeLayer(setup, skewed(base, offset)))).pipe(
    Effect.tap((ctx) => (setup.store === "tiered" && setup.bus ? subscribed(ctx) : Effect.void))
  )

/** The writes a client does: 0 invalidate, 1 set, 2 invalidateTag of the key's tag, 3 of the tag of all. */
export const writeKinds = ["invalidate", "set", "invalidateTag(item)", "invalidateTag(items)"] as const

/**
 * A cache-aside read of `id` on an instance: its loader (run on a miss only)
 * reads the source's version, then takes `loadFor` ms.
 */
export const readOp = (id: number, loadFor: number, source: Effect.Effect<number>) =>
  source.pipe(
    Effect.tap(() => (loadFor > 0 ? sleepReal(loadFor) : Effect.void)),
    Strategy.cacheAside(Items, { id })
  )

/** The cache side of a write (the source is already at `version`). */
export const writeOp = (how: number, id: number, version: number): Effect.Effect<void, unknown, Cachet.Cachet> =>
  how === 0
    ? Cachet.invalidate(Items, { id })
    : how === 1
      ? Cachet.set(Items, { id }, version)
      : how === 2
        ? Cachet.invalidateTag(`item:${id}`)
        : Cachet.invalidateTag("items")

/**
 * A client of the workload: an instance in this process, or one in a child
 * process (`children.ts`). An operation that fails (its process was killed)
 * is recorded as unacknowledged.
 */
export interface Client {
  readonly name: string
  readonly read: (id: number, loadFor: number, source: () => number) => Effect.Effect<number, unknown>
  readonly write: (how: number, id: number, version: number) => Effect.Effect<void, unknown>
  /**
   * Makes the client ready for its next operation, before that operation is
   * invoked (a child process killed by a fault is started again here, so
   * that its start-up is not inside an operation that already holds a
   * version of the source).
   */
  readonly prepare: Effect.Effect<void, unknown>
  /** The instance's counts (of its current process, for a child process). */
  readonly counts: Effect.Effect<Counts, unknown>
}

/** What a client's instance counted: fenced writes, journalled invalidations, L1 resets (TieredStore). */
export interface Counts {
  readonly fencedWrites: number
  readonly journaled: number
  readonly l1Clears: number
}

/** The counts of the instance in context. */
export const countsOf: Effect.Effect<Counts, never, Cachet.Cachet> = Effect.gen(function* () {
  const stats = yield* Cachet.stats
  const tiered = yield* Effect.serviceOption(TieredStore.Tiered)
  const l1Clears = tiered._tag === "Some" ? (yield* tiered.value.stats).l1Clears : 0
  return { fencedWrites: stats.fencedWrites, journaled: stats.journaled, l1Clears }
})

/** A client on an instance of this process. */
export const inProcess = (name: string, ctx: Context.Context<Cachet.Cachet>): Client => ({
  name,
  prepare: Effect.void,
  read: (id, loadFor, source) => Effect.provide(readOp(id, loadFor, Effect.sync(source)), ctx),
  write: (how, id, version) => Effect.provide(writeOp(how, id, version), ctx),
  counts: Effect.provide(countsOf, ctx)
})

/** Sleeps on a real timer (the workload runs in real time against real servers). */
export const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const handle = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(handle))
  })

/** A history, and the operations that never returned (their process was killed). */
export interface Run {
  readonly history: Array<Operation>
  /** Reads that never returned (not in the history: they returned no version). */
  readonly lostReads: number
  /** Writes that never returned (in the history, unacknowledged). */
  readonly lostWrites: number
}

/**
 * Runs `ops` operations per client (concurrently across clients, one after
 * another within one) until done or until `until()` says stop; answers the
 * history. Deterministic choices from `seed`.
 */
export const runWorkload = (
  clients: ReadonlyArray<Client>,
  options: {
    readonly ops: number
    readonly seed?: number | undefined
    readonly keys?: number | undefined
    readonly until?: (() => boolean) | undefined
    /**
     * While true, every operation is a read: after a fault, so that what was
     * written during it is read back before anything overwrites it.
     */
    readonly readsOnly?: (() => boolean) | undefined
  }
): Effect.Effect<Run, unknown> =>
  Effect.gen(function* () {
    const versions = new Map<number, number>()
    const history: Array<Operation> = []
    let lostReads = 0
    let lostWrites = 0
    const t = () => performance.now()
    let seed = options.seed ?? 10
    const random = () => {
      seed = (seed * 16807) % 2147483647
      return seed / 2147483647
    }
    const keys = Array.from({ length: options.keys ?? 4 }, (_, i) => i + 1)
    const locks = new Map(keys.map((id) => [id, Semaphore.makeUnsafe(1)]))
    const lockOf = (id: number) => locks.get(id)!
    const op = (client: Client) =>
      Effect.gen(function* () {
        yield* client.prepare
        const id = keys[Math.floor(random() * keys.length)]!
        const roll = random()
        const invokedAt = t()
        if (roll < 0.65 || options.readsOnly?.() === true) {
          const loadFor = Math.floor(random() * 15)
          const read = yield* Effect.result(client.read(id, loadFor, () => versions.get(id) ?? 0))
          if (read._tag === "Failure") lostReads++
          else
            history.push({
              type: "read",
              client: client.name,
              key: String(id),
              version: read.success,
              invokedAt,
              completedAt: t()
            })
          return
        }
        const how = Math.floor(random() * 4)
        // One write of a key at a time (loads stay concurrent with them): two
        // overlapping writes of a key reach the store in either order, and a
        // cache cannot see the source's versions to tell which is newer, so
        // "set v18" landing after "invalidate v19" is the cache doing as told.
        // What the checker holds the cache to is the rest: a load, however
        // slow, never undoes a write or invalidation acknowledged before.
        yield* Semaphore.withPermit(
          lockOf(id),
          Effect.gen(function* () {
            const invokedAt = t()
            const version = (versions.get(id) ?? 0) + 1
            versions.set(id, version)
            const write = yield* Effect.result(client.write(how, id, version))
            if (write._tag === "Failure") lostWrites++
            history.push({
              type: "write",
              client: `${client.name} ${writeKinds[how]}`,
              key: String(id),
              version,
              invokedAt,
              completedAt: write._tag === "Success" ? t() : undefined
            })
          })
        )
      })
    yield* Effect.forEach(
      clients,
      (client) =>
        Effect.gen(function* () {
          for (let i = 0; i < options.ops && !(options.until?.() ?? false); i++) yield* op(client)
        }),
      { concurrency: "unbounded", discard: true }
    )
    return { history, lostReads, lostWrites }
  })
