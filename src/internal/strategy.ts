/**
 * Strategy machinery over the runtime. Public signatures and docs live in
 * `Strategy.ts`.
 *
 * @internal
 */
import { Cause, Effect, Exit } from "effect"
import type { CacheStoreError } from "../CacheError.ts"
import type { StoredEntry } from "../CacheStore.ts"
import type { Keyspace } from "../Keyspace.ts"
import { type CachetService, FRESH, GONE, type KeyspaceState, type RuntimeService, service } from "./runtime.ts"

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
  strict: boolean
) => Effect.Effect<unknown, unknown, unknown>

/** Serves a fresh entry: its value, or its cached error for a negative entry. */
const serve = (entry: StoredEntry): Effect.Effect<unknown, unknown> =>
  entry.negative ? Effect.fail(entry.value) : Effect.succeed(entry.value)

/**
 * Reads `key` and either serves a fresh hit or hands over to `onEntry`.
 * With a store in the process the read is synchronous: a hit is one
 * `flatMap` on the service and one `succeed`.
 */
export const readThrough = (
  loader: Effect.Effect<unknown, unknown, unknown>,
  keyspace: Keyspace<any, any, any>,
  params: unknown,
  strict: boolean,
  onEntry: OnEntry
): Effect.Effect<unknown, unknown, unknown> =>
  Effect.flatMap(service, (rt) => {
    // After the layer closed there is no cache to use: the loader answers.
    if (rt.isClosed()) return loader
    const state = rt.stateOf(keyspace)
    const key = rt.keyOf(state, params)
    if (key === undefined) return loader
    if (rt.readSync !== null) {
      const entry = rt.readSync(state, key)
      if (entry !== undefined && rt.stateNow(entry) === FRESH) {
        state.counters.hits++
        return serve(entry)
      }
      return onEntry(rt, state, key, params, loader, entry, strict)
    }
    return Effect.flatMap(rt.read(state, key, strict), (entry) => {
      if (entry !== undefined && rt.stateNow(entry) === FRESH) {
        state.counters.hits++
        return serve(entry)
      }
      return onEntry(rt, state, key, params, loader, entry, strict)
    })
  })

/**
 * Loads through single-flight and answers from the load: the value on
 * success; on failure the stale entry if it is still inside its stale window
 * (stale-if-error), else the loader's failure.
 */
export const loadOrStale: OnEntry = (rt, state, key, params, loader, entry, strict) =>
  Effect.flatMap(rt.load(state, key, params, loader), ({ exit, storeError }) => {
    if (Exit.isSuccess(exit)) {
      state.counters.misses++
      return strict && storeError !== undefined ? Effect.fail(storeError) : exit
    }
    if (entry !== undefined && !entry.negative && rt.stateNow(entry) !== GONE && !Cause.hasInterruptsOnly(exit.cause)) {
      state.counters.staleHits++
      return Effect.succeed(entry.value)
    }
    state.counters.misses++
    return exit
  })

/** The error a strategy adds in strict mode. */
export type StrictError<O> = O extends { readonly onStoreError: "fail" } ? CacheStoreError : never

/** `Strategy.cacheAside`, data-first. */
export const cacheAside = <A, E, R, P, EN, O extends { readonly onStoreError?: "degrade" | "fail" | undefined }>(
  self: Effect.Effect<A, E, R>,
  keyspace: Keyspace<P, A, EN>,
  params: P,
  options?: O
): Effect.Effect<A, E | EN | StrictError<O>, R | CachetService> =>
  readThrough(self, keyspace, params, options?.onStoreError === "fail", loadOrStale) as Effect.Effect<
    A,
    E | EN | StrictError<O>,
    R | CachetService
  >
