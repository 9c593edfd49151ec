/**
 * The runtime's per-keyspace state (counters, codec, load-time histogram),
 * created on first use, and the one place a key is rendered from parameters.
 *
 * @internal
 */
import { Metric } from "effect"
import type { CacheKeyError } from "../../CacheError.ts"
import type { Keyspace } from "../../Keyspace.ts"
import type { EntryCodec } from "../store.ts"
import * as Policy from "./policy.ts"
import { Counters, type Metrics, registerKeyspace } from "./stats.ts"

/** What the runtime keeps per keyspace. */
export interface KeyspaceState {
  readonly keyspace: Keyspace<any, any, any>
  readonly counters: Counters
  readonly codec: EntryCodec
  readonly loadDuration: Metric.Histogram<number>
  /** Mean loader run time in ms (moving average); -1 before the first load. */
  meanLoadMillis: number
  /** The keyspace's load policy (lifetimes, timeouts, backoff), compiled once. */
  readonly policy: Policy.Policy
  /** Whether fresh reads extend freshness (one check on the hit path). */
  readonly sliding: boolean
}

type WarnUnsafe = (what: string, message: string, annotations?: Record<string, unknown>) => void

export interface Keyspaces {
  /** Per-keyspace state, created on first use. */
  readonly stateOf: (keyspace: Keyspace<any, any, any>) => KeyspaceState
  /** The store key of `params`, or `undefined` after counting a key error. */
  readonly keyOf: (state: KeyspaceState, params: unknown) => string | undefined
  readonly all: () => ReadonlyArray<KeyspaceState>
}

const loadBoundaries = Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })

export const make = (metrics: Metrics, warnUnsafe: WarnUnsafe): Keyspaces => {
  const states = new Map<string, KeyspaceState>()

  const register = (keyspace: Keyspace<any, any, any>, existing: KeyspaceState | undefined): KeyspaceState => {
    if (existing !== undefined) {
      // Two keyspace objects with one name would share keys: refuse.
      throw new Error(
        `cachet: two different keyspaces are named ${JSON.stringify(keyspace.name)}; keyspace names must be unique`
      )
    }
    const counters = new Counters()
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
      loadDuration: metrics.histogram(
        "load_duration_seconds",
        "Loader run time",
        { keyspace: keyspace.name },
        loadBoundaries
      ),
      meanLoadMillis: -1,
      policy: Policy.ofKeyspace(keyspace),
      sliding: keyspace.sliding === true
    }
    registerKeyspace(metrics, keyspace.name, counters)
    states.set(keyspace.name, state)
    return state
  }

  const stateOf = (keyspace: Keyspace<any, any, any>): KeyspaceState => {
    const existing = states.get(keyspace.name)
    if (existing !== undefined && existing.keyspace === keyspace) return existing
    return register(keyspace, existing)
  }

  const keyOf = (state: KeyspaceState, params: unknown): string | undefined => {
    try {
      return state.keyspace.keyUnsafe(params)
    } catch (error) {
      state.counters.keyErrors++
      warnUnsafe(
        `key:${state.keyspace.name}`,
        `cachet: bypassing the cache: ${String((error as CacheKeyError).message)}`,
        { keyspace: state.keyspace.name }
      )
      return undefined
    }
  }

  return { stateOf, keyOf, all: () => [...states.values()] }
}
