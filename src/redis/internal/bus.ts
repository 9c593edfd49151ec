/**
 * The invalidation bus on Redis pub/sub. Public docs live in `RedisBus.ts`.
 *
 * Wire format (one JSON object per message, keys only, never values):
 *
 * ```text
 * {"v":1,"i":"<instance id>","s":<sequence>,"t":"set","k":["<key>",...]}
 * {"v":1,"i":"...","s":n,"t":"del","k":["<key>",...]}
 * {"v":1,"i":"...","s":n,"t":"tag","g":[["<tag>",<time>,<retainMillis>],...]}
 * {"v":1,"i":"...","s":n,"t":"pfx","p":"<key prefix>"}
 * {"v":1,"i":"...","s":n,"t":"pat","p":"<key prefix>","m":"<glob over the key after it>"}
 * {"v":1,"i":"...","s":n,"t":"clr"}
 * ```
 *
 * `s` counts the PUBLISH calls of one bus instance (1, 2, ...); a receiver
 * that sees a number jump has missed messages from that sender.
 *
 * @internal
 */
import { randomBytes } from "node:crypto"
import { type Duration, Effect, Exit, Result, Schema, type Scope } from "effect"
import type { Cluster, Redis } from "ioredis"
import type { CacheStoreError } from "../../CacheError.ts"
import { escapeValue } from "../../internal/keyEncoding.ts"
import { positiveInt as positiveIntOption } from "../../internal/numbers.ts"
import * as Warn from "../../internal/warn.ts"
import type * as IoRedis from "../IoRedis.ts"
import * as clientInternal from "./client.ts"
import { call, sleepReal } from "./io.ts"
import { slotOf } from "./routing.ts"

/** A bus message. Keys are store keys (`<keyspace>:<key>`), never values. */
export type Message =
  | { readonly _tag: "Set"; readonly keys: ReadonlyArray<string> }
  | { readonly _tag: "Delete"; readonly keys: ReadonlyArray<string> }
  | {
      readonly _tag: "Tags"
      readonly tags: ReadonlyArray<{ readonly tag: string; readonly time: number; readonly retainMillis: number }>
    }
  | { readonly _tag: "DeletePrefix"; readonly prefix: string }
  | { readonly _tag: "DeletePattern"; readonly prefix: string; readonly pattern: string }
  | { readonly _tag: "Clear" }

/** Why a listener must drop everything it learnt from the bus. */
export type ResetReason = "subscribed" | "gap"

/** What a listener is told. Called synchronously from the subscriber; must not throw (errors are caught and counted). */
export interface Listener {
  readonly onMessage: (message: Message) => void
  readonly onReset: (reason: ResetReason) => void
}

/** Counters of one bus instance. */
export interface BusStats {
  readonly published: number
  readonly publishFailures: number
  readonly queued: number
  readonly collapsed: number
  readonly received: number
  readonly ownIgnored: number
  readonly malformed: number
  readonly gaps: number
  readonly missed: number
  readonly subscriptions: number
  readonly subscribed: boolean
}

/** The bus service. */
export interface BusService {
  readonly instanceId: string
  readonly channel: string
  readonly publish: (message: Message) => Effect.Effect<void>
  readonly listen: (listener: Listener) => Effect.Effect<void, never, Scope.Scope>
  readonly stats: Effect.Effect<BusStats>
}

/** Resolved options. */
export interface Resolved {
  readonly channel: string
  readonly retryQueueSize: number
  readonly retryInterval: number
  readonly commandTimeout: number | undefined
  readonly maxKeysPerMessage: number
}

/** Options as given (see `RedisBus.Options`). */
export interface Options {
  readonly prefix: string
  readonly channel?: string | undefined
  readonly retryQueueSize?: number | undefined
  readonly retryInterval?: Duration.Input | undefined
  readonly commandTimeout?: Duration.Input | undefined
  readonly maxKeysPerMessage?: number | undefined
}

/** The channel of a prefix: `<escaped prefix>:~bus`. */
export const channelOf = (prefix: string): string => `${escapeValue(prefix)}:~bus`

const positiveInt = (option: string, value: number | undefined, fallback: number): number =>
  positiveIntOption("RedisBus", option, value, fallback)

/** Validates options (throwing a message that names the option). */
export const resolve = (options: Options): Resolved => {
  if (typeof options.prefix !== "string" || options.prefix === "") {
    throw new Error(`cachet: RedisBus option "prefix" must be a non-empty string`)
  }
  if (options.channel !== undefined && (typeof options.channel !== "string" || options.channel === "")) {
    throw new Error(`cachet: RedisBus option "channel" must be a non-empty string`)
  }
  return {
    channel: options.channel ?? channelOf(options.prefix),
    retryQueueSize: positiveInt("retryQueueSize", options.retryQueueSize, 1_000),
    retryInterval: clientInternal.millisOption("RedisBus", "retryInterval", options.retryInterval, 250),
    commandTimeout:
      options.commandTimeout === undefined
        ? undefined
        : clientInternal.millisOption("RedisBus", "commandTimeout", options.commandTimeout, 0, 1),
    maxKeysPerMessage: positiveInt("maxKeysPerMessage", options.maxKeysPerMessage, 500)
  }
}

// -- wire ---------------------------------------------------------------------

const Seq = Schema.Int.check(Schema.isGreaterThan(0))
const Header = { v: Schema.Literal(1), i: Schema.NonEmptyString, s: Seq }
const Keys = Schema.Array(Schema.String)
const Wire = Schema.Union([
  Schema.Struct({ ...Header, t: Schema.Literal("set"), k: Keys }),
  Schema.Struct({ ...Header, t: Schema.Literal("del"), k: Keys }),
  Schema.Struct({
    ...Header,
    t: Schema.Literal("tag"),
    g: Schema.Array(Schema.Tuple([Schema.String, Schema.Finite, Schema.Finite]))
  }),
  Schema.Struct({ ...Header, t: Schema.Literal("pfx"), p: Schema.String }),
  Schema.Struct({ ...Header, t: Schema.Literal("pat"), p: Schema.String, m: Schema.String }),
  Schema.Struct({ ...Header, t: Schema.Literal("clr") })
])
const decodeWire = Schema.decodeUnknownResult(Schema.fromJsonString(Wire))

/** A decoded message with its sender and sequence number. */
export interface Envelope {
  readonly instance: string
  readonly seq: number
  readonly message: Message
}

/** Serialises a message. */
export const encode = (message: Message, instance: string, seq: number): string => {
  const head = { v: 1, i: instance, s: seq }
  switch (message._tag) {
    case "Set":
      return JSON.stringify({ ...head, t: "set", k: message.keys })
    case "Delete":
      return JSON.stringify({ ...head, t: "del", k: message.keys })
    case "Tags":
      return JSON.stringify({ ...head, t: "tag", g: message.tags.map((t) => [t.tag, t.time, t.retainMillis]) })
    case "DeletePrefix":
      return JSON.stringify({ ...head, t: "pfx", p: message.prefix })
    case "DeletePattern":
      return JSON.stringify({ ...head, t: "pat", p: message.prefix, m: message.pattern })
    case "Clear":
      return JSON.stringify({ ...head, t: "clr" })
  }
}

/** Parses a raw message; `undefined` when it is malformed in any way. */
export const decode = (raw: string): Envelope | undefined => {
  const result = decodeWire(raw)
  if (Result.isFailure(result)) return undefined
  const w = result.success
  const message: Message =
    w.t === "set"
      ? { _tag: "Set", keys: w.k }
      : w.t === "del"
        ? { _tag: "Delete", keys: w.k }
        : w.t === "tag"
          ? { _tag: "Tags", tags: w.g.map(([tag, time, retainMillis]) => ({ tag, time, retainMillis })) }
          : w.t === "pfx"
            ? { _tag: "DeletePrefix", prefix: w.p }
            : w.t === "pat"
              ? { _tag: "DeletePattern", prefix: w.p, pattern: w.m }
              : { _tag: "Clear" }
  return { instance: w.i, seq: w.s, message }
}

/** Splits messages with many keys (a PUBLISH stays small). */
const chunk = (message: Message, max: number): ReadonlyArray<Message> => {
  if ((message._tag !== "Set" && message._tag !== "Delete") || message.keys.length <= max) return [message]
  const out: Array<Message> = []
  for (let i = 0; i < message.keys.length; i += max) {
    out.push({ _tag: message._tag, keys: message.keys.slice(i, i + max) })
  }
  return out
}

// -- the bus ------------------------------------------------------------------

/** Peers remembered for gap detection (least recently heard forgotten first). */
const MAX_PEERS = 10_000
const CLEAR: Message = { _tag: "Clear" }

/**
 * Builds a bus on `client` in the current scope: publishes through `client`,
 * listens on a dedicated subscriber connection (a duplicate of it) that lives
 * as long as the scope.
 */
export const make = (io: IoRedis.Service, options: Resolved): Effect.Effect<BusService, never, Scope.Scope> =>
  Effect.gen(function* () {
    const client = io.client
    const scope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    const timeout = options.commandTimeout ?? io.commandTimeout ?? clientInternal.DEFAULT_COMMAND_TIMEOUT
    const channel = options.channel
    const instanceId = randomBytes(9).toString("base64url")
    const listeners = new Set<Listener>()

    const stats = {
      published: 0,
      publishFailures: 0,
      collapsed: 0,
      received: 0,
      ownIgnored: 0,
      malformed: 0,
      gaps: 0,
      missed: 0,
      subscriptions: 0
    }
    let subscribed = false
    let closed = false

    const warnUnsafe = Warn.unsafe(Warn.make(Date.now), context)
    const warn = (what: string, message: string) => warnUnsafe(what, `cachet: Redis bus ${channel}: ${message}`)

    const tell = (f: (listener: Listener) => void) => {
      for (const listener of listeners) {
        try {
          f(listener)
        } catch (error) {
          warn("listener", `a listener threw: ${String(error)}`)
        }
      }
    }

    // -- publishing -----------------------------------------------------------

    let seq = 0
    // On a cluster, PUBLISH always goes through the master of the channel's
    // slot, so that one sender's messages keep their order (a random node per
    // message could reorder them and fake gaps).
    const publishRaw = (raw: string): Promise<unknown> => {
      if (!io.isCluster) return client.publish(channel, raw)
      const cluster = client as Cluster
      const owner = cluster.slots[slotOf(channel)]?.[0]
      const node =
        owner === undefined
          ? undefined
          : cluster.nodes("master").find((n) => `${n.options.host ?? "127.0.0.1"}:${n.options.port ?? 6379}` === owner)
      return node === undefined ? cluster.publish(channel, raw) : node.publish(channel, raw)
    }

    const send = (message: Message): Effect.Effect<void, CacheStoreError> =>
      Effect.suspend(() => {
        // Numbered when sent: a failed send leaves a hole that receivers
        // count as a gap (conservative: they clear their L1).
        const raw = encode(message, instanceId, ++seq)
        return Effect.map(
          call(client, "redis-bus", "publish", timeout, () => publishRaw(raw)),
          () => {
            stats.published++
          }
        )
      })

    // The retry queue: bounded; when full it collapses into one Clear
    // (receivers drop their whole L1), which also absorbs what comes next.
    let queue: Array<Message> = []
    let retrying = false

    const enqueue = (message: Message) => {
      if (queue.length === 1 && queue[0] === CLEAR) return
      if (queue.length >= options.retryQueueSize) {
        queue = [CLEAR]
        stats.collapsed++
        warn("collapsed", `retry queue full (${options.retryQueueSize}); it collapsed into one "clear" message`)
        return
      }
      queue.push(message)
    }

    const retryLoop: Effect.Effect<void> = Effect.gen(function* () {
      while (queue.length > 0 && !closed) {
        yield* sleepReal(options.retryInterval)
        while (queue.length > 0) {
          const head = queue[0]!
          const exit = yield* Effect.exit(send(head))
          if (Exit.isFailure(exit)) break
          // The queue may have collapsed during the send.
          if (queue[0] === head) queue.shift()
        }
      }
    }).pipe(
      Effect.ensuring(
        Effect.sync(() => {
          retrying = false
        })
      )
    )

    const ensureRetrying: Effect.Effect<void> = Effect.suspend(() => {
      if (retrying || closed) return Effect.void
      retrying = true
      return Effect.asVoid(Effect.forkIn(retryLoop, scope, { startImmediately: true }))
    })

    const publishOne = (message: Message): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (closed) return Effect.void
        // While older messages wait for Redis, do not wait for it again.
        if (queue.length > 0) {
          enqueue(message)
          return ensureRetrying
        }
        return send(message).pipe(
          Effect.catch((error) =>
            Effect.suspend(() => {
              stats.publishFailures++
              warn("publish", `publish failed (${error.reason}); queued for retry`)
              enqueue(message)
              return ensureRetrying
            })
          )
        )
      })

    const publish = (message: Message): Effect.Effect<void> => {
      const parts = chunk(message, options.maxKeysPerMessage)
      return parts.length === 1 ? publishOne(parts[0]!) : Effect.forEach(parts, publishOne, { discard: true })
    }

    // -- listening ------------------------------------------------------------

    const peers = new Map<string, number>()

    const onMessage = (from: string, raw: string) => {
      if (from !== channel) return
      const envelope = decode(raw)
      if (envelope === undefined) {
        stats.malformed++
        warn("malformed", `dropped a malformed message: ${JSON.stringify(raw.slice(0, 120))}`)
        return
      }
      if (envelope.instance === instanceId) {
        stats.ownIgnored++
        return
      }
      stats.received++
      const last = peers.get(envelope.instance)
      if (last !== undefined) peers.delete(envelope.instance)
      peers.set(envelope.instance, last === undefined ? envelope.seq : Math.max(last, envelope.seq))
      if (peers.size > MAX_PEERS) peers.delete(peers.keys().next().value!)
      if (last !== undefined && envelope.seq > last + 1) {
        stats.gaps++
        stats.missed += envelope.seq - last - 1
        warn("gap", `missed ${envelope.seq - last - 1} message(s) from ${envelope.instance}; clearing L1`)
        tell((l) => l.onReset("gap"))
      }
      tell((l) => l.onMessage(envelope.message))
    }

    // The subscriber: one connection of our own. We subscribe on every
    // "ready" (no auto-resubscribe, nothing queued while disconnected) and
    // tell listeners to reset once SUBSCRIBE is confirmed.
    const subscriberOptions = {
      autoResubscribe: false,
      enableOfflineQueue: false,
      commandTimeout: undefined,
      maxRetriesPerRequest: null,
      connectionName: "cachet-bus"
    } as const

    const watch = (connection: Redis): (() => void) => {
      const stopErrors = clientInternal.listenErrors(connection, context, "Redis bus subscriber")
      const onReady = () => {
        if (closed) return
        connection.subscribe(channel).then(
          () => {
            if (closed || current !== connection) return
            subscribed = true
            stats.subscriptions++
            // Whatever was published while we were not subscribed is lost:
            // listeners drop what they hold.
            tell((l) => l.onReset("subscribed"))
          },
          (error: unknown) => {
            warn("subscribe", `SUBSCRIBE failed: ${error instanceof Error ? error.message : String(error)}`)
          }
        )
      }
      const onClose = () => {
        if (current === connection) subscribed = false
      }
      connection.on("ready", onReady)
      connection.on("close", onClose)
      connection.on("message", onMessage)
      if (connection.status === "ready") onReady()
      return () => {
        connection.off("ready", onReady)
        connection.off("close", onClose)
        connection.off("message", onMessage)
        stopErrors()
      }
    }

    let current: Redis | undefined
    let unwatch: (() => void) | undefined
    let retryTimer: ReturnType<typeof setTimeout> | undefined

    if (!io.isCluster) {
      // Standalone: a duplicate of the client, which reconnects by itself
      // (the client's capped, jittered backoff).
      current = clientInternal.duplicate(client, subscriberOptions) as Redis
      unwatch = watch(current)
    } else {
      // Cluster: classic pub/sub reaches the subscribers of every node, so
      // one connection to any node will do. ioredis's own cluster subscriber
      // re-subscribes silently when it moves to another node (messages lost
      // meanwhile would go unnoticed), so we keep our own: a connection that
      // does not reconnect; when it ends, the next node of the cluster's
      // current list, after a capped backoff.
      const cluster = client as Cluster
      const delay = clientInternal.backoff(clientInternal.DEFAULT_MAX_RETRY_DELAY)
      let attempt = 0
      let failures = 0
      const connectNext = () => {
        retryTimer = undefined
        if (closed) return
        const nodes = cluster.nodes("master")
        if (nodes.length === 0) {
          retryTimer = setTimeout(connectNext, delay(++failures))
          return
        }
        const node = nodes[attempt++ % nodes.length]!
        const connection = node.duplicate({ ...subscriberOptions, lazyConnect: false, retryStrategy: () => null })
        current = connection
        const stop = watch(connection)
        const onReadyOnce = () => {
          failures = 0
        }
        connection.once("ready", onReadyOnce)
        unwatch = () => {
          connection.off("ready", onReadyOnce)
          connection.off("end", onEnd)
          stop()
        }
        const onEnd = () => {
          if (current !== connection) return
          subscribed = false
          unwatch?.()
          current = undefined
          if (!closed) retryTimer = setTimeout(connectNext, delay(++failures))
        }
        connection.once("end", onEnd)
      }
      connectNext()
    }

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        subscribed = false
        if (retryTimer !== undefined) clearTimeout(retryTimer)
        if (queue.length > 0) {
          warn("shutdown", `closing with ${queue.length} unpublished message(s)`)
        }
        const connection = current
        current = undefined
        unwatch?.()
        return connection === undefined
          ? Effect.void
          : Effect.promise(() => clientInternal.closeClient(connection, clientInternal.CLOSE_GRACE))
      })
    )

    const listen = (listener: Listener): Effect.Effect<void, never, Scope.Scope> =>
      Effect.acquireRelease(
        Effect.sync(() => {
          listeners.add(listener)
        }),
        () =>
          Effect.sync(() => {
            listeners.delete(listener)
          })
      )

    return {
      instanceId,
      channel,
      publish,
      listen,
      stats: Effect.sync(() => ({ ...stats, queued: queue.length, subscribed }))
    } satisfies BusService
  })
