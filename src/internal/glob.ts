/**
 * Key patterns for `Cachet.invalidatePattern`: a glob over the key of an
 * entry (the part after its keyspace), as rendered from the raw parameter
 * values, before escaping.
 *
 * Syntax (Redis's): `*` any run of characters (also none), `?` one
 * character, `[abc]`, `[a-z]` and `[^a-z]` one character of (or not of) a
 * set, `\` makes the next character literal (also inside `[...]`). Characters
 * are code points. A malformed pattern (an unclosed `[`, a trailing `\`, an
 * empty set, a reversed range) is refused with a message.
 *
 * Store keys are escaped (`keyEncoding.ts`), so a pattern is never handed to
 * a backend as it is: a store matches each key of the keyspace with
 * {@link compile} on the key's unescaped form; Redis narrows its SCAN with
 * {@link scanHint}, a glob over escaped keys that matches a superset. A
 * hashed key (longer than `maxKeyBytes`) keeps only a readable prefix: it
 * is matched when some key with that prefix could match (an invalidation
 * may take a few more entries, never fewer).
 *
 * @internal
 */
import { escapePart } from "./keyEncoding.ts"

type Token =
  | { readonly _tag: "Char"; readonly char: string }
  | { readonly _tag: "Any" }
  | { readonly _tag: "Star" }
  | {
      readonly _tag: "Set"
      readonly negated: boolean
      readonly ranges: ReadonlyArray<readonly [from: number, to: number]>
    }

/** A compiled pattern. */
export interface Matcher {
  /** The pattern as given. */
  readonly source: string
  /** Whether the whole of `key` (unescaped) matches. */
  readonly matches: (key: string) => boolean
  /** Whether some key starting with `prefix` (unescaped) could match. */
  readonly mayMatchPrefix: (prefix: string) => boolean
  /** The literal characters the pattern starts with (before any wildcard). */
  readonly literalPrefix: string
}

/** Parses `pattern`; a message naming what is wrong, or its tokens. */
const parse = (pattern: string): ReadonlyArray<Token> | string => {
  const chars = Array.from(pattern)
  const tokens: Array<Token> = []
  let i = 0
  while (i < chars.length) {
    const c = chars[i]!
    if (c === "\\") {
      if (i + 1 >= chars.length) return `pattern ${JSON.stringify(pattern)} ends with an unfinished escape "\\"`
      tokens.push({ _tag: "Char", char: chars[i + 1]! })
      i += 2
    } else if (c === "*") {
      // `**` is `*`: one token keeps matching linear.
      if (tokens.at(-1)?._tag !== "Star") tokens.push({ _tag: "Star" })
      i++
    } else if (c === "?") {
      tokens.push({ _tag: "Any" })
      i++
    } else if (c === "[") {
      let j = i + 1
      const negated = chars[j] === "^"
      if (negated) j++
      const ranges: Array<readonly [number, number]> = []
      let closed = false
      while (j < chars.length) {
        let d = chars[j]!
        if (d === "]") {
          closed = true
          break
        }
        if (d === "\\") {
          j++
          if (j >= chars.length) break
          d = chars[j]!
        }
        const from = d.codePointAt(0)!
        if (chars[j + 1] === "-" && j + 2 < chars.length && chars[j + 2] !== "]") {
          let e = chars[j + 2]!
          let step = 3
          if (e === "\\") {
            if (j + 3 >= chars.length) break
            e = chars[j + 3]!
            step = 4
          }
          const to = e.codePointAt(0)!
          if (to < from) return `pattern ${JSON.stringify(pattern)} has a reversed range ${d}-${e}`
          ranges.push([from, to])
          j += step
        } else {
          ranges.push([from, from])
          j++
        }
      }
      if (!closed) return `pattern ${JSON.stringify(pattern)} has a "[" without its "]"`
      if (ranges.length === 0) return `pattern ${JSON.stringify(pattern)} has an empty set "[]"`
      tokens.push({ _tag: "Set", negated, ranges })
      i = j + 1
    } else {
      tokens.push({ _tag: "Char", char: c })
      i++
    }
  }
  return tokens
}

const accepts = (token: Token, char: string): boolean => {
  switch (token._tag) {
    case "Char":
      return token.char === char
    case "Any":
      return true
    case "Set": {
      const code = char.codePointAt(0)!
      let inside = false
      for (const [from, to] of token.ranges) {
        if (code >= from && code <= to) {
          inside = true
          break
        }
      }
      return inside !== token.negated
    }
    case "Star":
      return true
  }
}

/**
 * Runs the pattern over `input` as a set of positions (an NFA): linear in
 * the input times the pattern, whatever the stars. `prefix`: accept when the
 * whole input is consumed by any position (some continuation could match).
 */
const run = (tokens: ReadonlyArray<Token>, input: string, prefix: boolean): boolean => {
  const m = tokens.length
  const closure = (states: Set<number>): Set<number> => {
    for (const s of states) if (s < m && tokens[s]!._tag === "Star") states.add(s + 1)
    return states
  }
  let states = closure(new Set([0]))
  for (const char of input) {
    const next = new Set<number>()
    for (const s of states) {
      if (s >= m) continue
      const token = tokens[s]!
      if (token._tag === "Star") next.add(s)
      else if (accepts(token, char)) next.add(s + 1)
    }
    if (next.size === 0) return false
    states = closure(next)
  }
  return prefix ? states.size > 0 : states.has(m)
}

/** Compiles a pattern; a message naming what is wrong with it, or its matcher. */
export const compile = (pattern: string): Matcher | string => {
  if (typeof pattern !== "string") return `pattern must be a string, got ${typeof pattern}`
  if (!pattern.isWellFormed()) return `pattern ${JSON.stringify(pattern)} is not well-formed UTF-16`
  const tokens = parse(pattern)
  if (typeof tokens === "string") return tokens
  let literalPrefix = ""
  for (const token of tokens) {
    if (token._tag !== "Char") break
    literalPrefix += token.char
  }
  return {
    source: pattern,
    matches: (key) => run(tokens, key, false),
    mayMatchPrefix: (prefix) => run(tokens, prefix, true),
    literalPrefix
  }
}

const escapes = /%u([0-9A-F]{4})|%([0-9A-F]{2})/g
const unfinishedEscape = /%(?:u[0-9A-F]{0,3}|[0-9A-F]?)$/

/** The raw form of an escaped key part (`keyEncoding.ts` escapes). */
const unescapeKey = (escaped: string): string =>
  escaped.indexOf("%") < 0
    ? escaped
    : escaped.replace(escapes, (_, u: string | undefined, b: string | undefined) =>
        String.fromCharCode(Number.parseInt(u ?? b!, 16))
      )

/**
 * Whether the escaped key part `escaped` (after `<keyspace>:`) is covered
 * by `matcher`: its unescaped form matches, or, for a hashed key
 * (`<readable prefix>#<sha256>`), a key with its readable prefix could.
 */
export const covers = (matcher: Matcher, escaped: string): boolean => {
  const hash = escaped.indexOf("#")
  if (hash < 0) return matcher.matches(unescapeKey(escaped))
  // The readable prefix may end inside an escape: drop the unfinished part.
  return matcher.mayMatchPrefix(unescapeKey(escaped.slice(0, hash).replace(unfinishedEscape, "")))
}

/** Escapes Redis glob characters, so that a MATCH pattern matches `s` literally. */
export const globEscape = (s: string): string => s.replace(/[*?[\]\\]/g, "\\$&")

/**
 * A Redis MATCH glob over the escaped key parts of a keyspace (after
 * `<keyspace>:`) that every key covered by `matcher` matches: the pattern's
 * literal start, escaped as stored, then `*`. It stops before the first `:`
 * (a `:` is stored as `%3A` inside a template value and as itself in the
 * template's text) and keeps within what a hashed key keeps readable.
 */
export const scanHint = (matcher: Matcher, maxKeyBytes: number): string => {
  const colon = matcher.literalPrefix.indexOf(":")
  const start = colon < 0 ? matcher.literalPrefix : matcher.literalPrefix.slice(0, colon)
  // A hashed key keeps at least (maxKeyBytes - 65) - 3 bytes readable, and
  // a code point is at most 4 bytes of it.
  const budget = Math.max(0, Math.floor((maxKeyBytes - 68) / 4))
  const escaped = Array.from(escapePart(start)).slice(0, budget).join("")
  return `${globEscape(escaped)}*`
}
