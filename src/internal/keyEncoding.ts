/**
 * Injective key encoding.
 *
 * A store key is `<keyspace>:<key>`. Keyspace names are validated (no `:`), so
 * the first `:` always ends the keyspace. Inside the key:
 *
 * - template parameter values are escaped so that they contain none of
 *   `% : { } * ? [ ] \ #`, no control characters and no lone surrogates; the
 *   template's own literal text may not contain those characters either
 *   (except `:`), and every two adjacent placeholders are separated by a
 *   literal that contains `:`. So the first `:` after a value ends it, and a
 *   key parses back into its values one way only;
 * - key-function output is escaped as one part (`:` allowed there);
 * - escaping is percent-style: `%XX` for an ASCII byte, `%uXXXX` for a lone
 *   surrogate (ill-formed UTF-16, which would collide in UTF-8). `%` itself is
 *   escaped, so escaping is injective;
 * - a key longer than `maxKeyBytes` (UTF-8) becomes
 *   `<readable prefix>#<sha256 hex of the whole key>`. Unhashed keys never
 *   contain `#`, so a hashed key never equals an unhashed one.
 *
 * @internal
 */
import { createHash } from "node:crypto"

// Characters escaped in template parameter values. Glob metacharacters keep
// Redis MATCH patterns exact; braces keep values out of cluster hash tags.
const valueNeedsEscape = /[%:{}*?[\]\\#\u0000-\u001f\u007f]/
const partNeedsEscape = /[%{}*?[\]\\#\u0000-\u001f\u007f]/
const valueEscapes =
  /[%:{}*?[\]\\#\u0000-\u001f\u007f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
const partEscapes =
  /[%{}*?[\]\\#\u0000-\u001f\u007f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

const escapeChar = (c: string): string => {
  const code = c.charCodeAt(0)
  return code < 0x100
    ? `%${code.toString(16).toUpperCase().padStart(2, "0")}`
    : `%u${code.toString(16).toUpperCase().padStart(4, "0")}`
}

/**
 * Escapes a template parameter value (`:` included).
 * Fast path: most values (ids) need no escaping and are returned as they are.
 */
export const escapeValue = (s: string): string =>
  valueNeedsEscape.test(s) || !s.isWellFormed() ? s.replace(valueEscapes, escapeChar) : s

/** Escapes a whole key, tag or prefix (`:` allowed). */
export const escapePart = (s: string): string =>
  partNeedsEscape.test(s) || !s.isWellFormed() ? s.replace(partEscapes, escapeChar) : s

/** Characters a template's literal text may contain. */
const literalText = /^[A-Za-z0-9_.\-:/@=+,;!~$&'()]*$/
const placeholder = /\{([^{}]*)\}/g
const paramName = /^[A-Za-z_][A-Za-z0-9_]*$/
const paramKind = /^(?:string|number)$/

/** What a placeholder accepts: `{id}` a string or a number, `{id:number}`, `{id:string}`. */
export type ParamKind = "any" | "number" | "string"

/** A keyspace name: what may stand before the first `:` of a store key. */
export const keyspaceName = /^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,99}$/

/** The first segment of a keyspace's store keys: its name, with `@<version>` from version 2 on. */
export const versionedNamespace = (name: string, version: number): string =>
  version === 1 ? name : `${name}@${version}`

/** A parsed key template: literal parts around named placeholders. */
export interface ParsedTemplate {
  readonly literals: ReadonlyArray<string>
  readonly params: ReadonlyArray<string>
  /** The declared kind of each placeholder, aligned with `params`. */
  readonly kinds: ReadonlyArray<ParamKind>
}

/**
 * Parses `"user:{id}:posts:{page}"`. Returns an error message naming what is
 * wrong, or the parsed template.
 */
export const parseTemplate = (template: string): ParsedTemplate | string => {
  const literals: Array<string> = []
  const params: Array<string> = []
  const kinds: Array<ParamKind> = []
  let last = 0
  for (const match of template.matchAll(placeholder)) {
    literals.push(template.slice(last, match.index))
    const spec = match[1] ?? ""
    const colon = spec.indexOf(":")
    const name = colon < 0 ? spec : spec.slice(0, colon)
    const kind = colon < 0 ? "any" : spec.slice(colon + 1)
    if (kind !== "any" && !paramKind.test(kind)) {
      return `placeholder {${spec}} declares the type ${JSON.stringify(kind)}; use {${name}}, {${name}:number} or {${name}:string}`
    }
    kinds.push(kind as ParamKind)
    if (!paramName.test(name)) {
      return `placeholder {${name}} is not a valid parameter name (letters, digits and _, not starting with a digit)`
    }
    if (params.includes(name)) return `placeholder {${name}} appears twice`
    params.push(name)
    last = match.index + match[0].length
  }
  literals.push(template.slice(last))
  for (const literal of literals) {
    if (!literalText.test(literal)) {
      return `literal text ${JSON.stringify(literal)} may only contain letters, digits and _.-:/@=+,;!~$&'() (no braces, glob characters, #, % or whitespace)`
    }
  }
  for (let i = 1; i < params.length; i++) {
    if (!(literals[i] ?? "").includes(":")) {
      return `placeholders {${params[i - 1]}} and {${params[i]}} must be separated by text containing ":" so that keys stay unambiguous`
    }
  }
  return { literals, params, kinds }
}

/**
 * Builds the function that renders a parsed template. Throws a message for a
 * missing or non-scalar parameter (the caller turns it into `CacheKeyError`).
 */
export const renderTemplate = (parsed: ParsedTemplate): ((params: Record<string, unknown>) => string) => {
  const { literals, params, kinds } = parsed
  const typed = kinds.some((k) => k !== "any")
  const describe = (v: unknown) => (v === null ? "null" : typeof v === "number" ? `the number ${v}` : typeof v)
  const untyped = (params_: Record<string, unknown>, name: string): string => {
    const v = params_[name]
    if (typeof v === "string") return escapeValue(v)
    if (typeof v === "number" || typeof v === "bigint") return String(v)
    throw new Error(`parameter ${name} must be a string or a number, got ${describe(v)}`)
  }
  // Declared kinds are checked where they are declared: `{id:number}` takes
  // only finite numbers (not "7", NaN or Infinity), `{slug:string}` only strings.
  const kindOf = new Map(params.map((p, i) => [p, kinds[i]!] as const))
  const value = !typed
    ? untyped
    : (params_: Record<string, unknown>, name: string): string => {
        const kind = kindOf.get(name)
        if (kind === "any") return untyped(params_, name)
        const v = params_[name]
        if (kind === "number") {
          if (typeof v === "number" && Number.isFinite(v)) return String(v)
          throw new Error(
            `parameter ${name} is declared {${name}:number} and must be a finite number, got ${
              typeof v === "string" ? `the string ${JSON.stringify(v.slice(0, 40))}` : describe(v)
            }`
          )
        }
        if (typeof v === "string") return escapeValue(v)
        throw new Error(`parameter ${name} is declared {${name}:string} and must be a string, got ${describe(v)}`)
      }
  // Specialised for the common shapes: a hit computes its key on every call.
  if (params.length === 0) {
    const key = literals[0] ?? ""
    return () => key
  }
  if (params.length === 1) {
    const [a = "", b = ""] = literals
    const p = params[0]!
    return (ps) => a + value(ps, p) + b
  }
  return (ps) => {
    let out = literals[0] ?? ""
    for (let i = 0; i < params.length; i++) out += value(ps, params[i]!) + (literals[i + 1] ?? "")
    return out
  }
}

/** UTF-8 byte length of a well-formed string. */
export const utf8Length = (s: string): number => Buffer.byteLength(s, "utf8")

/**
 * Hashes keys over `maxKeyBytes`: `<prefix>#<sha256 hex>`, where the prefix is
 * the longest start of the key that keeps the result within `maxKeyBytes`.
 */
export const limitKey = (key: string, maxKeyBytes: number): string => {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: skip the byte count for
  // short keys (the usual case).
  if (key.length * 3 <= maxKeyBytes || utf8Length(key) <= maxKeyBytes) return key
  const digest = createHash("sha256").update(key, "utf8").digest("hex")
  const budget = Math.max(0, maxKeyBytes - digest.length - 1)
  let prefix = ""
  let bytes = 0
  for (const ch of key) {
    const n = utf8Length(ch)
    if (bytes + n > budget) break
    prefix += ch
    bytes += n
  }
  return `${prefix}#${digest}`
}

/**
 * A flat copy of a string (no rope): its hash is computed once, and a rope
 * used as a Map key would keep its wrapper alive (32 bytes).
 */
export const flatten = (s: string): string => JSON.parse(JSON.stringify(s)) as string
