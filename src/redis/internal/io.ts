/**
 * The one bounded ioredis call (under the store, the bus and the lease), with
 * ioredis errors translated into `CacheStoreError` once, and the split of
 * `RedisStore.LayerOptions` into a connection and store options.
 *
 * @internal
 */
import { type Duration, Effect, type Scope } from "effect"
import type { Cluster } from "ioredis"
import { CacheStoreError, type StoreErrorReason } from "../../CacheError.ts"
import type * as IoRedis from "../IoRedis.ts"
import * as clientInternal from "./client.ts"

/** The `store` of every `CacheStoreError` of the Redis store. */
export const STORE = "redis"
/** The node key of a standalone server. */
export const STANDALONE = "standalone"

/** Keys per multi-key command (`MGET`, a batch of writes): larger calls go out in several. */
export const MAX_KEYS_PER_CALL = 1_000

export const storeError = (op: string, reason: StoreErrorReason, cause?: unknown): CacheStoreError =>
  new CacheStoreError(cause === undefined ? { reason, op, store: STORE } : { reason, op, store: STORE, cause })

const unavailableReplies =
  /^(LOADING|BUSY|CLUSTERDOWN|MASTERDOWN|READONLY|OOM|TRYAGAIN|NOREPLICAS|MISCONF|NOAUTH|WRONGPASS|NOPERM)\b/

/** A call that did not answer in time (our own timer). */
export class TimedOut extends Error {
  constructor(millis: number) {
    super(`no reply within ${millis} ms`)
    this.name = "TimedOut"
  }
}

/** Why an ioredis call failed: the one translation of ioredis errors. */
export const reasonOf = (error: unknown): StoreErrorReason => {
  if (error instanceof TimedOut) return "Timeout"
  const message = error instanceof Error ? error.message : String(error)
  if (message.includes("timed out")) return "Timeout"
  if (error instanceof Error && error.name === "ReplyError") {
    return unavailableReplies.test(message) ? "Unavailable" : "Protocol"
  }
  // Connection refused/reset/closed, offline queue disabled, cluster not
  // ready, retries exhausted, socket timeout: no usable connection.
  return "Unavailable"
}

const redirectReply = /^(MOVED|ASK) (\d+) (\S+)$/

/** The redirect in an error reply (`MOVED <slot> <host:port>`, `ASK ...`), if it is one. */
export const redirectOf = (
  error: unknown
): { readonly kind: "MOVED" | "ASK"; readonly slot: number; readonly node: string } | undefined => {
  if (!(error instanceof Error) || error.name !== "ReplyError") return undefined
  const match = redirectReply.exec(error.message)
  if (match === null) return undefined
  return { kind: match[1] as "MOVED" | "ASK", slot: Number(match[2]), node: match[3]! }
}

/** ioredis's own fields that its MOVED handler updates (they are private; see `followRedirect`). */
interface ClusterInternals {
  readonly _groupsBySlot?: Array<number | undefined>
  readonly _groupsIds?: Record<string, number>
  readonly connectionPool?: { readonly findOrCreate?: (node: { host: string; port: number }) => unknown }
  readonly natMapper?: (key: string) => { host: string; port: number }
}

/**
 * Points `slot` at the node a MOVED reply named (what ioredis itself does
 * for a lone command) and refreshes the slot map in the background, so that
 * a retry goes to the new owner. ioredis follows a redirect only when every
 * command of an auto-pipeline got the same error and the others are
 * read-only: with EVALSHA writes and several slots per node in one pipeline,
 * a failover surfaces `MOVED` replies to the caller (issue #13). Reaches
 * into private fields on purpose; when they are renamed, the slot refresh
 * alone still repairs the map, a little later.
 */
export const followRedirect = (cluster: Cluster, redirect: NonNullable<ReturnType<typeof redirectOf>>): void => {
  if (redirect.kind === "MOVED") {
    const internals = cluster as unknown as ClusterInternals
    const owners = cluster.slots[redirect.slot]
    if (owners === undefined) cluster.slots[redirect.slot] = [redirect.node]
    else owners[0] = redirect.node
    try {
      const groups = internals._groupsBySlot
      const ids = internals._groupsIds
      if (groups !== undefined && ids !== undefined)
        groups[redirect.slot] = ids[cluster.slots[redirect.slot]!.join(";")]
      const mapped = internals.natMapper?.(redirect.node)
      if (mapped !== undefined) internals.connectionPool?.findOrCreate?.(mapped)
    } catch {
      // The slot refresh below repairs the map.
    }
  }
  cluster.refreshSlotsCache()
}

/**
 * Sleeps on a real timer. I/O pacing (retries, lease renewals, polls for
 * another process's value) follows the wall clock that Redis expiry and other
 * processes live by, not Effect's `Clock` (which a test may have frozen).
 */
export const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), Math.max(0, millis))
    return Effect.sync(() => clearTimeout(timer))
  })

/** How a bounded call ended, for callers that track connection health. */
export type Outcome =
  /** Redis answered. */
  | "reply"
  /** Redis answered with an error reply. */
  | "error-reply"
  /** The promise failed without an answer (a closed connection, ioredis's own timeout). */
  | "failure"
  /** Our own timer fired first. */
  | "timeout"
  /** Never sent: the connection did not become ready, or ioredis threw synchronously. */
  | "refused"
  | "interrupted"

/**
 * Redirects a Cluster call follows within its one timer: a failover or a
 * restarted node that still claims its old slots can cost two hops.
 */
const MAX_REDIRECTS = 3

/** One ioredis call, as `bounded` runs it. */
// On a Cluster, within the same timer:
// - a MOVED/ASK reply (a redirect, not a failure) is followed, up to
//   MAX_REDIRECTS times: the slot is pointed at the named node and `run` is
//   sent again;
// - a failure without an answer (the connection of a master that died, or
//   that the slot refresh dropped) refreshes the slot map and sends `run`
//   once more: the slots may have moved to a promoted replica. The command
//   may have run before the connection closed; every command the store
//   sends may run twice (ordered writes of the same entry, tombstones, reads).
export interface Call<A> {
  readonly client: IoRedis.Client
  readonly store: string
  readonly op: string
  readonly timeout: number
  readonly run: () => Promise<A>
  /**
   * With a client that is connecting: `"settle"` waits (within the bound)
   * and then sends anyway, `"require"` fails unless it became ready,
   * `"none"` sends at once (a cluster node's own connection queues by itself).
   */
  readonly gate: "settle" | "require" | "none"
  /** Called when a MOVED/ASK reply is followed (once per call at most). */
  readonly onRedirect?: ((kind: "MOVED" | "ASK") => void) | undefined
  /** Called once when the call ends, before its result is delivered. */
  readonly onEnd?: ((outcome: Outcome, reason: StoreErrorReason | undefined) => void) | undefined
}

/**
 * Runs one ioredis call bounded by `timeout` on a real timer (whatever the
 * Effect `Clock`): the one place ioredis promises meet Effect. Never throws;
 * every failure is a `CacheStoreError`.
 */
export const bounded = <A>(call: Call<A>): Effect.Effect<A, CacheStoreError> =>
  Effect.callback<A, CacheStoreError>((resume) => {
    const { client, store, op, timeout, run, onEnd } = call
    let pending = true
    let redirected = 0
    let resent = false
    const started = performance.now()
    const end = (outcome: Outcome, reason: StoreErrorReason | undefined) => {
      pending = false
      clearTimeout(timer)
      onEnd?.(outcome, reason)
    }
    const fail = (outcome: Outcome, reason: StoreErrorReason, cause: unknown) => {
      if (!pending) return
      end(outcome, reason)
      resume(Effect.fail(new CacheStoreError({ reason, op, store, cause })))
    }
    const timer = setTimeout(() => fail("timeout", "Timeout", new TimedOut(timeout)), timeout)
    const start = () => {
      if (!pending) return
      let promise: Promise<A>
      try {
        promise = run()
      } catch (error) {
        return fail("refused", reasonOf(error), error)
      }
      promise.then(
        (value) => {
          if (!pending) return
          end("reply", undefined)
          resume(Effect.succeed(value))
        },
        (error: unknown) => {
          const answered = error instanceof Error && error.name === "ReplyError"
          if (pending && clientInternal.isCluster(client)) {
            const redirect = redirectOf(error)
            if (redirect !== undefined && redirected < MAX_REDIRECTS) {
              redirected++
              call.onRedirect?.(redirect.kind)
              followRedirect(client, redirect)
              return start()
            }
            // Still redirected after MAX_REDIRECTS: the owner the replies
            // name cannot be reached (a dead master that the others still
            // name until its replica takes over). Not a protocol error.
            if (redirect !== undefined) {
              return fail(
                "failure",
                "Unavailable",
                new Error(
                  `slot ${redirect.slot} is served by ${redirect.node}, which cannot be reached (redirected there ${MAX_REDIRECTS} times)`,
                  { cause: error }
                )
              )
            }
            if (!answered && !resent) {
              resent = true
              // After the refresh, or 100 ms at most: a refresh that asks
              // a dying node first can take longer than the call may.
              let again: ReturnType<typeof setTimeout> | undefined
              const resend = () => {
                if (again === undefined) return
                clearTimeout(again)
                again = undefined
                start()
              }
              again = setTimeout(resend, 100)
              client.refreshSlotsCache(resend)
              return
            }
          }
          fail(answered ? "error-reply" : "failure", reasonOf(error), error)
        }
      )
    }
    const gate = call.gate === "none" ? undefined : clientInternal.connectingGate(client)
    if (gate === undefined) start()
    else if (call.gate === "require") {
      void gate.then((ready) =>
        ready ? start() : fail("refused", "Unavailable", new Error("connection closed before it was ready"))
      )
    } else {
      void clientInternal
        .settleConnecting(client, Math.max(1, timeout - (performance.now() - started)))
        .then(start, start)
    }
    return Effect.sync(() => {
      if (pending) end("interrupted", undefined)
    })
  })

/** `bounded`, for the bus and the lease: waits for a connecting client within the bound. */
export const call = <A>(
  client: IoRedis.Client,
  store: string,
  op: string,
  timeout: number,
  run: () => Promise<A>
): Effect.Effect<A, CacheStoreError> => bounded({ client, store, op, timeout, run, gate: "settle" })

/** The connection fields of `RedisStore.LayerOptions` and the like. */
export interface ConnectionFields extends Omit<IoRedis.Options, "commandTimeout" | "reservePool"> {
  readonly client?: IoRedis.Client | undefined
  readonly commandTimeout?: Duration.Input | undefined
}

/**
 * Options such as `RedisStore.LayerOptions` split into the connection (an
 * `IoRedis` service, created and closed with the scope, or an adopted client
 * left open) and the remaining options. Validated at the call: a bad option
 * throws, naming it. `commandTimeout` serves both.
 */
export const connection = <O extends ConnectionFields>(
  owner: string,
  options: O
): {
  readonly rest: Omit<O, Exclude<keyof ConnectionFields, "commandTimeout">>
  readonly io: Effect.Effect<IoRedis.Service, never, Scope.Scope>
} => {
  const { client, url, cluster, connectTimeout, socketTimeout, maxRetryDelay, redisOptions, clusterOptions, ...rest } =
    options
  if ([client, url, cluster].filter((x) => x !== undefined).length !== 1) {
    throw new Error(`cachet: ${owner} needs exactly one of the options "url", "cluster" and "client"`)
  }
  if (client !== undefined) {
    return {
      rest,
      io: Effect.as(clientInternal.attach(client, false), {
        client,
        isCluster: clientInternal.isCluster(client),
        commandTimeout: clientInternal.commandTimeoutOf(client)
      })
    }
  }
  const plan = clientInternal.planClient({
    url,
    cluster,
    commandTimeout: options.commandTimeout,
    connectTimeout,
    socketTimeout,
    maxRetryDelay,
    redisOptions,
    clusterOptions
  })
  return {
    rest,
    io: Effect.suspend(() => {
      const created = plan.create()
      return Effect.as(clientInternal.attach(created, true), {
        client: created,
        isCluster: clientInternal.isCluster(created),
        commandTimeout: plan.commandTimeout
      })
    })
  }
}
