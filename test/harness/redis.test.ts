/**
 * Tests for the Redis test harness itself, against real redis-server processes.
 *
 * These tests necessarily spend real time: they wait for processes to start,
 * exit and answer on sockets, and prove that a paused server does NOT answer
 * within a (real) 300 ms window. The harness uses real timers internally, so it
 * works unchanged under `it.effect`'s TestClock — which these tests also prove,
 * since `it.effect` and `layer(...)` both install a TestClock.
 */
import * as fs from "node:fs"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Exit } from "effect"
import {
  HarnessError,
  parseClusterNodes,
  pingRaw,
  RedisCluster,
  RedisServer,
  RedisServerService,
  requireRedis
} from "./redis.ts"

/** `true` iff no process with this PID exists (kill(pid, 0) fails with ESRCH). */
const processGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}

describe("requireRedis", () => {
  it("passes when Redis is available", () => {
    assert.isTrue(requireRedis({ available: true, env: { CI: "true" } }))
  })
  it("lets the caller skip outside CI when Redis is missing", () => {
    assert.isFalse(requireRedis({ available: false, env: {} }))
    assert.isFalse(requireRedis({ available: false, env: { CI: "false" } }))
  })
  it("fails loudly in CI when Redis is missing", () => {
    assert.throws(() => requireRedis({ available: false, env: { CI: "true" } }), /Refusing to skip Redis suites in CI/)
  })
})

describe.skipIf(!requireRedis())("Redis test harness", () => {
  describe("RedisServer", () => {
    it.effect("starts on an ephemeral port and answers PING", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        assert.strictEqual(server.host, "127.0.0.1")
        assert.notStrictEqual(server.port, 6379)
        assert.strictEqual(server.url, `redis://127.0.0.1:${server.port}`)
        assert.isTrue(yield* server.isRunning)
        assert.isTrue(fs.existsSync(server.dir))
        assert.strictEqual(yield* server.command("PING"), "PONG")
        assert.isTrue(yield* server.ping())
        // It is our process answering, and persistence is off.
        const info = yield* server.command("INFO", "server")
        assert.include(info, `process_id:${server.pid}`)
        assert.include(info, `tcp_port:${server.port}`)
        assert.strictEqual(yield* server.command("CONFIG", "GET", "save"), "save\n")
        assert.strictEqual(yield* server.command("CONFIG", "GET", "appendonly"), "appendonly\nno")
      })
    )

    it.effect("pause stops answers (raw PING times out) and resume brings them back", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        assert.isTrue(yield* pingRaw(server.port, { timeoutMs: 300 }))

        yield* server.pause
        // The kernel still accepts the connection; the stopped process never replies.
        assert.isFalse(yield* pingRaw(server.port, { timeoutMs: 300 }))
        assert.isTrue(yield* server.isRunning, "a paused server is still a live process")

        yield* server.resume
        assert.isTrue(yield* pingRaw(server.port, { timeoutMs: 1_000 }))
        assert.strictEqual(yield* server.command("PING"), "PONG")
      })
    )

    it.effect("kill then restart comes back on the same port with an empty dataset", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const port = server.port
        const firstPid = server.pid
        assert.strictEqual(yield* server.command("SET", "k", "v"), "OK")
        assert.strictEqual(yield* server.command("DBSIZE"), "1")

        yield* server.kill
        assert.isFalse(yield* server.isRunning)
        assert.isTrue(processGone(firstPid))
        assert.isFalse(yield* server.ping(300))
        yield* server.kill // idempotent

        yield* server.restart
        assert.isTrue(yield* server.isRunning)
        assert.strictEqual(server.port, port)
        assert.notStrictEqual(server.pid, firstPid)
        assert.strictEqual(yield* server.command("PING"), "PONG")
        assert.strictEqual(yield* server.command("DBSIZE"), "0")
      })
    )

    it.effect("stop is graceful and restart also works from a running server", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.start()
        const pid1 = server.pid
        yield* server.restart // stops the running process first
        const pid2 = server.pid
        assert.notStrictEqual(pid2, pid1)
        assert.isTrue(processGone(pid1))
        assert.strictEqual(yield* server.command("PING"), "PONG")

        yield* server.stop
        assert.isFalse(yield* server.isRunning)
        assert.isTrue(processGone(pid2))
        const error = yield* Effect.flip(server.pause)
        assert.instanceOf(error, HarnessError)
      })
    )

    it.effect("closing the scope kills the process (even when paused) and removes its dir", () =>
      Effect.gen(function* () {
        const stopGraceMs = 5_000
        const { pid, dir, closingAt } = yield* Effect.scoped(
          Effect.gen(function* () {
            const server = yield* RedisServer.start({ stopGraceMs })
            // Paused on purpose: the finalizer must SIGCONT before SIGTERM,
            // otherwise the pending SIGTERM is never handled and teardown
            // would wait out the whole grace period before SIGKILL.
            yield* server.pause
            return { pid: server.pid, dir: server.dir, closingAt: Date.now() }
          })
        )
        const closeMs = Date.now() - closingAt
        assert.isTrue(processGone(pid))
        assert.isFalse(fs.existsSync(dir))
        assert.isBelow(
          closeMs,
          stopGraceMs - 1_000,
          "a paused server should shut down gracefully, not hit the SIGKILL fallback"
        )
      })
    )

    it.effect("a server that cannot start fails with HarnessError and leaves nothing behind", () =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(Effect.scoped(RedisServer.start({ args: ["--no-such-directive", "x"] })))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
          assert.isDefined(error)
          if (error?._tag === "Fail") {
            assert.instanceOf(error.error, HarnessError)
            assert.include(error.error.message, "exited during startup")
          }
        }
      })
    )
  })

  // Built by `layer(...)`, i.e. under the TestClock: proves the harness does
  // not depend on virtual time advancing.
  layer(RedisServer.layer())("RedisServer.layer", (it) => {
    it.effect("provides a running server", () =>
      Effect.gen(function* () {
        const server = yield* RedisServerService
        assert.strictEqual(yield* server.command("PING"), "PONG")
      })
    )
  })

  describe("RedisCluster", () => {
    it.effect("forms a 3-master cluster covering all 16384 slots, torn down on scope close", () =>
      Effect.gen(function* () {
        const pids = yield* Effect.scoped(
          Effect.gen(function* () {
            const cluster = yield* RedisCluster.start()
            assert.strictEqual(cluster.nodes.length, 3)
            assert.deepStrictEqual(
              cluster.startupNodes,
              cluster.nodes.map((node) => ({ host: "127.0.0.1", port: node.port }))
            )

            for (const node of cluster.nodes) {
              assert.include(yield* node.command("CLUSTER", "INFO"), "cluster_state:ok")
            }

            const [first] = cluster.nodes
            if (first === undefined) return assert.fail("cluster has no nodes")
            const entries = parseClusterNodes(yield* first.command("CLUSTER", "NODES"))
            const masters = entries.filter((entry) => entry.master)
            assert.strictEqual(entries.length, 3)
            assert.strictEqual(masters.length, 3)
            for (const master of masters) {
              assert.strictEqual(master.linkState, "connected")
              assert.isAbove(master.slots.length, 0)
            }
            const slots = masters.flatMap((master) => master.slots).sort((a, b) => a - b)
            assert.strictEqual(slots.length, 16384)
            assert.deepStrictEqual(
              slots,
              Array.from({ length: 16384 }, (_, i) => i)
            )

            // `cluster.command` follows redirects, so keys in any slot work.
            for (const key of ["a", "b", "c", "user:1", "user:2"]) {
              assert.strictEqual(yield* cluster.command("SET", key, `v-${key}`), "OK")
              assert.strictEqual(yield* cluster.command("GET", key), `v-${key}`)
            }

            return cluster.nodes.map((node) => node.pid)
          })
        )
        assert.strictEqual(pids.length, 3)
        for (const pid of pids) assert.isTrue(processGone(pid), `pid ${pid} still exists`)
      })
    )

    it.effect(
      "with replicas: 3 masters + 3 replicas; after SIGKILL of a master its replica takes its slots, and the old master rejoins as a replica",
      () =>
        Effect.gen(function* () {
          const cluster = yield* RedisCluster.start({ replicas: 1, nodeTimeoutMs: 500 })
          assert.strictEqual(cluster.nodes.length, 6)
          const before = yield* cluster.topology
          const masters = before.filter((n) => n.master)
          const replicas = before.filter((n) => !n.master)
          assert.strictEqual(masters.length, 3)
          assert.strictEqual(replicas.length, 3)
          assert.sameMembers(
            replicas.map((r) => r.masterId),
            masters.map((m) => m.id),
            "one replica per master"
          )

          const victim = masters[0]!
          const node = cluster.nodes.find((n) => n.port === victim.port)!
          yield* node.kill
          const after = yield* cluster.waitMasters([victim.port], 15_000)
          assert.strictEqual(after.length, 3)
          assert.notInclude(after, victim.port)
          const heir = replicas.find((r) => r.masterId === victim.id)!
          assert.include(after, heir.port, "the killed master's replica took over")

          yield* node.restart
          yield* cluster.waitHealthy(15_000)
          // The restarted node first claims its old slots, then learns the
          // newer epoch by gossip and turns replica: poll (real time, bounded).
          let rejoined = (yield* cluster.topology).find((n) => n.port === victim.port)!
          for (let i = 0; i < 150 && rejoined.master; i++) {
            yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
            rejoined = (yield* cluster.topology).find((n) => n.port === victim.port)!
          }
          assert.isFalse(rejoined.master, "the old master came back as a replica (within 15 s)")
        }),
      40_000
    )
  })
})
