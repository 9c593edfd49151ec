/**
 * Prefix clearing: SCAN with an escaped MATCH on every master (all slots must
 * be served), UNLINK in batches. How `invalidateKeyspace` finds exactly its keys.
 *
 * @internal
 */
import { Effect } from "effect"
import type { Redis } from "ioredis"
import type { CacheStoreError } from "../../CacheError.ts"
import { type Connection, nodeKeyOf } from "./connection.ts"
import { STANDALONE, storeError } from "./io.ts"
import type { Router } from "./routing.ts"

/**
 * Deletes every key matching `pattern` (a Redis glob) and, when given,
 * `filter` (the exact test, on the full key); returns how many existed.
 */
export const make = (
  connection: Connection,
  router: Router,
  options: { readonly scanCount: number; readonly deleteBatchSize: number }
): ((
  pattern: string,
  filter?: ((key: string) => boolean) | undefined,
  op?: string | undefined
) => Effect.Effect<number, CacheStoreError>) => {
  const { cluster, standalone, exec, ready } = connection
  const { unlinkAll } = router
  const { scanCount, deleteBatchSize } = options
  /** The masters to scan, each with its node key; all slots must be served. */
  const scanTargets = (
    op: string
  ): Effect.Effect<ReadonlyArray<{ readonly node: string; readonly redis: Redis }>, CacheStoreError> =>
    Effect.suspend(() => {
      if (cluster === undefined) return Effect.succeed([{ node: STANDALONE, redis: standalone! }])
      if (cluster.status !== "ready") {
        return Effect.fail(storeError(op, "Unavailable", new Error(`cluster is ${cluster.status}, not ready`)))
      }
      const masters = new Map(cluster.nodes("master").map((redis) => [nodeKeyOf(redis), redis] as const))
      for (let slot = 0; slot < 16384; slot++) {
        const owner = cluster.slots[slot]?.[0]
        if (owner === undefined || !masters.has(owner)) {
          return Effect.fail(
            storeError(op, "Unavailable", new Error(`slot ${slot} has no known master; cannot scan every key`))
          )
        }
      }
      return Effect.succeed([...masters].map(([node, redis]) => ({ node, redis })))
    })

  const deletePrefix = (
    pattern: string,
    filter?: ((key: string) => boolean) | undefined,
    op = "deletePrefix"
  ): Effect.Effect<number, CacheStoreError> =>
    Effect.gen(function* () {
      if (cluster !== undefined) yield* ready(op)
      const targets = yield* scanTargets(op)
      const counts = yield* Effect.forEach(
        targets,
        ({ node, redis }) =>
          Effect.gen(function* () {
            let cursor = "0"
            let deleted = 0
            let found: Array<string> = []
            do {
              const [next, keys] = yield* exec(
                op,
                node,
                () => redis.scan(cursor, "MATCH", pattern, "COUNT", scanCount),
                cluster === undefined
              )
              cursor = next
              if (filter === undefined) found.push(...keys)
              else for (const key of keys) if (filter(key)) found.push(key)
              while (found.length >= deleteBatchSize || (cursor === "0" && found.length > 0)) {
                const batch = found.slice(0, deleteBatchSize)
                found = found.slice(deleteBatchSize)
                deleted += yield* unlinkAll(op, batch)
              }
            } while (cursor !== "0")
            return deleted
          }),
        { concurrency: "unbounded" }
      )
      return counts.reduce((n, m) => n + m, 0)
    })

  return deletePrefix
}
