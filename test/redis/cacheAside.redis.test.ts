/**
 * The foundation's cacheAside and runtime tests, run unchanged over a real
 * redis-server that this file starts (never the machine's own).
 */
import { describe } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import { cacheAsideSuite } from "../core/cacheAside.suite.ts"
import { requireRedis } from "../harness/redis.ts"
import { sharedServer, sleepReal } from "./helpers.ts"

describe.skipIf(!requireRedis())("cacheAside over Redis", () => {
  const server = sharedServer()
  let n = 0
  // A fresh prefix per layer build: every test sees an empty namespace.
  const store = Layer.unwrap(
    Effect.sync(() => RedisStore.layer({ url: server.get().url, prefix: `aside-${process.pid}-${++n}` }))
  )
  // Forked callers do real network reads before they reach their wait.
  cacheAsideSuite("redis", store, { inProcess: false, settle: sleepReal(300) })
})
