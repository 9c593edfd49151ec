/**
 * The reconnection cadence of clients built by `IoRedis` (issue #13): while
 * Redis is down, an attempt at least every 250 ms, jittered. Checked on the
 * retry strategies of real (not connected) ioredis clients: no server needed.
 */
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import type { Cluster, Redis } from "ioredis"
import * as clientInternal from "../../src/redis/internal/client.ts"

const standalone = () =>
  clientInternal.planClient({ url: "redis://127.0.0.1:1", redisOptions: { lazyConnect: true } }).create() as Redis
const cluster = () =>
  clientInternal.planClient({ cluster: ["127.0.0.1:1"], clusterOptions: { lazyConnect: true } }).create() as Cluster

describe("reconnection cadence", () => {
  it("every attempt of a standalone and a cluster client waits at most 250 ms, at least half of its step", () => {
    const redis = standalone()
    const clustered = cluster()
    const strategies = [redis.options.retryStrategy!, clustered.options.clusterRetryStrategy!]
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 0, max: 1 }), (times, which) => {
        const delay = strategies[which]!(times) as number
        const step = Math.min(50 * 2 ** Math.min(times, 16), 250)
        return delay >= Math.max(1, Math.round(step / 2)) && delay <= 250
      })
    )
    redis.disconnect()
    clustered.disconnect()
  })

  it("is jittered: attempts of many clients down at once do not land together", () => {
    const redis = standalone()
    const delays = new Set(Array.from({ length: 200 }, () => redis.options.retryStrategy!(10)))
    assert.isAbove(delays.size, 50, "200 tenth attempts spread over the [125, 250] ms range")
    redis.disconnect()
  })

  it("a Cluster client fails a dead master's command at once instead of retrying it until the timeout", () => {
    const clustered = cluster()
    assert.strictEqual(clustered.options.retryDelayOnFailover, 0)
    assert.strictEqual(clustered.options.retryDelayOnClusterDown, 0)
    clustered.disconnect()
  })
})
