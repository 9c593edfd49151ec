/**
 * Strategies: *how* a keyspace is cached. Each is a combinator over the
 * effect that loads (or writes) the value; it keeps that effect's `A`, `E` and
 * `R`, and adds only `Cachet` to `R` (and `CacheStoreError` to `E` in strict
 * mode).
 *
 * | strategy | read speed | freshness | when |
 * |---|---|---|---|
 * | `cacheAside` | hit: memory speed; miss: loader | fresh only (stale only if the loader fails) | the default |
 *
 * This module does not talk to any store: strategies run on the `Cachet`
 * runtime, which runs on whatever `CacheStore` its layer was given.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import { Effect as E } from "effect"
import { dual } from "effect/Function"
import type { CacheStoreError } from "./CacheError.ts"
import type { CachetService } from "./internal/runtime.ts"
import * as internal from "./internal/strategy.ts"
import type * as Keyspace from "./Keyspace.ts"

/**
 * Options shared by strategies.
 *
 * - `onStoreError`: `"degrade"` (default) reads a store failure as a miss and
 *   lets the loader answer, with `E` unchanged; `"fail"` surfaces it as
 *   `CacheStoreError` in `E`.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * const strict: Strategy.Options = { onStoreError: "fail" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly onStoreError?: "degrade" | "fail" | undefined
}

/**
 * The error a strategy adds for its options: `CacheStoreError` in strict
 * mode, nothing otherwise.
 *
 * @example
 * ```ts
 * import type { Strategy } from "cachet"
 * type E = Strategy.StrictError<{ onStoreError: "fail" }> // CacheStoreError
 * ```
 *
 * @since 0.1.0
 * @category type-level
 */
export type StrictError<O> = O extends { readonly onStoreError: "fail" } ? CacheStoreError : never

/**
 * A read strategy as a value, for `Cachet.cached` and `Strategy.layer`:
 * given a keyspace and parameters, a combinator over the loader.
 *
 * @example
 * ```ts
 * import { Cachet, Strategy } from "cachet"
 * const pick: Strategy.Strategy = Strategy.cacheAside
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Strategy = <P, A, EN>(
  keyspace: Keyspace.Keyspace<P, A, EN>,
  params: P
) => <E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | EN, R | CachetService>

/**
 * Cache-aside (lazy loading): a fresh entry is returned; otherwise the loader
 * runs (once per key across concurrent callers) and its value is stored.
 *
 * **Details**
 *
 * - A stale entry (past `ttl`, inside `staleFor`) is not served, except as the
 *   fallback when the loader fails (stale-if-error).
 * - Loader failures are not cached, unless the keyspace asks for negative
 *   caching.
 * - In degrade mode (default) a store failure is logged, counted and read as
 *   a miss: the loader answers and `E` is unchanged. With
 *   `{ onStoreError: "fail" }` it fails with `CacheStoreError`.
 *
 * ```text
 * time ──────────────|ttl──────────────|ttl+staleFor──────▶
 *        fresh: hit  │ stale: load;    │ gone: load
 *                    │ stale if the    │
 *                    │ loader fails    │
 * ```
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace, Strategy } from "cachet"
 *
 * const Users = Keyspace.make({ name: "user", key: "user:{id}", value: Schema.String, ttl: "5 minutes" })
 * const findUser = (id: number) => Effect.succeed(`user ${id}`)
 *
 * const getUser = (id: number) => findUser(id).pipe(Strategy.cacheAside(Users, { id }))
 * const getUserStrict = (id: number) => Strategy.cacheAside(findUser(id), Users, { id }, { onStoreError: "fail" })
 * ```
 *
 * @since 0.1.0
 * @category strategies
 */
export const cacheAside: {
  <P, A, EN, const O extends Options = {}>(
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): <E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | EN | StrictError<O>, R | CachetService>
  <A, E, R, P, EN, const O extends Options = {}>(
    self: Effect.Effect<A, E, R>,
    keyspace: Keyspace.Keyspace<P, A, EN>,
    params: P,
    options?: O
  ): Effect.Effect<A, E | EN | StrictError<O>, R | CachetService>
} = dual((args) => E.isEffect(args[0]), internal.cacheAside)
