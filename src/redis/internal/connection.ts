/**
 * The connection to Redis as the store uses it: per-node health (a stalled
 * connection fails fast, one probe at a time), per-node circuit breakers
 * (`breaker.ts`) and the bounded call on top of them.
 *
 * @internal
 */
import { Effect, type Scope } from "effect"
import type { Cluster, Redis } from "ioredis"
import type { CacheStoreError } from "../../CacheError.ts"
import type * as IoRedis from "../IoRedis.ts"
import * as Breaker from "./breaker.ts"
import * as clientInternal from "./client.ts"
import { bounded, STORE, storeError } from "./io.ts"

export { STANDALONE, STORE, storeError } from "./io.ts"

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
   *
   * Every call goes through the node's circuit breaker: while it is open,
   * calls to that node fail at once (`CircuitOpen`), calls to other nodes
   * are not affected.
   */
  readonly exec: <A>(
    op: string,
    node: string,
    run: () => Promise<A>,
    gated?: boolean
  ) => Effect.Effect<A, CacheStoreError>
  /** Waits (within the timeout) for a client that is connecting; fails when it is not ready. */
  readonly ready: (op: string) => Effect.Effect<void, CacheStoreError>
  /** Every node's breaker state and counters (see `breaker.ts`). */
  readonly nodeStates: Effect.Effect<ReadonlyArray<Breaker.NodeState>>
}

/** The node key of every Cluster master that owns a slot now. */
const owners = (cluster: Cluster): Set<string> => {
  const out = new Set<string>()
  for (const owner of cluster.slots) if (owner?.[0] !== undefined) out.add(owner[0])
  return out
}

/**
 * Tracks the health of `io`'s connections for the current scope; `breaker`
 * settings of `undefined` turn the circuit breakers off.
 */
export const make = (
  io: IoRedis.Service,
  timeout: number,
  breaker: { readonly failures: number; readonly openFor: number } | undefined
): Effect.Effect<Connection, never, Scope.Scope> =>
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

    // A failed probe of a Cluster master refreshes the slot map (at most
    // every 100 ms): once its replica is promoted, the slots move and the
    // probe ends; callers fail fast on the open circuit and send nothing that
    // would (ioredis itself refreshes only on MOVED or on its timer).
    let lastRefresh = 0
    const refreshSlots = () => {
      const now = performance.now()
      if (cluster === undefined || now - lastRefresh < 100) return
      lastRefresh = now
      cluster.refreshSlotsCache()
    }

    const call = <A>(
      op: string,
      node: string,
      run: () => Promise<A>,
      gated: boolean,
      onRedirect: ((kind: "MOVED" | "ASK") => void) | undefined,
      background = false
    ): Effect.Effect<A, CacheStoreError> =>
      Effect.suspend(() => {
        const h = healthOf(node)
        let probe = false
        // The breaker's background probe passes a stall (one at a time, on
        // its own fiber): its answer is what ends the stall soonest.
        if (h.stalled && !background) {
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
          onRedirect,
          onEnd: (outcome, reason) => {
            if (probe && h.epoch === epoch) {
              h.probing = false
              h.nextProbeAt = performance.now() + timeout
            }
            // Any answer ends a stall; a timeout (ours or ioredis's) starts one.
            if (outcome === "timeout" || (outcome === "failure" && reason === "Timeout")) markStalled(h, epoch)
            // A closed connection's error is no answer: it leaves a stall as it is.
            else if ((outcome === "reply" || outcome === "error-reply") && h.epoch === epoch) h.stalled = false
          }
        })
      })

    // The background probe of an open circuit: a PING on the node's own
    // connection (bounded, not through the breaker's fast fail).
    const pingNode = (node: string): Effect.Effect<void, CacheStoreError> =>
      Effect.suspend(() => {
        if (cluster === undefined) {
          return Effect.asVoid(call("ping", node, () => standalone!.ping(), true, undefined, true))
        }
        const redis = cluster.nodes("all").find((n) => nodeKeyOf(n) === node)
        if (redis === undefined) {
          refreshSlots()
          return Effect.fail(storeError("ping", "Unavailable", new Error(`no connection to ${node}`)))
        }
        return Effect.asVoid(call("ping", node, () => redis.ping(), false, undefined, true)).pipe(
          Effect.tapError(() => Effect.sync(refreshSlots))
        )
      })
    const breakers = yield* Breaker.make(breaker, {
      ping: pingNode,
      // A failed-over master owns no slot: nothing routes to it any more.
      gone: (node) => cluster !== undefined && !owners(cluster).has(node)
    })
    // A connection that became ready, or a new slot map: probe now.
    const wakeAll = () => breakers.wake()
    const onNodeReady = (redis: Redis) => redis.on("ready", wakeAll)
    client.on("ready", wakeAll)
    if (cluster !== undefined) {
      cluster.on("refresh", wakeAll)
      cluster.on("+node", onNodeReady)
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        client.off("ready", wakeAll)
        if (cluster !== undefined) {
          cluster.off("refresh", wakeAll)
          cluster.off("+node", onNodeReady)
          for (const redis of cluster.nodes("all")) redis.off("ready", wakeAll)
        }
      })
    )

    const exec = <A>(
      op: string,
      node: string,
      run: () => Promise<A>,
      gated = true
    ): Effect.Effect<A, CacheStoreError> =>
      breakers.guard(
        op,
        node,
        call(op, node, run, gated, cluster === undefined ? undefined : () => breakers.redirected(node))
      )

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

    return { client, cluster, standalone, timeout, exec, ready, nodeStates: breakers.states }
  })
