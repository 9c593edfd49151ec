/**
 * Header parsers for HTTP caching: `Cache-Control` (RFC 9111 §5.2), `Vary`
 * (RFC 9110 §12.5.5), entity-tag lists (RFC 9110 §8.8.3, §13.1.2) and HTTP
 * dates.
 *
 * Every parser is one left-to-right pass over its input with no regular
 * expression that can backtrack, so a hostile 100 KB header costs time
 * linear in its length. Unknown directives are ignored.
 *
 * @internal
 */
import { Headers } from "effect/http"
import * as Result from "effect/Result"

/** Largest delta-seconds value kept (RFC 9111 §1.2.2: 2^31). */
export const maxDeltaSeconds = 2147483648

/**
 * A parsed `Cache-Control` header. Numeric directives are seconds:
 * `undefined` when absent, `-1` when present but invalid (no value, not
 * digits) or given twice with different values (RFC 9111 §4.2.1 lets a
 * cache treat that as stale; we do).
 */
export interface CacheControl {
  readonly noStore: boolean
  readonly noCache: boolean
  readonly private: boolean
  readonly public: boolean
  readonly mustRevalidate: boolean
  readonly proxyRevalidate: boolean
  readonly onlyIfCached: boolean
  readonly maxAge: number | undefined
  readonly sMaxage: number | undefined
  readonly staleWhileRevalidate: number | undefined
  readonly staleIfError: number | undefined
  /** Request `min-fresh` (seconds). */
  readonly minFresh: number | undefined
  /** Request `max-stale`: seconds, or `Infinity` without a value. */
  readonly maxStale: number | undefined
}

const empty: CacheControl = {
  noStore: false,
  noCache: false,
  private: false,
  public: false,
  mustRevalidate: false,
  proxyRevalidate: false,
  onlyIfCached: false,
  maxAge: undefined,
  sMaxage: undefined,
  staleWhileRevalidate: undefined,
  staleIfError: undefined,
  minFresh: undefined,
  maxStale: undefined
}

const COMMA = 44
const SPACE = 32
const TAB = 9
const QUOTE = 34
const EQUALS = 61
const BACKSLASH = 92

const isOws = (c: number) => c === SPACE || c === TAB

/** The index just past the quoted-string starting at `i` (an opening quote), or the end. */
const skipQuoted = (s: string, i: number): number => {
  const n = s.length
  i++
  while (i < n) {
    const c = s.charCodeAt(i)
    if (c === BACKSLASH) i += 2
    else if (c === QUOTE) return i + 1
    else i++
  }
  return n
}

/** The content of the quoted-string starting at `i`, unescaped, and the index after it. */
const readQuoted = (s: string, i: number): readonly [string, number] => {
  const end = skipQuoted(s, i)
  const closed = end <= s.length && s.charCodeAt(end - 1) === QUOTE && end - 1 > i
  const inner = s.slice(i + 1, closed ? end - 1 : end)
  // Unescape quoted-pairs in one pass (no backtracking).
  if (inner.indexOf("\\") === -1) return [inner, end]
  let out = ""
  let from = 0
  for (let k = 0; k < inner.length; k++) {
    if (inner.charCodeAt(k) === BACKSLASH) {
      out += inner.slice(from, k)
      k++
      from = k
    }
  }
  return [out + inner.slice(from), end]
}

/** delta-seconds: digits only, capped at 2^31; `-1` when invalid. */
const parseDelta = (arg: string | undefined): number => {
  if (arg === undefined || arg.length === 0) return -1
  let n = 0
  for (let k = 0; k < arg.length; k++) {
    const c = arg.charCodeAt(k)
    if (c < 48 || c > 57) return -1
    if (n < maxDeltaSeconds) n = n * 10 + (c - 48)
  }
  return n > maxDeltaSeconds ? maxDeltaSeconds : n
}

/** A later occurrence of a numeric directive: the same value keeps it; another one makes it invalid. */
const merge = (previous: number | undefined, next: number): number =>
  previous === undefined ? next : previous === next ? previous : -1

/**
 * Parses a `Cache-Control` field value (or several, joined with commas).
 * Directive names are case-insensitive; arguments may be tokens or
 * quoted-strings (RFC 9111 §5.2 asks recipients to accept both forms).
 */
export const parseCacheControl = (value: string | undefined): CacheControl => {
  if (value === undefined || value.length === 0) return empty
  const out = { ...empty } as { -readonly [K in keyof CacheControl]: CacheControl[K] }
  const n = value.length
  let i = 0
  while (i < n) {
    let c = value.charCodeAt(i)
    if (c === COMMA || isOws(c)) {
      i++
      continue
    }
    const start = i
    while (i < n) {
      c = value.charCodeAt(i)
      if (c === EQUALS || c === COMMA || c === QUOTE || isOws(c)) break
      i++
    }
    const name = value.slice(start, i).toLowerCase()
    while (i < n && isOws(value.charCodeAt(i))) i++
    let arg: string | undefined
    if (i < n && value.charCodeAt(i) === EQUALS) {
      i++
      while (i < n && isOws(value.charCodeAt(i))) i++
      if (i < n && value.charCodeAt(i) === QUOTE) {
        const [quoted, end] = readQuoted(value, i)
        arg = quoted
        i = end
      } else {
        const from = i
        while (i < n) {
          c = value.charCodeAt(i)
          if (c === COMMA || c === QUOTE || isOws(c)) break
          i++
        }
        arg = value.slice(from, i)
      }
    }
    // Whatever follows up to the next comma (outside quotes) is not part of
    // this directive: skip it.
    while (i < n) {
      c = value.charCodeAt(i)
      if (c === COMMA) break
      i = c === QUOTE ? skipQuoted(value, i) : i + 1
    }
    switch (name) {
      case "no-store":
        out.noStore = true
        break
      case "no-cache":
        out.noCache = true
        break
      case "private":
        out.private = true
        break
      case "public":
        out.public = true
        break
      case "must-revalidate":
        out.mustRevalidate = true
        break
      case "proxy-revalidate":
        out.proxyRevalidate = true
        break
      case "only-if-cached":
        out.onlyIfCached = true
        break
      case "max-age":
        out.maxAge = merge(out.maxAge, parseDelta(arg))
        break
      case "s-maxage":
        out.sMaxage = merge(out.sMaxage, parseDelta(arg))
        break
      case "stale-while-revalidate":
        out.staleWhileRevalidate = merge(out.staleWhileRevalidate, parseDelta(arg))
        break
      case "stale-if-error":
        out.staleIfError = merge(out.staleIfError, parseDelta(arg))
        break
      case "min-fresh":
        out.minFresh = merge(out.minFresh, parseDelta(arg))
        break
      case "max-stale":
        out.maxStale = arg === undefined ? Number.POSITIVE_INFINITY : merge(out.maxStale, parseDelta(arg))
        break
      default:
      // Unknown directives (and extensions) are ignored (RFC 9111 §5.2.3).
    }
  }
  return out
}

/** A parsed `Vary`: `star` for `*`, else the lowercase field names, deduplicated, sorted. */
export interface Vary {
  readonly star: boolean
  readonly names: ReadonlyArray<string>
}

const noVary: Vary = { star: false, names: [] }

/** Parses a `Vary` field value (or several, joined with commas). */
export const parseVary = (value: string | undefined): Vary => {
  if (value === undefined || value.length === 0) return noVary
  const names = new Set<string>()
  const n = value.length
  let start = 0
  for (let i = 0; i <= n; i++) {
    if (i === n || value.charCodeAt(i) === COMMA) {
      let a = start
      let b = i
      while (a < b && isOws(value.charCodeAt(a))) a++
      while (b > a && isOws(value.charCodeAt(b - 1))) b--
      if (b > a) {
        const name = value.slice(a, b).toLowerCase()
        if (name === "*") return { star: true, names: [] }
        names.add(name)
      }
      start = i + 1
    }
  }
  return names.size === 0 ? noVary : { star: false, names: [...names].sort() }
}

/** A parsed `If-None-Match`: `any` for `*`, else the opaque tags (weak comparison drops `W/`). */
export interface EntityTags {
  readonly any: boolean
  readonly tags: ReadonlyArray<string>
}

/** Parses an entity-tag list; malformed members are skipped. */
export const parseEntityTags = (value: string | undefined): EntityTags => {
  if (value === undefined) return { any: false, tags: [] }
  const tags: Array<string> = []
  const n = value.length
  let i = 0
  while (i < n) {
    const c = value.charCodeAt(i)
    if (c === COMMA || isOws(c)) {
      i++
      continue
    }
    if (c === 42 /* * */) return { any: true, tags: [] }
    // Weak comparison: a `W/` prefix does not change the opaque tag.
    if ((c === 87 || c === 119) /* W w */ && value.charCodeAt(i + 1) === 47 /* / */) i += 2
    if (value.charCodeAt(i) === QUOTE) {
      const close = value.indexOf('"', i + 1)
      if (close === -1) break
      tags.push(value.slice(i + 1, close))
      i = close + 1
    } else {
      // Not an entity-tag: skip to the next comma.
      while (i < n && value.charCodeAt(i) !== COMMA) i++
    }
  }
  return { any: false, tags }
}

/** The opaque part of an entity-tag header value (`W/"x"` and `"x"` give `x`), or undefined. */
const opaqueTag = (etag: string): string | undefined => {
  let s = etag.trim()
  if (s.startsWith("W/") || s.startsWith("w/")) s = s.slice(2)
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : undefined
}

/** Whether `If-None-Match` matches `etag` (weak comparison, RFC 9110 §13.1.2). */
export const noneMatch = (ifNoneMatch: string, etag: string | undefined): boolean => {
  const parsed = parseEntityTags(ifNoneMatch)
  if (parsed.any) return etag !== undefined
  if (etag === undefined) return false
  const tag = opaqueTag(etag)
  return tag !== undefined && parsed.tags.includes(tag)
}

/** An HTTP date in epoch milliseconds, or undefined when invalid (RFC 9110 §5.6.7). */
export const parseHttpDate = (value: string | undefined): number | undefined => {
  // Real dates are under 40 characters; refuse long inputs before any regex.
  if (value === undefined || value.length > 64) return undefined
  const parsed = Headers.parseHttpDate(value)
  return Result.isSuccess(parsed) ? parsed.success.epochMilliseconds : undefined
}

/**
 * An `Age` value in seconds (RFC 9111 §5.1): the first member of a list,
 * a non-negative integer capped at 2^31 (§1.2.2); `undefined` when absent or
 * invalid (negative, not digits), which a cache ignores.
 */
export const parseAge = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const comma = value.indexOf(",")
  const first = (comma === -1 ? value : value.slice(0, comma)).trim()
  if (first.length === 0) return undefined
  let n = 0
  for (let i = 0; i < first.length; i++) {
    const c = first.charCodeAt(i)
    if (c < 48 || c > 57) return undefined
    if (n < maxDeltaSeconds) n = n * 10 + (c - 48)
  }
  return n > maxDeltaSeconds ? maxDeltaSeconds : n
}

const isLcalpha = (c: number) => c >= 97 && c <= 122
const isDigit = (c: number) => c >= 48 && c <= 57
const isTchar = (c: number) =>
  (c >= 48 && c <= 57) ||
  (c >= 65 && c <= 90) ||
  (c >= 97 && c <= 122) ||
  "!#$%&'*+-.^_`|~:/".includes(String.fromCharCode(c))

/**
 * Whether `value` is a valid, non-empty Structured Field Dictionary (RFC 8941
 * §3.2), the syntax of targeted cache-control fields (RFC 9213 §2.1): a
 * field that does not parse is ignored as a whole. One linear pass.
 */
export const isStructuredDictionary = (value: string): boolean => {
  const n = value.length
  let i = 0
  const skipSp = () => {
    while (i < n && value.charCodeAt(i) === SPACE) i++
  }
  const skipOws = () => {
    while (i < n && isOws(value.charCodeAt(i))) i++
  }
  const key = (): boolean => {
    const c = value.charCodeAt(i)
    if (!(isLcalpha(c) || c === 42)) return false
    i++
    while (i < n) {
      const d = value.charCodeAt(i)
      if (isLcalpha(d) || isDigit(d) || d === 95 || d === 45 || d === 46 || d === 42) i++
      else break
    }
    return true
  }
  const bareItem = (): boolean => {
    const c = value.charCodeAt(i)
    if (c === 45 || isDigit(c)) {
      if (c === 45) i++
      const start = i
      while (i < n && isDigit(value.charCodeAt(i))) i++
      if (i === start || i - start > 15) return false
      if (value.charCodeAt(i) === 46) {
        i++
        const frac = i
        while (i < n && isDigit(value.charCodeAt(i))) i++
        if (i === frac || i - frac > 3) return false
      }
      return true
    }
    if (c === QUOTE) {
      i++
      while (i < n) {
        const d = value.charCodeAt(i)
        if (d === BACKSLASH) {
          const e = value.charCodeAt(i + 1)
          if (e !== QUOTE && e !== BACKSLASH) return false
          i += 2
        } else if (d === QUOTE) {
          i++
          return true
        } else if (d < 0x20 || d > 0x7e) return false
        else i++
      }
      return false
    }
    if (c === 63 /* ? */) {
      const d = value.charCodeAt(i + 1)
      if (d !== 48 && d !== 49) return false
      i += 2
      return true
    }
    if (c === 58 /* : */) {
      const close = value.indexOf(":", i + 1)
      if (close === -1 || !/^[A-Za-z0-9+/=]*$/.test(value.slice(i + 1, close))) return false
      i = close + 1
      return true
    }
    if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 42) {
      i++
      while (i < n && isTchar(value.charCodeAt(i))) i++
      return true
    }
    return false
  }
  const parameters = (): boolean => {
    while (i < n && value.charCodeAt(i) === 59 /* ; */) {
      i++
      skipSp()
      if (!key()) return false
      if (value.charCodeAt(i) === EQUALS) {
        i++
        if (!bareItem()) return false
      }
    }
    return true
  }
  const innerList = (): boolean => {
    i++
    for (;;) {
      skipSp()
      if (i >= n) return false
      if (value.charCodeAt(i) === 41 /* ) */) {
        i++
        return parameters()
      }
      if (!bareItem() || !parameters()) return false
      const c = value.charCodeAt(i)
      if (c !== SPACE && c !== 41) return false
    }
  }
  skipSp()
  if (i >= n) return false
  for (;;) {
    if (!key()) return false
    if (value.charCodeAt(i) === EQUALS) {
      i++
      if (value.charCodeAt(i) === 40 /* ( */) {
        if (!innerList()) return false
      } else if (!bareItem() || !parameters()) return false
    } else if (!parameters()) return false
    skipOws()
    if (i >= n) return true
    if (value.charCodeAt(i) !== COMMA) return false
    i++
    skipOws()
    if (i >= n) return false
  }
}
