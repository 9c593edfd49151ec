/**
 * ioredis plumbing shared by `IoRedis.ts` and `RedisStore.ts`: client
 * construction with bounded defaults, closing, and the duplicates behind
 * effect's generic `Redis` service.
 *
 * @internal
 */
import { type Context, type Duration, Effect, type Scope } from "effect"
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis"
import { millisOr } from "../../internal/duration.ts"
import * as Warn from "../../internal/warn.ts"

/** A standalone client or a cluster client. */
export type Client = Redis | Cluster

/** A cluster seed node: `"host:port"` or `{ host, port }`. */
export type ClusterNodeInput = string | { readonly host: string; readonly port: number }

/** Connection options, as accepted by `IoRedis.layer`. */
export interface ConnectionOptions {
  readonly url?: string | undefined
  readonly cluster?: ReadonlyArray<ClusterNodeInput> | undefined
  readonly commandTimeout?: Duration.Input | undefined
  readonly connectTimeout?: Duration.Input | undefined
  readonly socketTimeout?: Duration.Input | undefined
  readonly maxRetryDelay?: Duration.Input | undefined
  readonly redisOptions?: RedisOptions | undefined
  readonly clusterOptions?: Omit<ClusterOptions, "redisOptions"> | undefined
}

export const DEFAULT_COMMAND_TIMEOUT = 500
export const DEFAULT_CONNECT_TIMEOUT = 2_000
const DEFAULT_SOCKET_TIMEOUT = 5_000
export const DEFAULT_MAX_RETRY_DELAY = 250

/** Whether `u` looks like an ioredis client (duck-typed: another copy of ioredis may be in use). */
export const isClient = (u: unknown): u is Client =>
  typeof u === "object" &&
  u !== null &&
  typeof (u as { sendCommand?: unknown }).sendCommand === "function" &&
  typeof (u as { duplicate?: unknown }).duplicate === "function" &&
  typeof (u as { on?: unknown }).on === "function"

export const isCluster = (client: Client): client is Cluster => (client as { isCluster?: boolean }).isCluster === true

/** A duration option in whole milliseconds (at least `min`); throws a message naming the option. */
export const millisOption = (
  owner: string,
  option: string,
  input: Duration.Input | undefined,
  fallback: number,
  min = 1
): number => millisOr(owner, option, input, fallback, { min })

/**
 * Capped exponential backoff with equal jitter: attempt n waits a random time
 * in [d/2, d] where d = min(50 ms * 2^n, cap). Never gives up.
 */
export const backoff =
  (cap: number) =>
  (times: number): number => {
    const exp = 50 * 2 ** Math.min(Math.max(times, 1), 16)
    const d = Math.min(exp, cap)
    return Math.max(1, Math.round(d / 2 + Math.random() * (d / 2)))
  }

/** Parses `"host:port"` (IPv6 as `[::1]:6379`). */
export const parseNode = (input: ClusterNodeInput): { host: string; port: number } => {
  if (typeof input !== "string") {
    if (typeof input.host !== "string" || !Number.isInteger(input.port) || input.port < 1 || input.port > 65535) {
      throw new Error(`cachet: invalid cluster node ${JSON.stringify(input)}: expected { host, port }`)
    }
    return { host: input.host, port: input.port }
  }
  const trimmed = input.trim()
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(trimmed)
  const port = match === null ? Number.NaN : Number(match[3])
  if (match === null || !(port >= 1 && port <= 65535)) {
    throw new Error(`cachet: invalid cluster node ${JSON.stringify(input)}: expected "host:port"`)
  }
  return { host: (match[1] ?? match[2])!, port }
}

/** The per-connection settings shared by standalone clients and cluster nodes. */
const connectionDefaults = (options: ConnectionOptions) => {
  const owner = "IoRedis.layer"
  return {
    commandTimeout: millisOption(owner, "commandTimeout", options.commandTimeout, DEFAULT_COMMAND_TIMEOUT),
    connectTimeout: millisOption(owner, "connectTimeout", options.connectTimeout, DEFAULT_CONNECT_TIMEOUT),
    socketTimeout: millisOption(owner, "socketTimeout", options.socketTimeout, DEFAULT_SOCKET_TIMEOUT),
    maxRetriesPerRequest: 1,
    // ioredis's disconnect() arms a timer (default 2 s) that only a *later*
    // "close" of the socket clears; when the socket has already closed (a dead
    // server, or after QUIT) it lingers its full length, holding the process
    // open after the layer closed. We QUIT (bounded) before disconnecting, so
    // a short one is enough.
    disconnectTimeout: 200,
    // Commands issued in the same tick share one write (and one round trip):
    // with 100 requests in flight this doubled hit throughput in bench/.
    enableAutoPipelining: true,
    // A command that already failed (timed out) must not be replayed later.
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true
  } satisfies RedisOptions
}

/** Validated options: what {@link createClient} needs. */
export interface ClientPlan {
  readonly create: () => Client
  readonly commandTimeout: number
}

/**
 * Validates options (throwing a message that names the option) and returns
 * how to build the client; nothing connects until `create` is called.
 */
export const planClient = (options: ConnectionOptions): ClientPlan => {
  const hasUrl = options.url !== undefined
  const hasCluster = options.cluster !== undefined
  if (hasUrl === hasCluster) {
    throw new Error(`cachet: IoRedis.layer needs exactly one of the options "url" and "cluster"`)
  }
  const base = connectionDefaults(options)
  const retry = backoff(millisOption("IoRedis.layer", "maxRetryDelay", options.maxRetryDelay, DEFAULT_MAX_RETRY_DELAY))
  if (hasCluster) {
    const nodes = options.cluster!.map(parseNode)
    if (nodes.length === 0) throw new Error(`cachet: IoRedis.layer option "cluster" needs at least one node`)
    const redisOptions: RedisOptions = { ...base, ...options.redisOptions }
    return {
      commandTimeout: redisOptions.commandTimeout ?? base.commandTimeout,
      create: () =>
        withSocketTimerFix(
          new Cluster(nodes, {
            clusterRetryStrategy: retry,
            enableAutoPipelining: true,
            enableOfflineQueue: false,
            enableReadyCheck: true,
            lazyConnect: false,
            slotsRefreshTimeout: Math.max(base.commandTimeout, 1_000),
            // A command for a dead master (closed connection) or a cluster
            // that is down fails at once instead of being retried every
            // 100 ms until the command timeout: a failover takes longer than
            // one timeout anyway, and a caller whose read burnt a timeout
            // would burn another on the write after its load (issue #13:
            // calls of 1 s in the Cluster soak). MOVED/ASK are still followed.
            retryDelayOnFailover: 0,
            retryDelayOnClusterDown: 0,
            ...options.clusterOptions,
            redisOptions
          })
        )
    }
  }
  const url = options.url!
  if (typeof url !== "string" || !/^rediss?:\/\//.test(url)) {
    throw new Error(`cachet: IoRedis.layer option "url" must start with redis:// or rediss://`)
  }
  const redisOptions: RedisOptions = {
    ...base,
    enableOfflineQueue: false,
    lazyConnect: false,
    retryStrategy: retry,
    // A standalone server's reads of a tick are already one MGET (the
    // store's read batching), or one GET when the tick has one read:
    // pipelining it with nothing else only adds a Pipeline per tick (getMany
    // of 100: 3.3-3.6k calls/s out of the auto-pipeline, 2.3-3.3k in it; one
    // read at a time, a hit 18-26% faster without it). On a Cluster a tick
    // has one MGET per slot, which the auto-pipeline does coalesce per node.
    autoPipeliningIgnoredCommands: ["mget", "get"],
    ...options.redisOptions
  }
  return {
    commandTimeout: redisOptions.commandTimeout ?? base.commandTimeout,
    create: () => withSocketTimerFix(new Redis(url, redisOptions))
  }
}

/**
 * Works around an ioredis 5 bug found by our soak run: a `socketTimeout`
 * timer armed while a connection is open is not cleared when that connection
 * drops, and when it fires it destroys `this.stream`, which by then is the
 * *new* connection (5 s after every server restart, a second outage). Clear
 * the timer whenever a connection closes, on a standalone client and on every
 * cluster node. Reaches into a private field on purpose; harmless if it is
 * ever renamed (the bug would just come back).
 */
const clearSocketTimer = (redis: Redis): void => {
  redis.on("close", () => {
    const node = redis as unknown as { socketTimeoutTimer?: ReturnType<typeof setTimeout> | undefined }
    if (node.socketTimeoutTimer !== undefined) {
      clearTimeout(node.socketTimeoutTimer)
      node.socketTimeoutTimer = undefined
    }
  })
}

const withSocketTimerFix = <C extends Client>(client: C): C => {
  if (client instanceof Cluster) client.on("+node", clearSocketTimer)
  else clearSocketTimer(client as Redis)
  return client
}

/** The command timeout a client was configured with, if any. */
export const commandTimeoutOf = (client: Client): number | undefined =>
  isCluster(client) ? client.options.redisOptions?.commandTimeout : client.options.commandTimeout

/** Resolves when `promise` settles or after `millis`, whichever is first; clears its timer. */
const within = (promise: Promise<unknown>, millis: number): Promise<void> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    promise.then(
      () => undefined,
      () => undefined
    ),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, millis)
    })
  ]).finally(() => clearTimeout(timer))
}

/** Resolves once the client has ended (status "end"). */
const ended = (client: Client): Promise<void> =>
  client.status === "end" ? Promise.resolve() : new Promise((resolve) => client.once("end", () => resolve()))

/**
 * Closes a client: QUIT when connected, then a hard disconnect (which also
 * cancels any pending reconnection), then waits for the "end" event. Each
 * step is bounded by `graceMillis`. Never rejects.
 */
export const closeClient = async (client: Client, graceMillis: number): Promise<void> => {
  if (client.status === "ready") await within(client.quit(), graceMillis)
  const end = ended(client)
  try {
    client.disconnect()
  } catch {
    // already closed
  }
  await within(end, graceMillis)
}

/**
 * A second connection with the client's settings and `override` on top (for
 * a cluster, `override` applies to every node).
 */
export const duplicate = (
  client: Client,
  override: Partial<RedisOptions>,
  clusterOverride: Partial<ClusterOptions> = {}
): Client =>
  isCluster(client)
    ? client.duplicate([], {
        ...clusterOverride,
        redisOptions: { ...client.options.redisOptions, ...override }
      })
    : client.duplicate(override)

/** Resolves when `client` is ready; rejects after `timeoutMillis` or when it ends. */
export const whenReady = (client: Client, timeoutMillis: number): Promise<void> =>
  new Promise((resolve, reject) => {
    if (client.status === "ready") return resolve()
    const cleanup = () => {
      clearTimeout(timer)
      client.off("ready", onReady)
      client.off("end", onEnd)
    }
    const onReady = () => {
      cleanup()
      resolve()
    }
    const onEnd = () => {
      cleanup()
      reject(new Error("Connection is closed."))
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`Connection not ready within ${timeoutMillis} ms`))
    }, timeoutMillis)
    client.on("ready", onReady)
    client.on("end", onEnd)
  })

export const CLOSE_GRACE = 1_000

/** Installs a rate-limited warning `error` listener; returns its removal. */
export const listenErrors = (client: Client, context: Context.Context<never>, what: string): (() => void) => {
  const warn = Warn.unsafe(Warn.make(Date.now), context)
  const onError = (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error)
    warn("error", `cachet: ${what} connection error: ${message}`)
  }
  client.on("error", onError)
  return () => {
    client.off("error", onError)
  }
}

/**
 * Attaches a client to the current scope: an `error` listener for the
 * scope's lifetime and, for an `owned` client, closing it when the scope
 * closes. An adopted client is left open.
 */
export const attach = (client: Client, owned: boolean): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const context = yield* Effect.context<never>()
    const stopErrors = listenErrors(client, context, "Redis")
    yield* Effect.addFinalizer(() =>
      owned
        ? Effect.promise(() => closeClient(client, CLOSE_GRACE)).pipe(Effect.ensuring(Effect.sync(stopErrors)))
        : Effect.sync(stopErrors)
    )
  })

/** Whether the client is making a connection (first one, or a reconnection attempt). */
const isConnecting = (client: Client): boolean =>
  client.status === "wait" || client.status === "connecting" || client.status === "connect"

const readyGates = new WeakMap<Client, Promise<boolean>>()

/**
 * While `client` is connecting: a promise (shared by all callers) of whether
 * it became ready (`false` when the attempt ended instead). `undefined` when
 * it is not connecting.
 */
export const connectingGate = (client: Client): Promise<boolean> | undefined => {
  if (!isConnecting(client)) return undefined
  let gate = readyGates.get(client)
  if (gate === undefined) {
    gate = new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => () => {
        client.off("ready", onReady)
        client.off("close", onClosed)
        client.off("end", onClosed)
        readyGates.delete(client)
        resolve(ok)
      }
      const onReady = done(true)
      const onClosed = done(false)
      client.on("ready", onReady)
      client.on("close", onClosed)
      client.on("end", onClosed)
    })
    readyGates.set(client, gate)
  }
  return gate
}

/** Waits (at most `millis`) for a connecting client to be ready; never rejects. */
export const settleConnecting = async (client: Client, millis: number): Promise<void> => {
  const gate = connectingGate(client)
  if (gate === undefined) return
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([gate, new Promise((resolve) => (timer = setTimeout(resolve, millis)))])
  clearTimeout(timer)
}
