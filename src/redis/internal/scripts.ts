/**
 * The store's Lua scripts: every write, invalidation and tag time is ordered
 * by the server's `TIME`, in the one round trip that makes it (a load reads
 * `TIME` once before it starts: a miss, not a hit, pays that).
 *
 * Why on the server: instance clocks drift (tens of ms, seconds after a VM
 * pause); an entry and an invalidation made by two instances can only be
 * ordered by one clock. A write from a load is fenced: it lands only if
 * nothing wrote or invalidated the key (or cleared its keyspace) since the
 * load started, so a slow load never undoes a later write or invalidation.
 *
 * @internal
 */
import type { Cluster, Redis } from "ioredis"

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

/**
 * KEYS[1] the entry, KEYS[2] its keyspace's clear record (KEYS[1] again when
 * not checked here: a Cluster, where it lives in another slot).
 * ARGV[1] the envelope without `o` (`{...}`), ARGV[2] PX ('' for none),
 * ARGV[3] the server time read before the load started ('' for an explicit
 * write, which always lands), ARGV[4] a clear time the caller read ('' for
 * none), ARGV[5] for a compare-and-set (sliding expiry): the order the key's
 * entry must have ('' for none; the entry keeps it). Returns { order time
 * given to the entry, or -1 when fenced; the server's time }.
 */
const SET = `${NOW}
local order = now
if ARGV[5] ~= nil and ARGV[5] ~= '' then
  order = tonumber(ARGV[5])
  local head = redis.call('GETRANGE', KEYS[1], 0, 63)
  if string.match(head, '^{"o":%d+,"v":1,"x":1}$') then return {-1, now} end
  local seen = tonumber(string.match(head, '^{"o":(%d+),'))
  if seen ~= order then return {-1, now} end
  if KEYS[2] ~= KEYS[1] then
    local cleared = tonumber(redis.call('GET', KEYS[2]))
    if cleared and cleared >= order then return {-1, now} end
  end
  if ARGV[4] ~= '' and tonumber(ARGV[4]) >= order then return {-1, now} end
elseif ARGV[3] ~= '' then
  order = tonumber(ARGV[3])
  local seen = tonumber(string.match(redis.call('GETRANGE', KEYS[1], 0, 31), '^{"o":(%d+)'))
  if seen and seen >= order then return {-1, now} end
  if KEYS[2] ~= KEYS[1] then
    local cleared = tonumber(redis.call('GET', KEYS[2]))
    if cleared and cleared >= order then return {-1, now} end
  end
  if ARGV[4] ~= '' and tonumber(ARGV[4]) >= order then return {-1, now} end
end
local value = '{"o":' .. string.format('%d', order) .. ',' .. string.sub(ARGV[1], 2)
if ARGV[2] == '' then redis.call('SET', KEYS[1], value) else redis.call('SET', KEYS[1], value, 'PX', ARGV[2]) end
return {order, now}`

/**
 * KEYS[1] the entry; ARGV[1] how long the tombstone lives (ms). Replaces
 * whatever is there with a tombstone ordered now; { 1 when an entry was
 * there, else 0; the server's time }.
 */
const DELETE = `${NOW}
local head = redis.call('GETRANGE', KEYS[1], 0, 63)
redis.call('SET', KEYS[1], '{"o":' .. string.format('%d', now) .. ',"v":1,"x":1}', 'PX', ARGV[1])
if head == '' or string.match(head, '^{"o":%d+,"v":1,"x":1}$') then return {0, now} end
return {1, now}`

/**
 * KEYS[1] a tag's or a keyspace's record; ARGV[1] its retention (ms);
 * ARGV[2] 'time:expiresAt' for a tag record, 'time' for a clear record.
 * Keeps the later time; returns the time recorded.
 */
const RECORD = `${NOW}
local cur = redis.call('GET', KEYS[1])
if cur then
  local seen = tonumber(string.match(cur, '^(%d+)'))
  if seen and seen >= now then return seen end
end
local value = string.format('%d', now)
if ARGV[2] == 'tag' then value = value .. ':' .. string.format('%d', now + tonumber(ARGV[1])) end
redis.call('SET', KEYS[1], value, 'PX', ARGV[1])
return now`

/**
 * Many fenced writes in one call: for each i, KEYS[i] the entry; ARGV[1] the
 * keyspace's clear record ('' when not checked here: a Cluster), ARGV[2] a
 * clear time the caller read (''), then per entry three ARGV: the envelope
 * without `o`, PX ('' for none), the server time read before its load
 * started. Each entry as SET with that `since`. Returns { order or -1 per
 * entry..., the server's time }.
 */
const SET_MANY = `${NOW}
local cleared = nil
if ARGV[1] ~= '' then cleared = tonumber(redis.call('GET', ARGV[1])) end
if ARGV[2] ~= '' then
  local given = tonumber(ARGV[2])
  if cleared == nil or given > cleared then cleared = given end
end
local out = {}
for i = 1, #KEYS do
  local json, px, since = ARGV[3 * i], ARGV[3 * i + 1], tonumber(ARGV[3 * i + 2])
  local seen = tonumber(string.match(redis.call('GETRANGE', KEYS[i], 0, 31), '^{"o":(%d+)'))
  if (seen and seen >= since) or (cleared and cleared >= since) then
    out[i] = -1
  else
    local value = '{"o":' .. string.format('%d', since) .. ',' .. string.sub(json, 2)
    if px == '' then redis.call('SET', KEYS[i], value) else redis.call('SET', KEYS[i], value, 'PX', px) end
    out[i] = since
  end
end
out[#KEYS + 1] = now
return out`

/** The scripts as client commands (EVALSHA, loaded on first use; pipelined like any command). */
export interface Scripts {
  readonly setOrdered: (
    key: string,
    clearKey: string,
    json: string | Buffer,
    px: string,
    since: string,
    cleared: string,
    expect?: string
  ) => Promise<[order: number, now: number]>
  /** `SET_MANY`: `writes` as [key, json, px, since]; replies with the orders (-1: fenced) then the server's time. */
  readonly setOrderedMany: (
    clearKey: string,
    cleared: string,
    writes: ReadonlyArray<readonly [key: string, json: string | Buffer, px: string, since: string]>
  ) => Promise<Array<number>>
  readonly tombstone: (key: string, retention: string) => Promise<[existed: number, now: number]>
  readonly record: (key: string, retention: string, kind: "tag" | "clear") => Promise<number>
}

type WithScripts = {
  cachetSetV2: Scripts["setOrdered"]
  cachetDeleteV2: Scripts["tombstone"]
  cachetRecordV2: (key: string, retention: string, kind: string) => Promise<number>
}

/** Registers the scripts on `client` (idempotent: the same names and bodies). */
export const define = (client: Redis | Cluster): Scripts => {
  client.defineCommand("cachetSetV2", { numberOfKeys: 2, lua: SET })
  client.defineCommand("cachetDeleteV2", { numberOfKeys: 1, lua: DELETE })
  client.defineCommand("cachetRecordV2", { numberOfKeys: 1, lua: RECORD })
  const c = client as unknown as WithScripts
  const defined = new Set<number>()
  return {
    setOrdered: (key, clearKey, json, px, elapsed, cleared, expect) =>
      expect === undefined
        ? c.cachetSetV2(key, clearKey, json, px, elapsed, cleared)
        : c.cachetSetV2(key, clearKey, json, px, elapsed, cleared, expect),
    setOrderedMany: (clearKey, cleared, writes) => {
      // One command per key count: ioredis routes a custom command on a
      // Cluster by its first argument, which must be a key, not a key count.
      const name = `cachetSetManyV1x${writes.length}`
      if (!defined.has(writes.length)) {
        client.defineCommand(name, { numberOfKeys: writes.length, lua: SET_MANY })
        defined.add(writes.length)
      }
      const command = (
        client as unknown as Record<string, (...args: Array<string | Buffer>) => Promise<Array<number>>>
      )[name]!
      return command.call(
        client,
        ...writes.map((w) => w[0]),
        clearKey,
        cleared,
        ...writes.flatMap((w) => [w[1], w[2], w[3]])
      )
    },
    tombstone: (key, retention) => c.cachetDeleteV2(key, retention),
    record: (key, retention, kind) => c.cachetRecordV2(key, retention, kind)
  }
}
