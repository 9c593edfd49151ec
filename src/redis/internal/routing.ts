/**
 * Redis Cluster routing: the hash slot of a key (CRC16 XMODEM of the key, or
 * of its hash tag, modulo 16384), and multi-key commands grouped by node and slot.
 *
 * Not `cluster-key-slot` (ioredis's own): its 1.1.2 disagrees with
 * `CLUSTER KEYSLOT` on an empty hash tag followed by `}` (`{}}`), which the
 * property test against a real cluster finds; ours is checked against it.
 *
 * @internal
 */
import { Effect, Result } from "effect"
import type { CacheStoreError } from "../../CacheError.ts"
import type { Connection } from "./connection.ts"
import { MAX_KEYS_PER_CALL, STANDALONE } from "./io.ts"

const table = (() => {
  const t = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let j = 0; j < 8; j++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    t[i] = crc
  }
  return t
})()

const crc16 = (bytes: Uint8Array): number => {
  let crc = 0
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ bytes[i]!) & 0xff]!
  }
  return crc
}

const encoder = new TextEncoder()

/** The hash slot of a key. */
export const slotOf = (key: string): number => {
  let hashed = key
  const open = key.indexOf("{")
  if (open !== -1) {
    const close = key.indexOf("}", open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  // Fast path for ASCII keys (the usual case: keys are escaped).
  let ascii = true
  for (let i = 0; i < hashed.length; i++) {
    if (hashed.charCodeAt(i) > 0x7f) {
      ascii = false
      break
    }
  }
  if (ascii) {
    let crc = 0
    for (let i = 0; i < hashed.length; i++) {
      crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ hashed.charCodeAt(i)) & 0xff]!
    }
    return crc & 16383
  }
  return crc16(encoder.encode(hashed)) & 16383
}

/** Keys routed to their nodes, and the multi-key commands built on that. */
export interface Router {
  readonly nodeOfKey: (key: string) => string
  /**
   * Groups key indices by node, and within a node into batches that a
   * multi-key command may take (one slot each on a cluster).
   */
  readonly groups: (
    keys: ReadonlyArray<string>,
    batchSize: number
  ) => Array<{ readonly node: string; readonly batches: Array<Array<number>> }>
  /**
   * MGET of full keys, aligned with `keys`, one command (and one breaker)
   * per node. `partial`: the keys of a node that fails read as `null` (a
   * miss) while another node answered; the failure is counted in that
   * node's breaker state. Fails when no node answered.
   */
  readonly fetchRaw: (
    op: string,
    keys: ReadonlyArray<string>,
    partial?: boolean
  ) => Effect.Effect<Array<Buffer | null>, CacheStoreError>
  /**
   * `fetchRaw` with the replies as UTF-8 strings (`MGET`'s string replies:
   * no `Buffer` per value). Bytes that are not UTF-8 come back with U+FFFD
   * in them: a caller that must see them reads those keys with `fetchRaw`.
   */
  readonly fetchText: (
    op: string,
    keys: ReadonlyArray<string>,
    partial?: boolean
  ) => Effect.Effect<Array<string | null>, CacheStoreError>
  /** UNLINK of full keys; returns how many existed. */
  readonly unlinkAll: (op: string, keys: ReadonlyArray<string>) => Effect.Effect<number, CacheStoreError>
}

export const makeRouter = (connection: Connection, deleteBatchSize: number): Router => {
  const { client, cluster, exec } = connection
  const nodeOfSlot = (slot: number): string => cluster?.slots[slot]?.[0] ?? "unknown"
  const nodeOfKey = (key: string): string => (cluster === undefined ? STANDALONE : nodeOfSlot(slotOf(key)))

  /**
   * Groups key indices by node, and within a node into batches that a
   * multi-key command may take (one slot each on a cluster).
   */
  const groups = (
    keys: ReadonlyArray<string>,
    batchSize: number
  ): Array<{ readonly node: string; readonly batches: Array<Array<number>> }> => {
    const chunk = (indices: Array<number>): Array<Array<number>> => {
      if (indices.length <= batchSize) return [indices]
      const out: Array<Array<number>> = []
      for (let i = 0; i < indices.length; i += batchSize) out.push(indices.slice(i, i + batchSize))
      return out
    }
    if (cluster === undefined) return [{ node: STANDALONE, batches: chunk(keys.map((_, i) => i)) }]
    const bySlot = new Map<number, Array<number>>()
    keys.forEach((key, i) => {
      const slot = slotOf(key)
      const list = bySlot.get(slot)
      if (list === undefined) bySlot.set(slot, [i])
      else list.push(i)
    })
    const byNode = new Map<string, Array<Array<number>>>()
    for (const [slot, indices] of bySlot) {
      const node = nodeOfSlot(slot)
      const batches = byNode.get(node)
      if (batches === undefined) byNode.set(node, chunk(indices))
      else batches.push(...chunk(indices))
    }
    return [...byNode].map(([node, batches]) => ({ node, batches }))
  }

  /** MGET of full keys with `mget` (Buffers or strings), aligned with `keys` (see `Router.fetchRaw`). */
  const fetchWith =
    <T>(mget: (keys: Array<string>) => Promise<Array<T | null>>) =>
    (op: string, keys: ReadonlyArray<string>, partial = false): Effect.Effect<Array<T | null>, CacheStoreError> => {
      // One node, one batch: the reply is already aligned with `keys`.
      if (cluster === undefined && keys.length <= MAX_KEYS_PER_CALL) {
        return exec(op, STANDALONE, () => mget(keys as Array<string>))
      }
      const byNode = groups(keys, MAX_KEYS_PER_CALL)
      const fetchNode = ({ node, batches }: (typeof byNode)[number]) =>
        Effect.map(
          exec(op, node, () => Promise.all(batches.map((batch) => mget(batch.map((i) => keys[i]!))))),
          (replies) => ({ batches, replies })
        )
      const fetched =
        partial && byNode.length > 1
          ? Effect.flatMap(
              Effect.forEach(byNode, (group) => Effect.result(fetchNode(group)), { concurrency: "unbounded" }),
              (results) => {
                const answered = results.filter(Result.isSuccess).map((r) => r.success)
                const failed = results.find(Result.isFailure)
                return answered.length === 0 && failed !== undefined
                  ? Effect.fail(failed.failure)
                  : Effect.succeed(answered)
              }
            )
          : Effect.forEach(byNode, fetchNode, { concurrency: "unbounded" })
      return Effect.map(fetched, (results) => {
        const out: Array<T | null> = new Array(keys.length).fill(null)
        for (const { batches, replies } of results) {
          batches.forEach((batch, b) => {
            const reply = replies[b] ?? []
            batch.forEach((index, j) => {
              out[index] = reply[j] ?? null
            })
          })
        }
        return out
      })
    }
  const fetchRaw = fetchWith<Buffer>((keys) => client.mgetBuffer(keys))
  const fetchText = fetchWith<string>((keys) => client.mget(keys))

  /** UNLINK of full keys; returns how many existed. */
  const unlinkAll = (op: string, keys: ReadonlyArray<string>): Effect.Effect<number, CacheStoreError> =>
    keys.length === 0
      ? Effect.succeed(0)
      : Effect.map(
          Effect.forEach(
            groups(keys, deleteBatchSize),
            ({ node, batches }) =>
              exec(op, node, () => Promise.all(batches.map((batch) => client.unlink(batch.map((i) => keys[i]!))))),
            { concurrency: "unbounded" }
          ),
          (results) => results.flat().reduce((n, m) => n + m, 0)
        )

  return { nodeOfKey, groups, fetchRaw, fetchText, unlinkAll }
}
