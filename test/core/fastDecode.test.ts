/**
 * The decode fast path (src/internal/fastDecode.ts), checked as properties
 * against effect's own JSON decode over generated schemas of the subset it
 * compiles (structs, records, arrays, tuples, unions of strings, numbers,
 * booleans, literals and null, with checks) and generated inputs, valid and
 * not:
 *
 * - sound: whatever the validator accepts, the full decode accepts, and
 *   decodes to the same value (so answering it as is changes nothing);
 * - complete on the subset: every valid value whose decode is itself is
 *   accepted (the fast path is taken);
 * - a keyspace decodes exactly as the full decode does;
 * - schemas outside the subset (a class, a date, a transformation, a
 *   recursive one) are not compiled.
 *
 * Measured once on this machine (the bench's 1 KB user struct, 200,000
 * decodes): JSON.parse 1.86 us; JSON.parse + effect's decode 3.11 us (1.67x
 * JSON.parse alone); JSON.parse + the keyspace's decode with the fast path
 * 2.18 us (1.17x).
 */
import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import * as fc from "fast-check"
import { compile } from "../../src/internal/fastDecode.ts"
import * as Keyspace from "../../src/Keyspace.ts"

interface Shape {
  readonly schema: Schema.Top
  readonly gen: fc.Arbitrary<unknown>
  /** With a union: the fast path may leave a value it could take to the full decode. */
  readonly union?: boolean | undefined
}

const safeKey = fc.string({ maxLength: 6 }).filter((k) => k !== "__proto__")

const leaves: ReadonlyArray<Shape> = [
  { schema: Schema.String, gen: fc.string({ maxLength: 8 }) },
  { schema: Schema.Number, gen: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { schema: Schema.Finite, gen: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { schema: Schema.Number.check(Schema.isInt()), gen: fc.integer() },
  { schema: Schema.Boolean, gen: fc.boolean() },
  { schema: Schema.Null, gen: fc.constant(null) },
  { schema: Schema.Literal("a"), gen: fc.constant("a") },
  { schema: Schema.Literals(["x", "y", 1]), gen: fc.constantFrom("x", "y", 1) },
  { schema: Schema.String.check(Schema.isMinLength(2)), gen: fc.string({ minLength: 2, maxLength: 8 }) }
]

const shape = (depth: number): fc.Arbitrary<Shape> => {
  const leaf = fc.constantFrom(...leaves)
  if (depth === 0) return leaf
  const sub = shape(depth - 1)
  return fc.oneof(
    leaf,
    sub.map((s) => ({ schema: Schema.Array(s.schema), gen: fc.array(s.gen, { maxLength: 4 }), union: s.union })),
    fc.tuple(sub, sub).map(([a, b]) => ({
      schema: Schema.Struct({ a: a.schema, b: Schema.optionalKey(b.schema) }),
      gen: fc.record({ a: a.gen, b: b.gen }, { requiredKeys: ["a"] }),
      union: a.union === true || b.union === true
    })),
    sub.map((s) => ({
      schema: Schema.Struct({ o: Schema.optional(s.schema) }),
      gen: fc.record({ o: s.gen }, { requiredKeys: [] }),
      // optional() is a union with undefined.
      union: true
    })),
    fc.tuple(sub, sub).map(([a, b]) => ({
      schema: Schema.Union([a.schema, b.schema]),
      gen: fc.oneof(a.gen, b.gen),
      union: true
    })),
    fc.tuple(sub, sub).map(([a, b]) => ({
      schema: Schema.Tuple([a.schema, b.schema]),
      gen: fc.tuple(a.gen, b.gen),
      union: a.union === true || b.union === true
    })),
    sub.map((s) => ({
      schema: Schema.Record(Schema.String, s.schema),
      gen: fc.dictionary(safeKey, s.gen, { maxKeys: 3 }),
      union: s.union
    })),
    sub.map((s) => ({ schema: Schema.NullOr(s.schema), gen: fc.oneof(fc.constant(null), s.gen), union: true }))
  )
}

/** A value as it comes out of a remote store: through JSON. */
const viaJson = (u: unknown): unknown => JSON.parse(JSON.stringify(u))

const fullDecode = (schema: Schema.Top) =>
  Schema.decodeUnknownResult(Schema.toCodecJson(schema as Schema.Codec<unknown>))

/** Inputs for a shape: valid values, arbitrary JSON, and valid values with one extra key. */
const inputs = (s: Shape) =>
  fc.oneof(
    s.gen.map(viaJson),
    fc.jsonValue({ maxDepth: 3 }),
    s.gen.map((v) =>
      typeof v === "object" && v !== null && !Array.isArray(v) ? { ...(viaJson(v) as object), extra: 1 } : viaJson(v)
    )
  )

describe("fastDecode", () => {
  it("property: sound: an accepted input is accepted by the full decode and decodes to itself", () => {
    fc.assert(
      fc.property(
        shape(3).chain((s) => fc.tuple(fc.constant(s), fc.array(inputs(s), { minLength: 1, maxLength: 5 }))),
        ([s, us]) => {
          const fast = compile(s.schema.ast)
          assert.isDefined(fast, `compiled: ${s.schema.ast}`)
          const decode = fullDecode(s.schema)
          for (const u of us) {
            if (!fast!(u)) continue
            const full = decode(u)
            assert.isTrue(Result.isSuccess(full), `full decode accepts ${JSON.stringify(u)} for ${s.schema.ast}`)
            assert.deepStrictEqual(Result.getOrThrow(full), u)
          }
        }
      ),
      { numRuns: 1_500 }
    )
  })

  it("property: complete on the subset: without unions every valid value takes the fast path; with them, most do", () => {
    let taken = 0
    let unionValues = 0
    fc.assert(
      fc.property(
        shape(3).chain((s) => fc.tuple(fc.constant(s), s.gen)),
        ([s, v]) => {
          const u = viaJson(v)
          const fast = compile(s.schema.ast)!(u)
          if (s.union !== true) assert.isTrue(fast, `${JSON.stringify(u)} for ${s.schema.ast}`)
          else {
            // A union takes a value when no earlier member could be the one
            // the decode picks (a conservative test): never a wrong one.
            unionValues++
            if (fast) taken++
          }
        }
      ),
      { numRuns: 1_500 }
    )
    assert.isAbove(taken, unionValues / 2, `${taken} of ${unionValues} values with unions took the fast path`)
  })

  it("property: a keyspace decodes exactly as the full decode", () => {
    fc.assert(
      fc.property(
        shape(2).chain((s) => fc.tuple(fc.constant(s), inputs(s))),
        ([s, u]) => {
          const ks = Keyspace.make({
            name: "fd",
            key: "{id}",
            value: s.schema as Schema.Codec<unknown>,
            ttl: "1 minute"
          })
          const mine = ks.decode(u, "fd:1")
          const full = fullDecode(s.schema)(u)
          assert.strictEqual(Result.isSuccess(mine), Result.isSuccess(full))
          if (Result.isSuccess(mine)) assert.deepStrictEqual(mine.success, Result.getOrThrow(full))
        }
      ),
      { numRuns: 1_000 }
    )
  })

  it("schemas outside the subset are not compiled (the full decode runs)", () => {
    class Person extends Schema.Class<Person>("Person")({ name: Schema.String }) {}
    interface Tree {
      readonly children: ReadonlyArray<Tree>
    }
    const Tree: Schema.Codec<Tree> = Schema.Struct({
      children: Schema.Array(Schema.suspend((): Schema.Codec<Tree> => Tree))
    })
    for (const schema of [
      Person,
      Schema.Date,
      Schema.Struct({ at: Schema.Date }),
      Schema.BigInt,
      Schema.NumberFromString,
      Schema.Struct({ n: Schema.NumberFromString }),
      Schema.Array(Schema.Struct({ p: Person })),
      Tree
    ] as ReadonlyArray<Schema.Top>) {
      assert.isUndefined(compile(schema.ast), String(schema.ast))
    }
  })

  it("refuses what only the full decode can read: NaN sent as a string, an excess key", () => {
    const fast = compile(Schema.Struct({ n: Schema.Number }).ast)!
    assert.isFalse(fast({ n: "NaN" }))
    assert.isFalse(fast({ n: 1, extra: true }))
    assert.isTrue(fast({ n: 1 }))
    const ks = Keyspace.make({ name: "nan", key: "{id}", value: Schema.Struct({ n: Schema.Number }), ttl: "1 minute" })
    const decoded = ks.decode({ n: "NaN" }, "nan:1")
    assert.isTrue(Result.isSuccess(decoded))
    assert.isTrue(Number.isNaN((Result.getOrThrow(decoded) as { n: number }).n))
    assert.deepStrictEqual(Result.getOrThrow(ks.decode({ n: 1, extra: true }, "nan:1")), { n: 1 })
  })
})
