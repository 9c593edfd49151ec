/**
 * Real Redis servers as scoped Effect resources, for integration tests.
 *
 * - `RedisServer.start(options?)` spawns a throwaway `redis-server` on a free
 *   ephemeral port of 127.0.0.1, with persistence off and a fresh data dir, and
 *   kills it (and removes the dir) when the scope closes. The handle can pause
 *   (SIGSTOP), resume, kill, stop and restart the server on the same port, and
 *   run `redis-cli` commands against it for assertions.
 * - `RedisCluster.start(options?)` builds a real 3-master Redis Cluster out of
 *   such servers with `redis-cli --cluster create`, optionally with replicas
 *   (`replicas: 1`: 3 masters + 3 replicas, for failover tests), and tells
 *   which node serves which slots now (`topology`).
 * - `redisAvailable` / `requireRedis()` decide whether Redis suites may run:
 *   outside CI a missing binary means "skip", in CI it is a hard failure.
 *
 * Every wait in here uses real timers (`setTimeout`) rather than Effect's
 * `Clock`: the harness is usually built inside `it.effect` / `it.layer`, where
 * the clock is a `TestClock` that never advances on its own, and a process does
 * not start any faster because virtual time moved. So nothing here depends on
 * the ambient Clock service.
 *
 * The machine may run its own Redis (e.g. on 6379). The harness never talks to
 * a port it did not pick itself and only ever signals processes it spawned.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Effect, Layer, Schema, type Scope, Semaphore } from "effect"

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** Any failure of the harness itself (spawn, readiness, redis-cli, ...). */
export class HarnessError extends Schema.TaggedError<HarnessError>()("HarnessError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

// ---------------------------------------------------------------------------
// Binaries and availability
// ---------------------------------------------------------------------------

const HOST = "127.0.0.1"

const isExecutableFile = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** Resolves `name` against `$PATH` like a shell would; `undefined` if absent. */
const findExecutable = (name: string): string | undefined => {
  if (name.includes(path.sep)) return isExecutableFile(name) ? name : undefined
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue
    const candidate = path.join(dir, name)
    if (isExecutableFile(candidate)) return candidate
  }
  return undefined
}

/** Absolute path of `redis-server` on PATH, if any. */
export const redisServerPath: string | undefined = findExecutable("redis-server")
/** Absolute path of `redis-cli` on PATH, if any. */
export const redisCliPath: string | undefined = findExecutable("redis-cli")

/** Whether both `redis-server` and `redis-cli` are on PATH and executable. */
export const redisAvailable: boolean = redisServerPath !== undefined && redisCliPath !== undefined

/**
 * Gate for Redis-backed suites: returns `true` when Redis is available.
 *
 * When it is missing, in CI (`CI=true`) this throws — a suite that silently
 * skips in CI is a suite that never runs — and elsewhere it returns `false` so
 * the caller can skip:
 *
 * ```ts
 * describe.skipIf(!requireRedis())("RedisStore", () => { ... })
 * ```
 *
 * The options exist for testing this function; suites call it without any.
 */
export const requireRedis = (
  options: { readonly available?: boolean; readonly env?: Readonly<Record<string, string | undefined>> } = {}
): boolean => {
  const available = options.available ?? redisAvailable
  const env = options.env ?? process.env
  if (available) return true
  const message = `redis-server/redis-cli not found on PATH (${env.PATH ?? ""}); install Redis >= 7 to run the Redis suites`
  if (env.CI === "true") {
    throw new Error(`[cachet test harness] ${message}. Refusing to skip Redis suites in CI.`)
  }
  return false
}

const binary = (resolved: string | undefined, name: string): Effect.Effect<string, HarnessError> =>
  resolved === undefined
    ? Effect.fail(new HarnessError({ message: `${name} not found on PATH; install Redis >= 7 (see requireRedis)` }))
    : Effect.succeed(resolved)

// ---------------------------------------------------------------------------
// Small real-time primitives
// ---------------------------------------------------------------------------

/** Sleeps on a real timer (see the module comment for why not `Effect.sleep`). */
const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const handle = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(handle))
  })

/**
 * Sends `PING\r\n` over a raw TCP socket and resolves `true` iff `+PONG` comes
 * back within `timeoutMs`. Never fails: refused connections, error replies
 * (`-LOADING`, ...) and silence all resolve `false`. A paused (SIGSTOPped)
 * server still completes the TCP handshake — the kernel does that — but never
 * replies, so this is also how tests observe a "hung" server.
 */
export const pingRaw = (
  port: number,
  options: { readonly host?: string; readonly timeoutMs?: number } = {}
): Effect.Effect<boolean> =>
  Effect.map(commandRaw(port, ["PING"], options.timeoutMs ?? 250, options.host), (reply) => reply === "PONG")

/**
 * Sends one command over a raw TCP socket (RESP) and resolves its reply: a
 * bulk or simple string, or `undefined` on an error reply, silence past
 * `timeoutMs`, or a refused connection. Never fails. For polls that would
 * otherwise spawn `redis-cli` many times a second (its process spawns stall
 * the event loop of the process under test).
 */
export const commandRaw = (
  port: number,
  args: ReadonlyArray<string>,
  timeoutMs = 1_000,
  host: string = HOST
): Effect.Effect<string | undefined> =>
  Effect.callback<string | undefined>((resume) => {
    let settled = false
    let received = Buffer.alloc(0)
    const socket = net.createConnection({ host, port })
    socket.setNoDelay(true)
    const finish = (reply: string | undefined) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed(reply))
    }
    const timer = setTimeout(() => finish(undefined), timeoutMs)
    socket.on("connect", () =>
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`)
    )
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      const lineEnd = received.indexOf("\r\n")
      if (lineEnd === -1) return
      const head = received.subarray(0, lineEnd).toString("latin1")
      if (head.startsWith("+")) return finish(head.slice(1))
      if (!head.startsWith("$")) return finish(undefined)
      const length = Number(head.slice(1))
      if (length < 0) return finish(undefined)
      if (received.length >= lineEnd + 2 + length) {
        finish(received.subarray(lineEnd + 2, lineEnd + 2 + length).toString("utf8"))
      }
    })
    socket.on("error", () => finish(undefined))
    socket.on("close", () => finish(undefined))
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      socket.destroy()
    })
  })

/** Runs a short-lived command (redis-cli) with a hard timeout; resolves stdout. */
const runCommand = (
  file: string,
  args: ReadonlyArray<string>,
  timeoutMs: number
): Effect.Effect<string, HarnessError> =>
  Effect.callback<string, HarnessError>((resume) => {
    const child = execFile(
      file,
      args,
      { encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) return resume(Effect.succeed(stdout))
        const detail = [stderr.trim(), stdout.trim()].filter((s) => s !== "").join("\n")
        resume(
          Effect.fail(
            new HarnessError({
              message: `\`${path.basename(file)} ${args.join(" ")}\` failed: ${error.message}${detail === "" ? "" : `\n${detail}`}`,
              cause: error
            })
          )
        )
      }
    )
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })

// ---------------------------------------------------------------------------
// Per-process registry
// ---------------------------------------------------------------------------

/**
 * Per-process bookkeeping, kept on `globalThis` so that it is shared (and the
 * exit hook installed once) even if the test runner loads this module several
 * times into one process.
 *
 * - `ports`: ports handed out and still owned by a live harness server. The OS
 *   may legitimately return a just-closed port again from `listen(0)`; this
 *   stops two concurrent starts in one process from picking the same one.
 *   (Collisions with other processes are handled by retrying the spawn.)
 * - `processes` / `dirs`: last-resort cleanup. If the worker exits without
 *   closing its scopes (crash, `process.exit`), SIGKILL every server still
 *   alive and remove its dir so nothing outlives the run. SIGKILL also works
 *   on SIGSTOPped processes.
 */
interface Registry {
  readonly ports: Set<number>
  readonly processes: Set<ChildProcess>
  readonly dirs: Set<string>
}
const registryKey = Symbol.for("cachet/test/harness/redis")
const registry: Registry = (() => {
  const holder = globalThis as { [registryKey]?: Registry }
  const existing = holder[registryKey]
  if (existing !== undefined) return existing
  const created: Registry = { ports: new Set(), processes: new Set(), dirs: new Set() }
  holder[registryKey] = created
  process.once("exit", () => {
    for (const child of created.processes) child.kill("SIGKILL")
    for (const dir of created.dirs) fs.rmSync(dir, { recursive: true, force: true })
  })
  return created
})()
const reservedPorts = registry.ports
const liveProcesses = registry.processes
const liveDirs = registry.dirs

// ---------------------------------------------------------------------------
// Port allocation
// ---------------------------------------------------------------------------

const probeFreePort: Effect.Effect<number, HarnessError> = Effect.callback<number, HarnessError>((resume) => {
  const server = net.createServer()
  server.unref()
  server.once("error", (cause) =>
    resume(Effect.fail(new HarnessError({ message: "could not bind an ephemeral port", cause })))
  )
  server.listen(0, HOST, () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : undefined
    server.close(() =>
      resume(
        port === undefined
          ? Effect.fail(new HarnessError({ message: "ephemeral port probe returned no port" }))
          : Effect.succeed(port)
      )
    )
  })
})

/**
 * Picks a free ephemeral port: bind a throwaway server to port 0, read the
 * port, close it. There is an unavoidable window in which someone else can take
 * the port before redis-server binds it; callers retry the spawn when Redis
 * reports "Address already in use". Probing itself is retried too (EADDRINUSE
 * on port 0 is rare but possible under ephemeral-port exhaustion).
 */
const reservePort: Effect.Effect<number, HarnessError> = Effect.gen(function* () {
  let lastError: HarnessError | undefined
  for (let attempt = 0; attempt < 20; attempt++) {
    const result = yield* Effect.result(probeFreePort)
    if (result._tag === "Failure") {
      lastError = result.failure
      yield* sleepReal(20)
      continue
    }
    const port = result.success
    if (reservedPorts.has(port)) continue
    reservedPorts.add(port)
    return port
  }
  return yield* Effect.fail(lastError ?? new HarnessError({ message: "could not find a free ephemeral port" }))
})

// ---------------------------------------------------------------------------
// Process bookkeeping
// ---------------------------------------------------------------------------

interface Proc {
  readonly child: ChildProcess
  readonly pid: number
  /** Resolves once the OS has reaped the process (Node's "exit" event). */
  readonly exit: Promise<void>
  exited: boolean
  exitDescription: string
  /** Last few KB of the server's stdout+stderr, for error messages. */
  output: string
}

const OUTPUT_TAIL = 8 * 1024

const spawnProcess = (file: string, args: ReadonlyArray<string>): Effect.Effect<Proc, HarnessError> =>
  Effect.callback<Proc, HarnessError>((resume) => {
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] })
    let exitResolve: () => void = () => {}
    const exit = new Promise<void>((resolve) => {
      exitResolve = resolve
    })
    const proc: Proc = { child, pid: child.pid ?? -1, exit, exited: false, exitDescription: "", output: "" }
    // Always drain the pipes: a full pipe buffer would block the server.
    const append = (chunk: Buffer) => {
      proc.output = (proc.output + chunk.toString("utf8")).slice(-OUTPUT_TAIL)
    }
    child.stdout?.on("data", append)
    child.stderr?.on("data", append)
    child.once("exit", (code, signal) => {
      proc.exited = true
      proc.exitDescription = signal === null ? `exit code ${code}` : `signal ${signal}`
      liveProcesses.delete(child)
      exitResolve()
    })
    child.once("spawn", () => {
      liveProcesses.add(child)
      resume(Effect.succeed(proc))
    })
    // Before "spawn" this means the binary could not be started at all.
    child.once("error", (cause) => {
      if (child.pid !== undefined) return
      proc.exited = true
      exitResolve()
      resume(Effect.fail(new HarnessError({ message: `could not spawn ${file}: ${cause.message}`, cause })))
    })
  })

/** Waits (real time) for the process to exit; `false` if still alive after `timeoutMs`. */
const awaitExit = (proc: Proc, timeoutMs: number): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    if (proc.exited) return resume(Effect.succeed(true))
    let active = true
    const timer = setTimeout(() => {
      active = false
      resume(Effect.succeed(false))
    }, timeoutMs)
    void proc.exit.then(() => {
      if (!active) return
      active = false
      clearTimeout(timer)
      resume(Effect.succeed(true))
    })
    return Effect.sync(() => {
      active = false
      clearTimeout(timer)
    })
  })

const signal = (proc: Proc, sig: NodeJS.Signals): void => {
  // child.kill is a no-op once Node has seen the exit, so no risk of signalling
  // a recycled PID that belongs to somebody else.
  if (!proc.exited) proc.child.kill(sig)
}

const KILL_WAIT_MS = 5_000

const sigkillAndWait = (proc: Proc): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    signal(proc, "SIGKILL")
    return awaitExit(proc, KILL_WAIT_MS)
  })

/**
 * Graceful termination, never failing (usable from finalizers):
 * SIGCONT, SIGTERM, then SIGKILL if still alive after `graceMs`.
 *
 * SIGCONT comes first because the server may have been paused by a test. A
 * stopped process does not run its SIGTERM handler — the signal just stays
 * pending until the process is continued — so without SIGCONT every paused
 * server would sit out the whole grace period and then be SIGKILLed.
 */
const terminate = (proc: Proc, graceMs: number): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    if (proc.exited) return true
    signal(proc, "SIGCONT")
    signal(proc, "SIGTERM")
    if (yield* awaitExit(proc, graceMs)) return true
    return yield* sigkillAndWait(proc)
  })

// ---------------------------------------------------------------------------
// RedisServer
// ---------------------------------------------------------------------------

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, appended last (so they win), e.g. `["--maxmemory", "10mb"]`. */
  readonly args?: ReadonlyArray<string>
  /**
   * Start in cluster mode: `--cluster-enabled yes`, `nodes.conf` in the
   * server's own tmp dir, and a separately allocated cluster bus port
   * (`--cluster-port`; the default port+10000 can overflow for ephemeral ports).
   */
  readonly cluster?: boolean
  /** `--cluster-node-timeout` in ms for cluster mode. Default 2000. */
  readonly clusterNodeTimeoutMs?: number
  /** Upper bound for the server to answer PING after a (re)start. Default 10 000 ms. */
  readonly startTimeoutMs?: number
  /** How long `stop` / scope close wait after SIGTERM before SIGKILL. Default 2 000 ms. */
  readonly stopGraceMs?: number
  /** Timeout for each `command(...)` (redis-cli) call. Default 5 000 ms. */
  readonly commandTimeoutMs?: number
}

export interface RedisServer {
  readonly host: string
  readonly port: number
  /** `redis://127.0.0.1:PORT` */
  readonly url: string
  /** Cluster bus port when started with `cluster: true`. */
  readonly clusterBusPort: number | undefined
  /** The server's data directory (removed when the scope closes). */
  readonly dir: string
  /** PID of the current (most recently started) redis-server process. */
  readonly pid: number
  /** Whether the current process is alive (a paused process counts as alive). */
  readonly isRunning: Effect.Effect<boolean>
  /** SIGSTOP: the server keeps its sockets but stops answering. */
  readonly pause: Effect.Effect<void, HarnessError>
  /** SIGCONT: undo `pause`. */
  readonly resume: Effect.Effect<void, HarnessError>
  /** SIGKILL (a crash: no shutdown, works even when paused) and wait for the exit. No-op if not running. */
  readonly kill: Effect.Effect<void, HarnessError>
  /** Graceful shutdown (SIGCONT, SIGTERM, SIGKILL after the grace period). No-op if not running. */
  readonly stop: Effect.Effect<void, HarnessError>
  /**
   * Starts the server again on the same port (and cluster bus port / dir),
   * stopping it first if it is still running, and waits for PING. The dataset
   * is empty afterwards: persistence is off. In cluster mode `nodes.conf` is
   * kept, so the node rejoins with its old identity.
   */
  readonly restart: Effect.Effect<void, HarnessError>
  /** `redis-cli -h 127.0.0.1 -p PORT ...args`; resolves stdout without the trailing newline. */
  readonly command: (...args: ReadonlyArray<string | number>) => Effect.Effect<string, HarnessError>
  /** Raw TCP PING (see {@link pingRaw}); `false` on timeout. */
  readonly ping: (timeoutMs?: number) => Effect.Effect<boolean>
}

interface ServerState {
  port: number
  busPort: number | undefined
  proc: Proc | undefined
}

type LaunchOutcome = "ready" | "port-in-use"

const ADDRESS_IN_USE = /Address already in use/i

const serverArgs = (state: ServerState, dir: string, options: RedisServerOptions): Array<string> => [
  "--port",
  String(state.port),
  "--bind",
  HOST,
  "--protected-mode",
  "no",
  // No RDB snapshots and no AOF: every (re)start begins with an empty dataset
  // and shutdown never spends time writing to disk.
  "--save",
  "",
  "--appendonly",
  "no",
  "--dir",
  dir,
  "--daemonize",
  "no",
  // Warnings still include bind failures, which the retry logic looks for.
  "--loglevel",
  "warning",
  ...(state.busPort === undefined
    ? []
    : [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        path.join(dir, "nodes.conf"),
        "--cluster-node-timeout",
        String(options.clusterNodeTimeoutMs ?? 2_000),
        "--cluster-port",
        String(state.busPort)
      ]),
  ...(options.args ?? [])
]

/**
 * Spawns redis-server for `state` and waits until it answers PING (and is
 * really *our* process answering), or until `deadline`. Reports "port-in-use"
 * instead of failing when the port was taken so callers can retry. On any
 * non-ready outcome the spawned process is gone when this returns.
 */
const launch = Effect.fnUntraced(function* (
  serverBinary: string,
  cliBinary: string,
  state: ServerState,
  dir: string,
  options: RedisServerOptions,
  deadline: number
): Effect.fn.Return<LaunchOutcome, HarnessError> {
  const proc = yield* spawnProcess(serverBinary, serverArgs(state, dir, options))
  state.proc = proc
  const describe = () => `redis-server on ${HOST}:${state.port} (pid ${proc.pid})`
  const outcome = yield* Effect.gen(function* (): Effect.fn.Return<LaunchOutcome, HarnessError> {
    while (true) {
      if (proc.exited) {
        if (ADDRESS_IN_USE.test(proc.output)) return "port-in-use"
        return yield* Effect.fail(
          new HarnessError({
            message: `${describe()} exited during startup (${proc.exitDescription}):\n${proc.output}`
          })
        )
      }
      if (yield* pingRaw(state.port, { timeoutMs: 250 })) break
      if (Date.now() > deadline) {
        return yield* Effect.fail(
          new HarnessError({ message: `${describe()} did not answer PING in time:\n${proc.output}` })
        )
      }
      yield* sleepReal(20)
    }
    // Something answered PING on our port. Make sure it is the process we just
    // spawned and not a stranger that won the race for the port (ours would
    // then be dying of EADDRINUSE).
    const info = yield* runCommand(cliBinary, ["-h", HOST, "-p", String(state.port), "INFO", "server"], 5_000)
    if (!info.includes(`process_id:${proc.pid}\r`) && !info.includes(`process_id:${proc.pid}\n`)) return "port-in-use"
    return "ready"
  }).pipe(
    // Never leave a half-started server behind.
    Effect.onError(() => sigkillAndWait(proc))
  )
  if (outcome !== "ready") yield* sigkillAndWait(proc)
  return outcome
})

const startServer = Effect.fnUntraced(function* (
  options: RedisServerOptions = {}
): Effect.fn.Return<RedisServer, HarnessError, Scope.Scope> {
  const serverBinary = yield* binary(redisServerPath, "redis-server")
  const cliBinary = yield* binary(redisCliPath, "redis-cli")
  const startTimeoutMs = options.startTimeoutMs ?? 10_000
  const stopGraceMs = options.stopGraceMs ?? 2_000
  const commandTimeoutMs = options.commandTimeoutMs ?? 5_000

  // Finalizers run in reverse order: the process is gone before its dir goes.
  const dir = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        const created = fs.mkdtempSync(path.join(os.tmpdir(), "cachet-redis-"))
        liveDirs.add(created)
        return created
      },
      catch: (cause) => new HarnessError({ message: "could not create a tmp dir for redis-server", cause })
    }),
    (created) =>
      Effect.sync(() => {
        liveDirs.delete(created)
        fs.rmSync(created, { recursive: true, force: true })
      })
  )

  const state = yield* Effect.acquireRelease(
    Effect.sync((): ServerState => ({ port: 0, busPort: undefined, proc: undefined })),
    (s) =>
      Effect.gen(function* () {
        if (s.proc !== undefined) yield* terminate(s.proc, stopGraceMs)
        reservedPorts.delete(s.port)
        if (s.busPort !== undefined) reservedPorts.delete(s.busPort)
      })
  )

  // Fresh ports per attempt: another process may grab a probed port before
  // redis-server binds it.
  const deadline = Date.now() + startTimeoutMs
  for (let attempt = 1; ; attempt++) {
    state.port = yield* reservePort
    if (options.cluster === true) state.busPort = yield* reservePort
    const outcome = yield* launch(serverBinary, cliBinary, state, dir, options, deadline)
    if (outcome === "ready") break
    reservedPorts.delete(state.port)
    if (state.busPort !== undefined) reservedPorts.delete(state.busPort)
    if (attempt >= 5 || Date.now() > deadline) {
      return yield* Effect.fail(
        new HarnessError({ message: `could not bind redis-server to a free port after ${attempt} attempts` })
      )
    }
  }

  const current = (): Proc | undefined => state.proc
  const running = (): Proc | undefined => {
    const proc = current()
    return proc === undefined || proc.exited ? undefined : proc
  }
  const notRunning = (what: string) =>
    Effect.fail(new HarnessError({ message: `cannot ${what} redis-server on port ${state.port}: it is not running` }))

  // Lifecycle operations are serialized so a test cannot, say, kill a server
  // half-way through its restart.
  const lifecycle = Semaphore.makeUnsafe(1)
  const serialized = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => lifecycle.withPermits(1)(effect)

  const kill: Effect.Effect<void, HarnessError> = serialized(
    Effect.gen(function* () {
      const proc = running()
      if (proc === undefined) return
      if (!(yield* sigkillAndWait(proc))) {
        return yield* Effect.fail(
          new HarnessError({ message: `redis-server pid ${proc.pid} survived SIGKILL for ${KILL_WAIT_MS} ms` })
        )
      }
    })
  )

  const stopUnserialized: Effect.Effect<void, HarnessError> = Effect.gen(function* () {
    const proc = running()
    if (proc === undefined) return
    if (!(yield* terminate(proc, stopGraceMs))) {
      return yield* Effect.fail(
        new HarnessError({ message: `redis-server pid ${proc.pid} did not exit after SIGTERM/SIGKILL` })
      )
    }
  })

  const restart: Effect.Effect<void, HarnessError> = serialized(
    Effect.gen(function* () {
      yield* stopUnserialized
      // Same port this time, so no fresh ports on conflict: Redis sets
      // SO_REUSEADDR, but the port may be briefly held (e.g. by a client socket
      // that was bound to it), so retry until the deadline.
      const restartDeadline = Date.now() + startTimeoutMs
      while (true) {
        const outcome = yield* launch(serverBinary, cliBinary, state, dir, options, restartDeadline)
        if (outcome === "ready") return
        if (Date.now() > restartDeadline) {
          return yield* Effect.fail(
            new HarnessError({ message: `could not restart redis-server: port ${state.port} stayed in use` })
          )
        }
        yield* sleepReal(100)
      }
    })
  )

  const signalRunning = (sig: NodeJS.Signals, what: string): Effect.Effect<void, HarnessError> =>
    Effect.suspend(() => {
      const proc = running()
      if (proc === undefined) return notRunning(what)
      signal(proc, sig)
      return Effect.void
    })

  const server: RedisServer = {
    host: HOST,
    port: state.port,
    url: `redis://${HOST}:${state.port}`,
    clusterBusPort: state.busPort,
    dir,
    get pid() {
      return current()?.pid ?? -1
    },
    isRunning: Effect.sync(() => running() !== undefined),
    pause: signalRunning("SIGSTOP", "pause"),
    resume: signalRunning("SIGCONT", "resume"),
    kill,
    stop: serialized(stopUnserialized),
    restart,
    command: (...args) =>
      runCommand(cliBinary, ["-h", HOST, "-p", String(state.port), ...args.map(String)], commandTimeoutMs).pipe(
        Effect.map((stdout) => stdout.replace(/\r?\n$/, ""))
      ),
    ping: (timeoutMs) => pingRaw(state.port, timeoutMs === undefined ? {} : { timeoutMs })
  }
  return server
})

/** Service tag for suites that share one server via `it.layer` / `layer(...)`. */
export class RedisServerService extends Context.Service<RedisServerService, RedisServer>()(
  "cachet/test/harness/RedisServer"
) {}

export const RedisServer = {
  /** Spawns a throwaway redis-server; it is killed and its dir removed when the scope closes. */
  start: startServer,
  /** `RedisServer.start` as a layer providing {@link RedisServerService}. */
  layer: (options?: RedisServerOptions): Layer.Layer<RedisServerService, HarnessError> =>
    Layer.effect(RedisServerService, startServer(options))
} as const

// ---------------------------------------------------------------------------
// RedisCluster
// ---------------------------------------------------------------------------

export interface RedisClusterOptions {
  /** Number of masters. Redis requires at least 3. Default 3. */
  readonly masters?: number
  /**
   * Replicas per master (`--cluster-replicas`). Default 0. With replicas,
   * `cluster-replica-validity-factor 0` lets a replica take over however
   * long its link was down, so a failover always happens.
   */
  readonly replicas?: number
  /** Extra `redis-server` args for every node. */
  readonly args?: ReadonlyArray<string>
  /** `--cluster-node-timeout` in ms. Default 2000. */
  readonly nodeTimeoutMs?: number
  /** Bound for creation and for the cluster to report `cluster_state:ok`. Default 20 000 ms. */
  readonly readyTimeoutMs?: number
}

/** One node as `CLUSTER NODES` describes it. */
export interface ClusterNodeInfo {
  readonly id: string
  /** `host:port` of its clients' port. */
  readonly address: string
  readonly port: number
  readonly master: boolean
  readonly failed: boolean
  /** The id of its master (replicas), else `undefined`. */
  readonly masterId: string | undefined
  /** `connected` or `disconnected`. */
  readonly linkState: string
  /** The slots it serves (masters). */
  readonly slots: ReadonlyArray<number>
}

/** Parses `CLUSTER NODES` output. */
export const parseClusterNodes = (output: string): Array<ClusterNodeInfo> =>
  output
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [id = "", address = "", flags = "", masterId = "-", , , , linkState = "", ...slotRanges] = line
        .trim()
        .split(" ")
      const slots: Array<number> = []
      for (const range of slotRanges) {
        if (range.startsWith("[")) continue // migrating/importing markers
        const [from, to = from] = range.split("-")
        for (let slot = Number(from); slot <= Number(to); slot++) slots.push(slot)
      }
      const hostPort = address.split("@")[0] ?? ""
      const flagList = flags.split(",")
      return {
        id,
        address: hostPort,
        port: Number(hostPort.slice(hostPort.lastIndexOf(":") + 1)),
        master: flagList.includes("master"),
        failed: flagList.includes("fail") || flagList.includes("fail?"),
        masterId: masterId === "-" ? undefined : masterId,
        linkState,
        slots
      }
    })

export interface RedisCluster {
  /** Every node, masters and replicas (which is which changes with failovers: see `topology`). */
  readonly nodes: ReadonlyArray<RedisServer>
  /** Seed nodes in the shape cluster clients (ioredis `Cluster`) expect. */
  readonly startupNodes: Array<{ host: string; port: number }>
  /**
   * `redis-cli -c` against the first node: follows MOVED/ASK redirects, so
   * key-based commands work whatever slot the key is in. Use
   * `nodes[i].command` to target one specific node.
   */
  readonly command: (...args: ReadonlyArray<string | number>) => Effect.Effect<string, HarnessError>
  /**
   * Waits until every *running* node reports `cluster_state:ok`, all 16384
   * slots assigned and all nodes known; e.g. after restarting a node.
   */
  readonly waitHealthy: (timeoutMs?: number) => Effect.Effect<void, HarnessError>
  /** `CLUSTER NODES` as seen by the first running node that answers. */
  readonly topology: Effect.Effect<Array<ClusterNodeInfo>, HarnessError>
  /**
   * Waits until the running nodes agree that every slot is served by a
   * running master, none of `excludedPorts` (e.g. after a SIGKILL: until a
   * replica took over); returns the masters' ports.
   */
  readonly waitMasters: (
    excludedPorts: ReadonlyArray<number>,
    timeoutMs?: number
  ) => Effect.Effect<ReadonlyArray<number>, HarnessError>
}

const clusterInfoField = (info: string, field: string): string | undefined =>
  info
    .split(/\r?\n/)
    .find((line) => line.startsWith(`${field}:`))
    ?.slice(field.length + 1)
    .trim()

const waitClusterHealthy = Effect.fnUntraced(function* (
  nodes: ReadonlyArray<RedisServer>,
  timeoutMs: number
): Effect.fn.Return<void, HarnessError> {
  const deadline = Date.now() + timeoutMs
  let last = ""
  while (true) {
    let healthy = true
    for (const node of nodes) {
      if (!(yield* node.isRunning)) continue
      const info = (yield* commandRaw(node.port, ["CLUSTER", "INFO"])) ?? ""
      const ok =
        clusterInfoField(info, "cluster_state") === "ok" &&
        clusterInfoField(info, "cluster_slots_assigned") === "16384" &&
        clusterInfoField(info, "cluster_known_nodes") === String(nodes.length)
      if (!ok) {
        healthy = false
        last = `node ${node.port}:\n${info}`
        break
      }
    }
    if (healthy) return
    if (Date.now() > deadline) {
      return yield* Effect.fail(
        new HarnessError({ message: `Redis Cluster did not become healthy in ${timeoutMs} ms; ${last}` })
      )
    }
    yield* sleepReal(50)
  }
})

const startCluster = Effect.fnUntraced(function* (
  options: RedisClusterOptions = {}
): Effect.fn.Return<RedisCluster, HarnessError, Scope.Scope> {
  const cliBinary = yield* binary(redisCliPath, "redis-cli")
  const masters = options.masters ?? 3
  const replicas = options.replicas ?? 0
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000
  if (masters < 3)
    return yield* Effect.fail(new HarnessError({ message: `a Redis Cluster needs at least 3 masters, got ${masters}` }))

  const nodes = yield* Effect.forEach(
    Array.from({ length: masters * (1 + replicas) }, (_, i) => i),
    () =>
      startServer({
        cluster: true,
        clusterNodeTimeoutMs: options.nodeTimeoutMs ?? 2_000,
        args: [...(replicas > 0 ? ["--cluster-replica-validity-factor", "0"] : []), ...(options.args ?? [])]
      }),
    { concurrency: "unbounded" }
  )

  // `--cluster create` assigns the slots, bumps config epochs, sends CLUSTER
  // MEET and then polls (once per second) until the configuration is
  // consistent, so it typically takes 1-2 s on an idle machine.
  yield* runCommand(
    cliBinary,
    [
      "--cluster",
      "create",
      ...nodes.map((n) => `${n.host}:${n.port}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes"
    ],
    readyTimeoutMs
  )
  yield* waitClusterHealthy(nodes, readyTimeoutMs)

  const first = nodes[0]
  if (first === undefined) return yield* Effect.fail(new HarnessError({ message: "cluster has no nodes" }))

  const topology: Effect.Effect<Array<ClusterNodeInfo>, HarnessError> = Effect.gen(function* () {
    for (const node of nodes) {
      if (!(yield* node.isRunning)) continue
      const output = yield* commandRaw(node.port, ["CLUSTER", "NODES"])
      if (output !== undefined) return parseClusterNodes(output)
    }
    return yield* Effect.fail(new HarnessError({ message: "no running cluster node answered CLUSTER NODES" }))
  })

  const waitMasters = Effect.fnUntraced(function* (
    excludedPorts: ReadonlyArray<number>,
    timeoutMs: number = readyTimeoutMs
  ): Effect.fn.Return<ReadonlyArray<number>, HarnessError> {
    const deadline = Date.now() + timeoutMs
    let last = ""
    while (true) {
      const views = yield* Effect.forEach(nodes, (node) =>
        Effect.gen(function* () {
          if (!(yield* node.isRunning) || excludedPorts.includes(node.port)) return undefined
          return parseClusterNodes((yield* commandRaw(node.port, ["CLUSTER", "NODES"])) ?? "")
        })
      )
      const settled = views.every((view) => {
        if (view === undefined) return true
        const served = view.filter((n) => n.master && !n.failed && !excludedPorts.includes(n.port))
        return served.reduce((sum, n) => sum + n.slots.length, 0) === 16384
      })
      const view = views.find((v) => v !== undefined)
      if (settled && view !== undefined) {
        return view.filter((n) => n.master && n.slots.length > 0).map((n) => n.port)
      }
      last = JSON.stringify(view?.map((n) => [n.port, n.master, n.failed, n.slots.length]))
      if (Date.now() > deadline) {
        return yield* Effect.fail(
          new HarnessError({ message: `no master took over the slots of ${excludedPorts} in ${timeoutMs} ms: ${last}` })
        )
      }
      yield* sleepReal(50)
    }
  })

  const cluster: RedisCluster = {
    nodes,
    startupNodes: nodes.map((n) => ({ host: n.host, port: n.port })),
    command: (...args) =>
      runCommand(cliBinary, ["-c", "-h", first.host, "-p", String(first.port), ...args.map(String)], 5_000).pipe(
        Effect.map((stdout) => stdout.replace(/\r?\n$/, ""))
      ),
    waitHealthy: (timeoutMs) => waitClusterHealthy(nodes, timeoutMs ?? readyTimeoutMs),
    topology,
    waitMasters
  }
  return cluster
})

/** Service tag for suites that share one cluster via `it.layer` / `layer(...)`. */
export class RedisClusterService extends Context.Service<RedisClusterService, RedisCluster>()(
  "cachet/test/harness/RedisCluster"
) {}

export const RedisCluster = {
  /**
   * Starts a real N-master (default 3) Redis Cluster, with `replicas` per
   * master (default 0); everything is torn down when the scope closes.
   */
  start: startCluster,
  /** `RedisCluster.start` as a layer providing {@link RedisClusterService}. */
  layer: (options?: RedisClusterOptions): Layer.Layer<RedisClusterService, HarnessError> =>
    Layer.effect(RedisClusterService, startCluster(options))
} as const
