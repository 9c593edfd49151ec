/**
 * The runtime's per-keyspace state (counters, codec, load-time histogram),
 * created on first use, and the one place a key is rendered from parameters.
 *
 * @internal
 */
import { Metric } from "effect"
import { CacheKeyError } from "../../CacheError.ts"
import type { Keyspace } from "../../Keyspace.ts"
import { versionedNamespace } from "../keyEncoding.ts"
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
  /** The first segment of the keyspace's store keys (`user`, `user@2`). */
  readonly namespace: string
  /**
   * The namespaces of the keyspace's earlier versions (at most the last
   * 8), probed on a miss to count `versionMisses`; `undefined` at version 1.
   */
  readonly olderNamespaces: ReadonlyArray<string> | undefined
  /** The keyspace's load policy (lifetimes, timeouts, backoff), compiled once. */
  readonly policy: Policy.Policy
  /** Whether fresh reads extend freshness (one check on the hit path). */
  readonly sliding: boolean
  /** The runtime this state belongs to (see `stateOf`'s slot on the keyspace). */
  readonly owner: object
}

/**
 * The slot on a keyspace object that holds the state of the runtime that
 * last looked it up: `stateOf` reads one property and compares its owner
 * instead of a `Map` lookup by name (the common case is one runtime per
 * process). Another runtime finds a foreign owner and takes the map path,
 * then takes the slot over. Non-enumerable, so that spreading a keyspace
 * (`{ ...Users }`) does not copy it.
 */
const slot: unique symbol = Symbol.for("cachet/Keyspace/runtimeState")

type Slotted = Keyspace<any, any, any> & { [slot]?: KeyspaceState | undefined }

/** The first segment of a keyspace's store keys (hand-built keyspaces: the name). */
export const namespaceOf = (keyspace: Keyspace<any, any, any>): string => keyspace.namespace ?? keyspace.name

/** Earlier versions probed on a miss. */
const OLDER_VERSIONS_PROBED = 8

type WarnUnsafe = (what: string, message: string, annotations?: Record<string, unknown>) => void

const describe = (keyspace: Keyspace<any, any, any>): string => {
  if (keyspace.fingerprint === undefined) return "a hand-built keyspace"
  const [namespace, key, ttl] = JSON.parse(keyspace.fingerprint) as [string, string, number]
  return `${namespace} with key ${JSON.stringify(key.length > 60 ? `${key.slice(0, 57)}...` : key)}, ttl ${ttl} ms`
}

export interface Keyspaces {
  /** Per-keyspace state, created on first use. */
  readonly stateOf: (keyspace: Keyspace<any, any, any>) => KeyspaceState
  /** The store key of `params`, or `undefined` after counting a key error. */
  readonly keyOf: (state: KeyspaceState, params: unknown) => string | undefined
  readonly all: () => ReadonlyArray<KeyspaceState>
  /** Empties the keyspaces' slots that hold this runtime's states (at close). */
  readonly release: () => void
}

const loadBoundaries = Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 16 })

export const make = (metrics: Metrics, warnUnsafe: WarnUnsafe): Keyspaces => {
  const states = new Map<string, KeyspaceState>()
  // This runtime's identity in the keyspaces' slots, and the keyspaces
  // whose slot it has written (duplicates included), emptied at close.
  const owner = {}
  const slotted = new Set<Slotted>()

  // Keyspaces that share a name with a different registered one: they
  // bypass the cache (every key is a CacheKeyError), counted and logged.
  const conflicts = new WeakMap<Keyspace<any, any, any>, KeyspaceState>()

  const register = (keyspace: Keyspace<any, any, any>): KeyspaceState => {
    const counters = new Counters()
    const namespace = namespaceOf(keyspace)
    const version = keyspace.version ?? 1
    const olderNamespaces: Array<string> = []
    for (let v = Math.max(1, version - OLDER_VERSIONS_PROBED); v < version; v++) {
      olderNamespaces.push(versionedNamespace(keyspace.name, v))
    }
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
      namespace,
      olderNamespaces: olderNamespaces.length === 0 ? undefined : olderNamespaces,
      policy: Policy.ofKeyspace(keyspace),
      sliding: keyspace.sliding === true,
      owner
    }
    registerKeyspace(metrics, keyspace.name, counters)
    states.set(keyspace.name, state)
    return state
  }

  /**
   * A second keyspace object with a registered name. The same definition
   * (equal fingerprints and the same value Schema object: one factory
   * called twice) shares the state; a
   * different one would share keys with another Schema or timeline: it is
   * reported now (an error log, naming both) and bypasses the cache, each
   * key a counted `CacheKeyError`, rather than a defect on first use.
   */
  const conflict = (keyspace: Keyspace<any, any, any>, existing: KeyspaceState): KeyspaceState => {
    const known = conflicts.get(keyspace)
    if (known !== undefined) return known
    const first = existing.keyspace
    const same =
      keyspace.fingerprint !== undefined &&
      keyspace.fingerprint === first.fingerprint &&
      keyspace.value === first.value &&
      keyspace.negative?.error === first.negative?.error
    if (same) {
      conflicts.set(keyspace, existing)
      return existing
    }
    const message = `two different keyspaces are named ${JSON.stringify(keyspace.name)} (${describe(
      existing.keyspace
    )} and ${describe(keyspace)}); the second bypasses the cache: keyspace names must be unique, or bump "version"`
    const refused: Keyspace<any, any, any> = {
      ...keyspace,
      keyUnsafe: () => {
        throw new CacheKeyError({ keyspace: keyspace.name, message })
      }
    }
    const state: KeyspaceState = { ...existing, keyspace: refused }
    conflicts.set(keyspace, state)
    existing.counters.duplicateKeyspaces++
    // Its own kind of warning per conflict: never rate-limited away.
    warnUnsafe(`duplicate:${keyspace.name}:${existing.counters.duplicateKeyspaces}`, `cachet: ${message}`, {
      keyspace: keyspace.name
    })
    return state
  }

  const lookup = (keyspace: Keyspace<any, any, any>): KeyspaceState => {
    const existing = states.get(keyspace.name)
    if (existing !== undefined && existing.keyspace === keyspace) return existing
    return existing === undefined ? register(keyspace) : conflict(keyspace, existing)
  }

  const stateOf = (keyspace: Keyspace<any, any, any>): KeyspaceState => {
    // The hit path: one property read and one comparison.
    const cached = (keyspace as Slotted)[slot]
    if (cached !== undefined && cached.owner === owner) return cached
    const state = lookup(keyspace)
    // Reflect.set: a keyspace frozen after its slot was made refuses
    // quietly (it then always takes the map path) rather than throwing.
    if (cached !== undefined) Reflect.set(keyspace, slot, state)
    else if (Object.isExtensible(keyspace)) {
      Object.defineProperty(keyspace, slot, { value: state, writable: true, enumerable: false, configurable: true })
    } else return state
    slotted.add(keyspace)
    return state
  }

  /** At close: the slots this runtime holds are emptied, so a closed runtime is not kept alive by a keyspace. */
  const release = () => {
    for (const keyspace of slotted) if (keyspace[slot]?.owner === owner) Reflect.set(keyspace, slot, undefined)
    slotted.clear()
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

  return { stateOf, keyOf, all: () => [...states.values()], release }
}
