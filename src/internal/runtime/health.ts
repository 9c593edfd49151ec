/**
 * `Cachet.health`: one report of what a health endpoint needs (the store
 * answers and how fast, its breakers, its bus, the journal, write-behind,
 * events), built on demand. Nothing here runs unless asked.
 *
 * @internal
 */
import { Cause, type Clock, Effect, Exit } from "effect"
import type { BreakerHealth, BusHealth, StoreService } from "../store.ts"
import type { KeyspaceState } from "./keyspaces.ts"
import type { Observe } from "./observe.ts"

/** The figures of one keyspace in a health report. */
export interface KeyspaceHealth {
  /** Write-behind operations queued or being written. */
  readonly writeBehindQueued: number
  /** Whether the keyspace bypasses the cache in this process (journal overflow, until a resync). */
  readonly bypassed: boolean
}

/** A health report (see `Cachet.Health`). */
export interface Health {
  /**
   * `"down"`: the store did not answer its ping. `"degraded"`: it answers,
   * but a breaker is not closed, the bus is not subscribed, invalidations
   * wait in the journal, or a keyspace bypasses the cache. Else `"ok"`.
   */
  readonly status: "ok" | "degraded" | "down"
  /** When the report was made (the runtime's clock, ms). */
  readonly checkedAt: number
  readonly store: {
    readonly name: string
    /** Whether the ping succeeded. */
    readonly ok: boolean
    /** How long the ping took (the runtime's clock, ms). */
    readonly latencyMillis: number
    /** The ping's error message, when it failed. */
    readonly error: string | undefined
  }
  /** One per breaker of the store (empty for a store without breakers). */
  readonly breakers: ReadonlyArray<BreakerHealth>
  /** The invalidation bus (TieredStore with its bus on), else `undefined`. */
  readonly bus: BusHealth | undefined
  /** Invalidations waiting for the store to take them. */
  readonly journalDepth: number
  /** Write-behind operations queued or being written, in total. */
  readonly writeBehindQueued: number
  /** `Cachet.events` subscribers, and events dropped because one of them was full. */
  readonly events: { readonly subscribers: number; readonly dropped: number }
  readonly keyspaces: Readonly<Record<string, KeyspaceHealth>>
}

export interface Deps {
  readonly store: StoreService
  readonly clock: Clock.Clock
  readonly observe: Observe
  readonly journalDepth: () => number
  readonly states: () => ReadonlyArray<KeyspaceState>
  readonly bypassed: (state: KeyspaceState) => boolean
}

const noBreakers: ReadonlyArray<BreakerHealth> = []

export const make = ({ store, clock, observe, journalDepth, states, bypassed }: Deps): Effect.Effect<Health> =>
  Effect.gen(function* () {
    const started = clock.currentTimeNanosUnsafe()
    const ping = yield* Effect.exit(store.ping)
    const latencyMillis = Number(clock.currentTimeNanosUnsafe() - started) / 1e6
    const own = store.health === undefined ? undefined : yield* store.health
    const breakers = own?.breakers ?? noBreakers
    const bus = own?.bus
    const keyspaces: Record<string, KeyspaceHealth> = {}
    let writeBehindQueued = 0
    let anyBypassed = false
    for (const state of states()) {
      const skip = bypassed(state)
      anyBypassed ||= skip
      writeBehindQueued += state.counters.writeBehindDepth
      keyspaces[state.keyspace.name] = { writeBehindQueued: state.counters.writeBehindDepth, bypassed: skip }
    }
    const depth = journalDepth()
    const ok = Exit.isSuccess(ping)
    const status = !ok
      ? "down"
      : breakers.some((b) => b.state !== "closed") || (bus !== undefined && !bus.subscribed) || depth > 0 || anyBypassed
        ? "degraded"
        : "ok"
    return {
      status,
      checkedAt: clock.currentTimeMillisUnsafe(),
      store: {
        name: store.name,
        ok,
        latencyMillis,
        error: Exit.isSuccess(ping) ? undefined : pingError(ping.cause)
      },
      breakers,
      bus,
      journalDepth: depth,
      writeBehindQueued,
      events: { subscribers: observe.subscribers(), dropped: observe.dropped() },
      keyspaces
    } satisfies Health
  })

const pingError = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}
