/**
 * Shared fixtures of the tiered suites: cache instances in this process on a
 * harness server, and real-time helpers. Everything here waits on real timers:
 * pub/sub delivery, reconnections and leases happen in real time.
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { CacheStore } from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as TieredStore from "../../src/redis/TieredStore.ts"
import { eventually } from "../redis/helpers.ts"

export { eventually, rawClient, runId, sharedServer, sleepReal } from "../redis/helpers.ts"

/** One cache instance (runtime + tiered store) as a built context. */
export type Instance = Context.Context<Cachet.Cachet | CacheStore | TieredStore.Tiered>

/** Builds a cache instance in the current scope. */
export const instance = <E = never, R = never>(
  options: TieredStore.Options<E, R>
): Effect.Effect<Instance, E, R | Scope.Scope> =>
  Layer.build(Cachet.layer().pipe(Layer.provideMerge(TieredStore.layer(options))))

/** The tiered stats of an instance. */
export const statsOf = (ctx: Instance) => Context.get(ctx, TieredStore.Tiered).stats

/** Waits until the instance's bus subscription is confirmed. */
export const subscribed = (ctx: Instance, timeoutMs = 5_000) =>
  eventually(
    Effect.map(statsOf(ctx), (s) => s.bus?.subscribed === true),
    timeoutMs,
    "bus subscribed"
  )

/** Runs an effect against an instance. */
export const on =
  (ctx: Instance) =>
  <A, E>(effect: Effect.Effect<A, E, Cachet.Cachet | CacheStore | TieredStore.Tiered>): Effect.Effect<A, E> =>
    Effect.provide(effect, ctx)
