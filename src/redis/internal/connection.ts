/**
 * The connection to Redis as the store uses it: per-node health (a stalled
 * connection fails fast, one probe at a time) and the bounded call on top of it.
 *
 * @internal
 */
import { Effect, type Scope } from "effect"
import type { Cluster, Redis } from "ioredis"
import { CacheStoreError, type StoreErrorReason } from "../../CacheError.ts"
import type * as IoRedis from "../IoRedis.ts"
import * as clientInternal from "./client.ts"
import { bounded } from "./io.ts"

/** The `store` of every `CacheStoreError` of the Redis store. */
export const STORE = "redis"
/** The node key of a standalone server. */
export const STANDALONE = "standalone"

export const storeError = (op: string, reason: StoreErrorReason, cause?: unknown): CacheStoreError =>
  new CacheStoreError(cause === undefined ? { reason, op, store: STORE } : { reason, op, store: STORE, cause })

const stalledError = (node: string) =>
  new Error(`connection to ${node} is stalled: a command timed out and nothing has been answered since`)

/**
 * Per node: whether its connection is stalled (in which connection epoch),
 * and the probe that may pass while it is.
 */
interface Health {
  epoch: number
  stalled: boolean
  probing: boolean
  nextProbeAt: number
}

export const nodeKeyOf = (redis: Redis): string => `${redis.options.host ?? "127.0.0.1"}:${redis.options.port ?? 6379}`

export interface Connection {
  readonly client: IoRedis.Client
  readonly cluster: Cluster | undefined
  readonly standalone: Redis | undefined
  /** Every call's bound, in ms. */
  readonly timeout: number
  /**
   * Runs one ioredis call against `node` (`io.ts`'s `bounded`: bounded by
   * the timeout, every error translated). `gated`: wait for the client's connection first
   * (not for calls on a cluster node's own connection, which queues by itself).
   *
   * While the node's connection is stalled, one call at a time may pass as
   * a probe, at most one per `timeout` after the previous probe ended; any
   * answer clears the stall. The others fail at once.
   */
  readonly exec: <A>(
    op: string,
    node: string,
    run: () => Promise<A>,
    gated?: boolean
  ) => Effect.Effect<A, CacheStoreError>
  /** Waits (within the timeout) for a client that is connecting; fails when it is not ready. */
  readonly ready: (op: string) => Effect.Effect<void, CacheStoreError>
}

/** Tracks the health of `io`'s connections for the current scope. */
export const make = (io: IoRedis.Service, timeout: number): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.gen(function* () {
    const client = io.client
    const cluster: Cluster | undefined = clientInternal.isCluster(client) ? client : undefined
    const standalone: Redis | undefined = cluster === undefined ? (client as Redis) : undefined
    const health = new Map<string, Health>()
    const healthOf = (node: string): Health => {
      let h = health.get(node)
      if (h === undefined) {
        h = { epoch: 0, stalled: false, probing: false, nextProbeAt: 0 }
        health.set(node, h)
      }
      return h
    }
    const reset = (node: string) => {
      const h = health.get(node)
      if (h !== undefined) {
        h.epoch++
        h.stalled = false
        h.probing = false
        h.nextProbeAt = 0
      }
    }
    const resetAll = () => {
      for (const node of health.keys()) reset(node)
    }
    // A new or closed connection is not stalled.
    const onNode = (redis: Redis) => reset(nodeKeyOf(redis))
    if (cluster !== undefined) {
      cluster.on("+node", onNode)
      cluster.on("-node", onNode)
    }
    client.on("close", resetAll)
    client.on("ready", resetAll)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        client.off("close", resetAll)
        client.off("ready", resetAll)
        if (cluster !== undefined) {
          cluster.off("+node", onNode)
          cluster.off("-node", onNode)
        }
      })
    )

    /** A call timed out: the connection is stalled; the first probe may pass one timeout later. */
    const markStalled = (h: Health, epoch: number) => {
      if (h.epoch !== epoch || h.stalled) return
      h.stalled = true
      h.nextProbeAt = Math.max(h.nextProbeAt, performance.now() + timeout)
    }

    const exec = <A>(
      op: string,
      node: string,
      run: () => Promise<A>,
      gated = true
    ): Effect.Effect<A, CacheStoreError> =>
      Effect.suspend(() => {
        const h = healthOf(node)
        let probe = false
        if (h.stalled) {
          if (h.probing || performance.now() < h.nextProbeAt) {
            return Effect.fail(storeError(op, "Unavailable", stalledError(node)))
          }
          h.probing = true
          probe = true
        }
        const epoch = h.epoch
        return bounded({
          client,
          store: STORE,
          op,
          timeout,
          run,
          gate: gated ? "require" : "none",
          onEnd: (outcome, reason) => {
            if (probe && h.epoch === epoch) {
              h.probing = false
              h.nextProbeAt = performance.now() + timeout
            }
            // Any answer ends a stall; a timeout (ours or ioredis's) starts one.
            if (outcome === "timeout" || (outcome === "failure" && reason === "Timeout")) markStalled(h, epoch)
            else if ((outcome === "reply" || outcome === "failure") && h.epoch === epoch) h.stalled = false
          }
        })
      })

    /** Waits (within the timeout) for a client that is connecting; fails when it is not ready. */
    const ready = (op: string): Effect.Effect<void, CacheStoreError> =>
      Effect.suspend(() => {
        const gate = clientInternal.connectingGate(client)
        const check = Effect.suspend(() =>
          client.status === "ready"
            ? Effect.void
            : Effect.fail(storeError(op, "Unavailable", new Error(`the Redis client is ${client.status}, not ready`)))
        )
        if (gate === undefined) return check
        return Effect.andThen(
          Effect.promise(() => clientInternal.settleConnecting(client, timeout)),
          check
        )
      })

    return { client, cluster, standalone, timeout, exec, ready }
  })
