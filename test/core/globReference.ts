/**
 * The glob semantics of `Cachet.invalidatePattern`, written independently of
 * `src/internal/glob.ts` (a RegExp over the raw key), and the fast-check
 * generators the pattern properties share (memory and Redis).
 */
import { assert } from "@effect/vitest"
import { Effect, Option, Schema } from "effect"
import fc from "fast-check"
import * as Cachet from "../../src/Cachet.ts"
import * as Glob from "../../src/internal/glob.ts"
import * as Keyspace from "../../src/Keyspace.ts"

/**
 * The reference semantics, written independently of `internal/glob.ts`: the
 * glob as a JavaScript RegExp over the raw key, code point by code point.
 */
export const reference = (pattern: string): RegExp | undefined => {
  const chars = Array.from(pattern)
  let out = "^"
  const esc = (c: string) => `\\u{${c.codePointAt(0)!.toString(16)}}`
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!
    if (c === "\\") {
      if (i + 1 >= chars.length) return undefined
      out += esc(chars[++i]!)
    } else if (c === "*") out += "[^]*"
    else if (c === "?") out += "[^]"
    else if (c === "[") {
      let j = i + 1
      let set = ""
      if (chars[j] === "^") {
        set += "^"
        j++
      }
      let items = 0
      while (j < chars.length && chars[j] !== "]") {
        let d = chars[j]!
        if (d === "\\") d = chars[++j] ?? ""
        if (d === "") return undefined
        if (chars[j + 1] === "-" && j + 2 < chars.length && chars[j + 2] !== "]") {
          let e = chars[j + 2]!
          j += 3
          if (e === "\\") e = chars[j++] ?? ""
          if (e === "" || e.codePointAt(0)! < d.codePointAt(0)!) return undefined
          set += `${esc(d)}-${esc(e)}`
        } else {
          set += esc(d)
          j++
        }
        items++
      }
      if (j >= chars.length || items === 0) return undefined
      out += `[${set}]`
      i = j
    } else out += esc(c)
  }
  return new RegExp(`${out}$`, "u")
}

// Keyspace names that are prefixes of each other, and parameters full of
// glob characters, escapes, ":" and non-ASCII.
export const names = ["a", "ab", "a.b", "a-", "a_b"] as const
export const param = fc.oneof(
  fc.string({
    unit: fc.constantFrom("a", "b", "*", "?", "[", "]", "\\", ":", "%", "#", "^", "-", "é", "{", "}"),
    maxLength: 6
  }),
  fc.integer({ min: -50, max: 50 })
)
export const patternArb = fc.oneof(
  fc.string({ unit: fc.constantFrom("a", "b", "*", "?", "[", "]", "\\", ":", "%", "^", "-", "é", "1"), maxLength: 6 }),
  param.map((p) => Glob.globEscape(String(p)))
)

/** One keyspace per name, keys `{id}`. */
export const keyspacesOf = () =>
  names.map((name) => Keyspace.make({ name, key: "{id}", value: Schema.String, ttl: "1 hour" }))

/** The property's inputs: entries (keyspace index, id), the keyspace invalidated, the pattern. */
export const patternInputs = (maxEntries: number) =>
  [
    fc.array(fc.tuple(fc.integer({ min: 0, max: names.length - 1 }), param), { minLength: 1, maxLength: maxEntries }),
    fc.integer({ min: 0, max: names.length - 1 }),
    patternArb
  ] as const

/**
 * One run: store `entries`, invalidate `pattern` in `keyspaces[target]`, then
 * every entry is present unless it is of that keyspace and the reference
 * matches its id; the count is the number of distinct entries gone; a
 * pattern the reference refuses fails.
 */
export const patternRun = (
  keyspaces: ReturnType<typeof keyspacesOf>,
  entries: ReadonlyArray<readonly [number, string | number]>,
  target: number,
  pattern: string
): Effect.Effect<void, never, Cachet.Cachet> =>
  Effect.gen(function* () {
    const regex = reference(pattern)
    for (const [k, id] of entries) yield* Cachet.set(keyspaces[k]!, { id }, "v")
    const result = yield* Effect.result(Cachet.invalidatePattern(keyspaces[target]!, pattern))
    assert.strictEqual(result._tag === "Failure", regex === undefined, `is ${JSON.stringify(pattern)} malformed`)
    const gone = new Set<string>()
    for (const [k, id] of entries) {
      const matched = k === target && regex !== undefined && regex.test(String(id))
      if (matched) gone.add(String(id))
      const there = Option.isSome(yield* Cachet.peek(keyspaces[k]!, { id }))
      assert.strictEqual(
        there,
        !matched,
        `${names[k]}:${String(id)} after ${JSON.stringify(pattern)} on ${names[target]}`
      )
    }
    if (result._tag === "Success") assert.strictEqual(result.success, gone.size)
  }).pipe(Effect.orDie)
