/**
 * Cluster-wide single flight on Redis: the runtime's `LoadLease` service.
 *
 * **Layout**
 *
 * One key per key being loaded: `<P>:~lease:<store key>` (`P` the escaped
 * prefix), holding a random token, set with `SET NX PX <lease>`. Keyspace
 * names never start with `~`, so lease keys never meet entries or tags.
 *
 * **Protocol**
 *
 * 1. Look for the value in the store (another process may just have stored
 *    it): found, done.
 * 2. `SET lease token NX PX lease`: taken, look for the value once more (the
 *    previous holder may have stored it and released the lease since our
 *    last look), else run the load holding the lease. A fiber
 *    renews it every `lease / 3` with a compare-and-`PEXPIRE` script; if the
 *    renewal finds another token (the lease expired, someone took it), the
 *    lease is *lost*: counted and logged, the load goes on and its result is
 *    still returned and stored, and the lease is not released. Otherwise the
 *    load's finalizer releases it with a compare-and-`DEL` script, after the
 *    load stored its result (the load effect includes the write).
 * 3. Not taken: sleep `pollInterval`, look for the value, try the lease
 *    again; after `wait`, run the load without the lease.
 *
 * Redis failing (no connection, timeout) on `SET NX` means the load runs at
 * once without a lease (degrade); failures to renew or release are ignored
 * (the lease then expires on its own).
 *
 * Renewals, polls and the `wait` deadline run on real timers, as Redis's own
 * expiry does (a frozen `TestClock` must not stop a renewal).
 *
 * @internal
 */
import { randomBytes } from "node:crypto"
import { Effect, Result } from "effect"
import { LoadLease } from "../../internal/loadLease.ts"
import * as Warn from "../../internal/warn.ts"
import type { ClusterSingleFlight } from "../../Keyspace.ts"
import type * as IoRedis from "../IoRedis.ts"
import * as clientInternal from "./client.ts"
import { call, sleepReal } from "./io.ts"

/** Counters of one lease service. */
export interface LeaseStats {
  /** Leases taken (one load each). */
  readonly acquired: number
  /** Loads that found the lease taken and waited. */
  readonly waited: number
  /** Waits answered by the value another process stored. */
  readonly found: number
  /** Waits that ran out (`wait`) and loaded without the lease. */
  readonly timeouts: number
  /** Leases lost while their load ran (expired and taken by another process). */
  readonly lost: number
  /** Loads that ran without a lease because Redis failed. */
  readonly unavailable: number
}

const RENEW_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`

const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** Builds the lease service on `io`'s client, for keys of the escaped `namespace`. */
export const make = (
  io: IoRedis.Service,
  namespace: string,
  commandTimeout: number | undefined
): { readonly service: LoadLease["Service"]; readonly stats: () => LeaseStats } => {
  const client = io.client
  const timeout = commandTimeout ?? io.commandTimeout ?? clientInternal.DEFAULT_COMMAND_TIMEOUT
  const stats = { acquired: 0, waited: 0, found: 0, timeouts: 0, lost: 0, unavailable: 0 }
  const rateLimited = Warn.make(Date.now)
  const warn = (what: string, message: string, key: string): Effect.Effect<void> =>
    rateLimited(what, `cachet: ${message}`, { key })

  const redis = <A>(op: string, run: () => Promise<A>) => call(client, "redis-lease", op, timeout, run)

  const holding = <A>(leaseKey: string, token: string, policy: ClusterSingleFlight, load: Effect.Effect<A>) =>
    Effect.scoped(
      Effect.gen(function* () {
        let lost = false
        // Added first, so it runs last: after the renewal fiber has stopped.
        yield* Effect.addFinalizer(() =>
          lost ? Effect.void : Effect.ignore(redis("release", () => client.eval(RELEASE_LUA, 1, leaseKey, token)))
        )
        const every = Math.max(1, Math.floor(policy.lease / 3))
        yield* Effect.forkScoped(
          Effect.gen(function* () {
            while (true) {
              yield* sleepReal(every)
              const renewed = yield* Effect.result(
                redis("renew", () => client.eval(RENEW_LUA, 1, leaseKey, token, String(policy.lease)))
              )
              // A failed call is retried at the next tick; only "not ours
              // any more" is a loss.
              if (Result.isSuccess(renewed) && Number(renewed.success) === 0) {
                lost = true
                stats.lost++
                return yield* warn(
                  "lost",
                  `lease of ${leaseKey} lost while loading (it expired and another process may have taken it); the load goes on`,
                  leaseKey
                )
              }
            }
          })
        )
        return yield* load
      })
    )

  const run = <A>(
    key: string,
    policy: ClusterSingleFlight,
    load: Effect.Effect<A>,
    poll: Effect.Effect<A | undefined>
  ): Effect.Effect<A> =>
    Effect.gen(function* () {
      const first = yield* poll
      if (first !== undefined) {
        stats.found++
        return first
      }
      const leaseKey = `${namespace}:~lease:${key}`
      const deadline = performance.now() + policy.wait
      let waited = false
      while (true) {
        const token = randomBytes(12).toString("base64url")
        const taken = yield* Effect.result(redis("lease", () => client.set(leaseKey, token, "PX", policy.lease, "NX")))
        if (Result.isFailure(taken)) {
          stats.unavailable++
          yield* warn(
            "unavailable",
            `cluster-wide single flight unavailable (${taken.failure.reason}); loading without a lease`,
            leaseKey
          )
          return yield* load
        }
        if (taken.success === "OK") {
          stats.acquired++
          // The previous holder may have stored the value and released the
          // lease between our last look and our SET NX: look once more,
          // holding the lease, before loading.
          return yield* holding(
            leaseKey,
            token,
            policy,
            Effect.flatMap(poll, (found) => {
              if (found === undefined) return load
              stats.found++
              return Effect.succeed(found)
            })
          )
        }
        const now = performance.now()
        if (now >= deadline) {
          stats.timeouts++
          yield* warn("timeout", `waited ${policy.wait} ms for another process's load; loading here`, leaseKey)
          return yield* load
        }
        if (!waited) {
          waited = true
          stats.waited++
        }
        yield* sleepReal(Math.min(policy.pollInterval, deadline - now))
        const found = yield* poll
        if (found !== undefined) {
          stats.found++
          return found
        }
      }
    })

  return { service: LoadLease.of({ run }), stats: () => ({ ...stats }) }
}
