/**
 * Compression of large entries on a remote store, with node's zlib: brotli,
 * gzip, and zstd where the Node version has it (`zlib.zstdCompressSync`,
 * Node 22.15 and 23.8 on). Synchronous: a value is compressed in the call
 * that writes it, and decompressed in the read that decodes it (the same
 * place JSON is parsed), so a read never waits on the thread pool.
 *
 * Decompression is bounded (`maxOutputLength`): bytes that would inflate past
 * the store's `maxEntryBytes` are refused, like any corrupt entry.
 *
 * @internal
 */
import * as zlib from "node:zlib"

/** The codecs, as options name them. */
export type Codec = "brotli" | "gzip" | "zstd"

/** The codec's tag in the envelope (`"z"`). */
export type Tag = "br" | "gz" | "zs"

/** Resolved compression options. */
export interface Resolved {
  readonly codec: Codec
  readonly tag: Tag
  /** Values whose JSON is at least this many bytes are compressed. */
  readonly minBytes: number
  readonly compress: (input: Buffer) => Buffer
}

/** Options as given (`RedisStore.CompressOptions`, which documents them). */
export interface Options {
  /** Which codec compresses new entries (default `"brotli"`). */
  readonly codec?: Codec | undefined
  /** Values whose JSON is at least this many bytes are compressed (default 1,024). */
  readonly minBytes?: number | undefined
  /** The codec's level: brotli 0-11 (default 4), gzip 1-9 (6), zstd 1-19 (3). */
  readonly level?: number | undefined
}

interface ZstdZlib {
  readonly zstdCompressSync?: (input: Buffer, options?: object) => Buffer
  readonly zstdDecompressSync?: (input: Buffer, options?: object) => Buffer
  readonly constants: { readonly ZSTD_c_compressionLevel?: number }
}

const z = zlib as unknown as ZstdZlib

/** Whether this Node has zstd in `node:zlib`. */
export const hasZstd: boolean = typeof z.zstdCompressSync === "function" && typeof z.zstdDecompressSync === "function"

const tags: Record<Codec, Tag> = { brotli: "br", gzip: "gz", zstd: "zs" }

const fail = (option: string, message: string): never => {
  throw new Error(`cachet: RedisStore option "compress.${option}" ${message}`)
}

const levelIn = (level: number | undefined, min: number, max: number, fallback: number): number => {
  if (level === undefined) return fallback
  if (!Number.isInteger(level) || level < min || level > max) {
    return fail("level", `must be an integer from ${min} to ${max} for this codec, got ${String(level)}`)
  }
  return level
}

/** Validates the options (throwing, naming the option) and builds the compressor. */
export const resolve = (options: Options | undefined): Resolved | undefined => {
  if (options === undefined) return undefined
  const codec = options.codec ?? "brotli"
  if (codec !== "brotli" && codec !== "gzip" && codec !== "zstd") {
    return fail("codec", `must be "brotli", "gzip" or "zstd", got ${String(codec)}`)
  }
  const minBytes = options.minBytes ?? 1024
  if (!Number.isInteger(minBytes) || minBytes < 0) {
    return fail("minBytes", `must be a non-negative integer, got ${String(minBytes)}`)
  }
  let compress: (input: Buffer) => Buffer
  if (codec === "brotli") {
    // Quality 4 by default: about gzip's speed with a better ratio; 11 (zlib's
    // default) costs tens of milliseconds on a 100 KB value.
    const quality = levelIn(options.level, 0, 11, 4)
    compress = (input) =>
      zlib.brotliCompressSync(input, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: quality,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: input.length,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT
        }
      })
  } else if (codec === "gzip") {
    const level = levelIn(options.level, 1, 9, 6)
    compress = (input) => zlib.gzipSync(input, { level })
  } else {
    if (!hasZstd) {
      return fail("codec", `is "zstd", but Node ${process.version} has no zstd in node:zlib (22.15 and 23.8 on have)`)
    }
    const level = levelIn(options.level, 1, 19, 3)
    const param = z.constants.ZSTD_c_compressionLevel
    compress = (input) => z.zstdCompressSync!(input, param === undefined ? {} : { params: { [param]: level } })
  }
  return { codec, tag: tags[codec], minBytes, compress }
}

/**
 * Decompresses `body` written with codec `tag`, to at most `maxBytes`
 * bytes; throws on anything else (unknown codec, corrupt bytes, too large,
 * zstd on a Node without it): the caller reads that as a corrupt entry.
 */
export const decompress = (tag: unknown, body: Buffer, maxBytes: number): Buffer => {
  const limit = { maxOutputLength: Math.max(1, Math.min(maxBytes, 2 ** 31 - 1)) }
  switch (tag) {
    case "br":
      return zlib.brotliDecompressSync(body, limit)
    case "gz":
      return zlib.gunzipSync(body, limit)
    case "zs":
      if (!hasZstd) throw new Error(`zstd-compressed, and Node ${process.version} has no zstd`)
      return z.zstdDecompressSync!(body, limit)
    default:
      throw new Error(`unknown compression ${JSON.stringify(tag) ?? "(missing)"}`)
  }
}
