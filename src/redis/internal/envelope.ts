/**
 * The JSON envelope a Redis entry is stored in:
 *
 * ```text
 * {"o":order,"v":1,"c":createdAt,"f":freshUntil,"s":staleUntil,"t":[tags],"n":1,"d":<data>}
 * {"o":order,"v":1,"x":1}                      a tombstone: the key was invalidated at `order`
 * {"o":order,"v":1,"z":"br","c":..,"f":..,"s":..,"t":[..]}\n<bytes>   compressed (`compress`)
 * ```
 *
 * A compressed entry keeps the same header as JSON (so the scripts read its
 * `o` as before), without `d`, with `z` naming the codec (`br`, `gz`, `zs`),
 * then one newline byte and the compressed JSON of `d`. A plain envelope
 * never holds a raw newline (JSON.stringify escapes it), so a reader tells
 * the two apart by that byte alone and reads both, whatever its own
 * `compress` option says: a rollout (or a rollback) of compression needs no
 * flush. Compressed bytes that do not inflate (corrupt, unknown codec, past
 * `maxEntryBytes`) read as a corrupt entry: a counted miss.
 *
 * `o` comes first and is written by the store's Lua script from the
 * server's `TIME` (this module encodes the rest): it orders the entry against
 * invalidations, and the write script reads it with one anchored match. `n`
 * is present (and 1) only for negative entries; `d` is the value as encoded
 * by the keyspace codec. A tombstone reads as absent. Reading is strict: anything else (bytes that
 * are not UTF-8, not JSON, not an object, another version, a missing or extra
 * field, a `__proto__` key anywhere) is corrupt.
 *
 * @internal
 */
import { isUtf8 } from "node:buffer"
import { Effect, Result } from "effect"
import { CacheDecodeError, CacheEncodeError, CacheValueTooLarge } from "../../CacheError.ts"
import type { EntryCodec, StoredEntry } from "../../CacheStore.ts"
import * as Compression from "./compression.ts"
import type { DecodeCache } from "./decodeCache.ts"

/** The envelope version written and read by this module. */
const VERSION = 1

const allowedKeys = new Set(["o", "v", "c", "f", "s", "t", "n", "d", "x", "z"])

const NEWLINE = 0x0a

/**
 * Serialises an entry; fails with `CacheEncodeError` when the codec refuses
 * the value or JSON cannot represent it, and with `CacheValueTooLarge` when
 * the result is over `maxBytes` (UTF-8, before compression). With
 * `compress`, a value whose JSON is at least `minBytes` is compressed (the
 * result is then bytes).
 */
export const encode = (
  key: string,
  entry: StoredEntry,
  codec: EntryCodec,
  maxBytes: number,
  compress?: Compression.Resolved
): Result.Result<string | Buffer, CacheEncodeError | CacheValueTooLarge> => {
  const negative = entry.negative === true
  const encoded = codec.encode(entry.value, negative)
  if (Result.isFailure(encoded)) return Result.fail(encoded.failure)
  const data = encoded.success
  if (data === undefined || typeof data === "function" || typeof data === "symbol") {
    return Result.fail(
      new CacheEncodeError({ keyspace: codec.keyspace, message: "value encodes to nothing JSON can represent" })
    )
  }
  let json: string
  let dataJson: string
  try {
    // The envelope is its header with `d` last: `{...,"d":<data>}`.
    dataJson = JSON.stringify(data)
    json = `${header(entry, negative, undefined).slice(0, -1)},"d":${dataJson}}`
  } catch (error) {
    return Result.fail(
      new CacheEncodeError({
        keyspace: codec.keyspace,
        message: `value is not JSON-serialisable: ${error instanceof Error ? error.message : String(error)}`
      })
    )
  }
  // Reads refuse `__proto__` keys; refuse to write what could not be read.
  if (json.includes('"__proto__"') && hasProtoKey(json)) {
    return Result.fail(
      new CacheEncodeError({
        keyspace: codec.keyspace,
        message: 'value has a "__proto__" key, which the Redis store does not read back; not stored'
      })
    )
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes: skip the count when small.
  if (json.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(json, "utf8")
    if (bytes > maxBytes) {
      return Result.fail(new CacheValueTooLarge({ keyspace: codec.keyspace, key, bytes, maxBytes }))
    }
  }
  // Small values stay plain JSON; bytes are counted only when the length
  // alone (at most 3 bytes per UTF-16 unit) cannot decide.
  if (compress === undefined || json.length * 3 < compress.minBytes) return Result.succeed(json)
  const body = Buffer.from(dataJson, "utf8")
  if (body.length < compress.minBytes) return Result.succeed(json)
  let packed: Buffer
  try {
    packed = compress.compress(body)
  } catch (error) {
    return Result.fail(
      new CacheEncodeError({
        keyspace: codec.keyspace,
        message: `compression failed: ${error instanceof Error ? error.message : String(error)}`
      })
    )
  }
  return Result.succeed(Buffer.concat([Buffer.from(`${header(entry, negative, compress.tag)}\n`, "utf8"), packed]))
}

/** The envelope's fields but `d`, as JSON; `z` when compressed. */
const header = (entry: StoredEntry, negative: boolean, z: Compression.Tag | undefined): string => {
  const base = { v: VERSION, ...(z === undefined ? {} : { z }) }
  return JSON.stringify(
    negative
      ? { ...base, c: entry.createdAt, f: entry.freshUntil, s: entry.staleUntil, t: entry.tags, n: 1 }
      : { ...base, c: entry.createdAt, f: entry.freshUntil, s: entry.staleUntil, t: entry.tags }
  )
}

/** What reading raw bytes gave. */
export type Decoded =
  | { readonly _tag: "Entry"; readonly entry: StoredEntry }
  | { readonly _tag: "Expired" }
  | { readonly _tag: "Corrupt"; readonly error: CacheDecodeError }

const expired: Decoded = { _tag: "Expired" }

const hasProtoKey = (json: string): boolean => {
  try {
    JSON.parse(json, rejectProto)
    return false
  } catch {
    return true
  }
}

const rejectProto = (key: string, value: unknown): unknown => {
  if (key === "__proto__") throw new SyntaxError("__proto__ key")
  return value
}

/** A corrupt result with a message. */
export const corruptOf = (codec: EntryCodec, key: string, message: string): Decoded => ({
  _tag: "Corrupt",
  error: new CacheDecodeError({ keyspace: codec.keyspace, key, message: `unreadable Redis entry: ${message}` })
})

const isTime = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)

/** Parses JSON text strictly (no `__proto__` key anywhere); a message when it is not. */
const parseText = (text: string): { readonly value: unknown } | string => {
  try {
    // A `__proto__` key can only appear literally or through a \u escape;
    // only then pay for the reviver.
    return {
      value: text.includes("__proto__") || text.includes("\\u") ? JSON.parse(text, rejectProto) : JSON.parse(text)
    }
  } catch (error) {
    return error instanceof SyntaxError && error.message === "__proto__ key" ? "__proto__ key" : "not JSON"
  }
}

/** `parseText` of UTF-8 bytes; "not UTF-8" when they are not. */
const parseJson = (raw: Buffer): { readonly value: unknown } | string =>
  isUtf8(raw) ? parseText(raw.toString("utf8")) : "not UTF-8"

/**
 * Reads raw bytes into an entry. An entry whose `staleUntil` is at or before
 * `now` reads as expired (Redis expires it by wall-clock time; this check
 * follows the Effect `Clock`). A compressed entry inflates to at most
 * `maxBytes`.
 */
const decode = (
  raw: Buffer,
  key: string,
  codec: EntryCodec,
  now: number,
  maxBytes: number = Number.POSITIVE_INFINITY
): Decoded => {
  const newline = raw.indexOf(NEWLINE)
  const parsed = parseJson(newline < 0 ? raw : raw.subarray(0, newline))
  if (typeof parsed === "string") return corruptOf(codec, key, parsed)
  return decodeParsed(parsed.value, newline < 0 ? undefined : raw.subarray(newline + 1), key, codec, now, maxBytes)
}

/**
 * Whether a reply read as a UTF-8 string must be read again as bytes: a raw
 * newline (a compressed entry: binary after its header) or U+FFFD (bytes
 * that were not UTF-8, or a value that holds U+FFFD itself; the bytes tell).
 */
const needsBytes = (text: string): boolean => text.includes("\n") || text.includes("\uFFFD")

/**
 * `decode` for a reply read as a UTF-8 string, which `needsBytes` let
 * through (valid UTF-8, no compressed part): the same checks, no Buffer.
 */
const decodeText = (text: string, key: string, codec: EntryCodec, now: number): Decoded => {
  const parsed = parseText(text)
  if (typeof parsed === "string") return corruptOf(codec, key, parsed)
  return decodeParsed(parsed.value, undefined, key, codec, now, Number.POSITIVE_INFINITY)
}

/** The envelope checks and the value's decode, after parsing (`compressed`: the bytes after the header's newline). */
const decodeParsed = (
  parsed: unknown,
  compressed: Buffer | undefined,
  key: string,
  codec: EntryCodec,
  now: number,
  maxBytes: number
): Decoded => {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return corruptOf(codec, key, "not a JSON object")
  }
  const o = parsed as Record<string, unknown>
  if (compressed !== undefined) {
    // Compressed: the header must name a codec and hold no `d`.
    if (o.z === undefined || Object.hasOwn(o, "d")) return corruptOf(codec, key, "bytes after the envelope")
    if (o.x !== undefined) return corruptOf(codec, key, "compressed tombstone")
    let body: Buffer
    try {
      body = Compression.decompress(o.z, compressed, maxBytes)
    } catch (error) {
      return corruptOf(codec, key, `does not decompress: ${error instanceof Error ? error.message : String(error)}`)
    }
    const data = parseJson(body)
    if (typeof data === "string") return corruptOf(codec, key, `compressed data ${data}`)
    o.d = data.value
    delete o.z
  } else if (o.z !== undefined) {
    return corruptOf(codec, key, "compressed flag without compressed data")
  }
  for (const k of Object.keys(o)) {
    if (!allowedKeys.has(k)) return corruptOf(codec, key, `unknown field ${JSON.stringify(k)}`)
  }
  if (o.v !== VERSION) return corruptOf(codec, key, `unknown envelope version ${JSON.stringify(o.v) ?? "(missing)"}`)
  const order = o.o
  if (order !== undefined && !isTime(order)) return corruptOf(codec, key, "invalid order time")
  if (o.x !== undefined) return o.x === 1 ? expired : corruptOf(codec, key, "invalid tombstone flag")
  const createdAt = o.c
  const freshUntil = o.f
  const staleUntil = o.s
  const tags = o.t
  if (!isTime(createdAt) || !isTime(freshUntil) || !isTime(staleUntil)) {
    return corruptOf(codec, key, "missing or invalid times")
  }
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string")) {
    return corruptOf(codec, key, "missing or invalid tags")
  }
  if (o.n !== undefined && o.n !== 1) return corruptOf(codec, key, "invalid negative flag")
  if (!Object.hasOwn(o, "d")) return corruptOf(codec, key, "missing data")
  if (staleUntil <= now) return expired
  const negative = o.n === 1
  let value: Result.Result<unknown, CacheDecodeError>
  try {
    value = codec.decode(o.d, key, negative)
  } catch (error) {
    return corruptOf(codec, key, `decoder threw: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (Result.isFailure(value)) return { _tag: "Corrupt", error: value.failure }
  return {
    _tag: "Entry",
    entry: negative
      ? { value: value.success, createdAt, freshUntil, staleUntil, tags: tags as Array<string>, negative: true, order }
      : { value: value.success, createdAt, freshUntil, staleUntil, tags: tags as Array<string>, order }
  }
}

/**
 * Decodes raw replies (aligned with `keys`; `full` are the Redis keys).
 * Unreadable entries are deleted with `dropCorrupt`, then reported to the codec.
 */
export const decodeAll = <E>(
  keys: ReadonlyArray<string>,
  full: ReadonlyArray<string>,
  raws: ReadonlyArray<Buffer | string | null>,
  codec: EntryCodec,
  now: number,
  dropCorrupt: (fullKey: string, raw: Buffer | string) => Effect.Effect<void>,
  maxBytes: number,
  memo: DecodeCache | undefined,
  /** Reads keys again as bytes, for the string replies that `needsBytes` names. */
  refetch: (full: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Buffer | null>, E>
): Effect.Effect<Array<StoredEntry | undefined>, E> => {
  // Both filled only when needed: a hit allocates neither.
  let corrupt:
    | Array<{ readonly index: number; readonly raw: Buffer | string; readonly error: CacheDecodeError }>
    | undefined
  // Replies read as strings that must be read again as bytes (see `needsBytes`).
  let again: Array<number> | undefined
  const decodeOne = (raw: Buffer | string, i: number): StoredEntry | undefined => {
    let decoded: Decoded
    try {
      decoded =
        typeof raw === "string" ? decodeText(raw, keys[i]!, codec, now) : decode(raw, keys[i]!, codec, now, maxBytes)
    } catch (error) {
      decoded = corruptOf(codec, keys[i]!, `decoder threw: ${String(error)}`)
    }
    if (decoded._tag === "Entry") {
      memo?.set(full[i]!, raw, codec, decoded.entry)
      return decoded.entry
    }
    memo?.delete(full[i]!)
    if (decoded._tag === "Corrupt") (corrupt ??= []).push({ index: i, raw, error: decoded.error })
    return undefined
  }
  const entries = raws.map((raw, i): StoredEntry | undefined => {
    if (raw === null) return undefined
    // The decode cache first: it only ever holds strings that `needsBytes`
    // let through, so a string equal to one of them needs no bytes either.
    if (memo !== undefined) {
      const known = memo.get(full[i]!, raw, codec)
      if (known !== undefined) return known.staleUntil <= now ? undefined : known
    }
    if (typeof raw === "string" && needsBytes(raw)) {
      ;(again ??= []).push(i)
      return undefined
    }
    return decodeOne(raw, i)
  })
  const report = (): Effect.Effect<Array<StoredEntry | undefined>> =>
    corrupt === undefined
      ? Effect.succeed(entries)
      : Effect.as(
          Effect.forEach(
            corrupt,
            ({ index, raw, error }) =>
              Effect.andThen(
                dropCorrupt(full[index]!, raw),
                Effect.sync(() => codec.onCorrupt(error))
              ),
            { concurrency: "unbounded", discard: true }
          ),
          entries
        )
  if (again === undefined) return report()
  const pending = again
  return Effect.flatMap(refetch(pending.map((i) => full[i]!)), (replies) =>
    Effect.suspend(() => {
      pending.forEach((i, j) => {
        const raw = replies[j] ?? null
        entries[i] = raw === null ? undefined : decodeOne(raw, i)
      })
      return report()
    })
  )
}
