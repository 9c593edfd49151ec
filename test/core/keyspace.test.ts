import { assert, describe, it } from "@effect/vitest"
import { Effect, Result, Schema } from "effect"
import * as fc from "fast-check"
import { escapePart, escapeValue, limitKey, utf8Length } from "../../src/internal/keyEncoding.ts"
import * as Keyspace from "../../src/Keyspace.ts"

class User extends Schema.Class<User>("User")({
  id: Schema.Number,
  name: Schema.String,
  joined: Schema.Date,
  roles: Schema.Array(Schema.Literals(["admin", "member"]))
}) {}

// Strings over the whole UTF-16 range, lone surrogates included, plus the
// characters the encoding must neutralise.
const nasty = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.string({
    unit: fc.constantFrom(":", "%", "{", "}", "*", "?", "[", "]", "\\", "#", "a", "3", "\uD800", "\uDC00", "%3A")
  })
)

describe("Keyspace.make", () => {
  it("builds keys from a template", () => {
    const Posts = Keyspace.make({ name: "posts", key: "user:{id}:posts:{page}", value: Schema.String, ttl: "1 minute" })
    assert.strictEqual(Posts.keyUnsafe({ id: 7, page: "2" }), "posts:user:7:posts:2")
    assert.strictEqual(Posts.ttl, 60_000)
    assert.strictEqual(Posts.staleFor, 0)
  })

  it("builds keys from a function (':' kept, globs escaped)", () => {
    const Search = Keyspace.make({
      name: "search",
      key: (p: { readonly q: string; readonly page: number }) => `${p.q}:${p.page}`,
      value: Schema.Array(Schema.String),
      ttl: 1000
    })
    assert.strictEqual(Search.keyUnsafe({ q: "cats*", page: 1 }), "search:cats%2A:1")
  })

  it("escapes parameter values: globs, hash tags, separators and lone surrogates", () => {
    const K = Keyspace.make({ name: "k", key: "a:{x}:b:{y}", value: Schema.String, ttl: 1000 })
    assert.strictEqual(K.keyUnsafe({ x: "1:2", y: "{tag}*" }), "k:a:1%3A2:b:%7Btag%7D%2A")
    assert.strictEqual(K.keyUnsafe({ x: "\uD800", y: "%" }), "k:a:%uD800:b:%25")
    assert.strictEqual(K.keyUnsafe({ x: "😀", y: "é" }), "k:a:😀:b:é", "well-formed non-ASCII stays readable")
  })

  it('treats 1 and "1" as the same entry', () => {
    const K = Keyspace.make({ name: "k", key: "{id}", value: Schema.String, ttl: 1000 })
    assert.strictEqual(K.keyUnsafe({ id: 1 }), K.keyUnsafe({ id: "1" }))
  })

  it("rejects parameters that cannot form a key with CacheKeyError", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const K = Keyspace.make({ name: "k", key: "{id}", value: Schema.String, ttl: 1000 })
        const error = yield* Effect.flip(Keyspace.key(K, {} as never))
        assert.strictEqual(error._tag, "CacheKeyError")
        assert.match(error.message, /parameter id must be a string or a number/)
        const Fn = Keyspace.make({
          name: "f",
          key: (_: { x: number }) => 42 as unknown as string,
          value: Schema.String,
          ttl: 1
        })
        const error2 = yield* Effect.flip(Keyspace.key(Fn, { x: 1 }))
        assert.match(error2.message, /not a string/)
      })
    ))

  const bad: Array<[string, () => unknown, RegExp]> = [
    ["an empty name", () => Keyspace.make({ name: "", key: "{id}", value: Schema.String, ttl: 1 }), /option "name"/],
    [
      "a name with ':'",
      () => Keyspace.make({ name: "a:b", key: "{id}", value: Schema.String, ttl: 1 }),
      /option "name"/
    ],
    [
      "a name with a glob",
      () => Keyspace.make({ name: "a*", key: "{id}", value: Schema.String, ttl: 1 }),
      /option "name"/
    ],
    [
      "a zero ttl",
      () => Keyspace.make({ name: "a", key: "{id}", value: Schema.String, ttl: 0 }),
      /option "ttl" must be a finite duration above zero/
    ],
    [
      "an infinite ttl",
      () => Keyspace.make({ name: "a", key: "{id}", value: Schema.String, ttl: "Infinity" }),
      /option "ttl"/
    ],
    [
      "a bad ttl string",
      () => Keyspace.make({ name: "a", key: "{id}", value: Schema.String, ttl: "soon" as never }),
      /option "ttl" is not a valid duration/
    ],
    [
      "a negative staleFor",
      () => Keyspace.make({ name: "a", key: "{id}", value: Schema.String, ttl: 1, staleFor: -5 }),
      /option "staleFor"/
    ],
    [
      "adjacent placeholders",
      // @ts-expect-error: a compile error too (Keyspace.TemplateError); checked at runtime for untyped callers
      () => Keyspace.make({ name: "a", key: "{x}{y}", value: Schema.String, ttl: 1 }),
      /must be separated by text containing ":"/
    ],
    [
      "placeholders separated without ':'",
      // @ts-expect-error: a compile error too (Keyspace.TemplateError); checked at runtime for untyped callers
      () => Keyspace.make({ name: "a", key: "{x}-{y}", value: Schema.String, ttl: 1 }),
      /separated/
    ],
    [
      "a bad placeholder name",
      () => Keyspace.make({ name: "a", key: "{1x}", value: Schema.String, ttl: 1 }),
      /placeholder \{1x\}/
    ],
    [
      "a repeated placeholder",
      () => Keyspace.make({ name: "a", key: "{x}:{x}", value: Schema.String, ttl: 1 }),
      /appears twice/
    ],
    [
      "glob characters in the template",
      () => Keyspace.make({ name: "a", key: "u*:{x}", value: Schema.String, ttl: 1 }),
      /literal text/
    ],
    [
      "a value that is not a Schema",
      () => Keyspace.make({ name: "a", key: "{x}", value: "string" as never, ttl: 1 }),
      /option "value" must be a Schema/
    ],
    [
      "a small maxKeyBytes",
      () => Keyspace.make({ name: "a", key: "{x}", value: Schema.String, ttl: 1, maxKeyBytes: 10 }),
      /option "maxKeyBytes"/
    ],
    [
      "a zero negative ttl",
      () =>
        Keyspace.make({
          name: "a",
          key: "{x}",
          value: Schema.String,
          ttl: 1,
          negative: { ttl: 0, error: Schema.String }
        }),
      /option "negative.ttl"/
    ]
  ]
  for (const [what, build, message] of bad) {
    it(`fails at construction for ${what}, naming the option`, () => {
      assert.throws(build, message)
    })
  }

  it("names the keyspace in construction errors", () => {
    assert.throws(
      () => Keyspace.make({ name: "orders", key: "{id}", value: Schema.String, ttl: -1 }),
      /Keyspace "orders"/
    )
  })
})

describe("key encoding properties", () => {
  it("escapeValue is injective and its output has no separators, globs or lone surrogates", () => {
    fc.assert(
      fc.property(nasty, nasty, (a, b) => {
        const ea = escapeValue(a)
        assert.isTrue(ea.isWellFormed())
        assert.notMatch(ea, /[:{}*?[\]\\#]/)
        if (a !== b) assert.notStrictEqual(ea, escapeValue(b))
      }),
      { numRuns: 3_000 }
    )
  })

  it("escapePart is injective (':' allowed)", () => {
    fc.assert(
      fc.property(nasty, nasty, (a, b) => {
        if (a !== b) assert.notStrictEqual(escapePart(a), escapePart(b))
        assert.isTrue(escapePart(a).isWellFormed())
      }),
      { numRuns: 3_000 }
    )
  })

  it("template keys never collide across parameter sets or keyspaces", () => {
    const A = Keyspace.make({ name: "a", key: "{x}:{y}", value: Schema.String, ttl: 1 })
    const AB = Keyspace.make({ name: "a.b", key: "{x}", value: Schema.String, ttl: 1 })
    fc.assert(
      fc.property(nasty, nasty, nasty, nasty, (x1, y1, x2, y2) => {
        const k1 = A.keyUnsafe({ x: x1, y: y1 })
        const k2 = A.keyUnsafe({ x: x2, y: y2 })
        if (x1 !== x2 || y1 !== y2) assert.notStrictEqual(k1, k2)
        // A different keyspace never produces a key in "a"'s namespace.
        assert.isFalse(AB.keyUnsafe({ x: x1 }).startsWith("a:"))
        assert.isTrue(k1.startsWith("a:"))
      }),
      { numRuns: 2_000 }
    )
  })

  it("long keys are hashed within maxKeyBytes, keep a readable prefix, and stay injective", () => {
    const K = Keyspace.make({ name: "long", key: "q:{q}", value: Schema.String, ttl: 1, maxKeyBytes: 200 })
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", minLength: 0, maxLength: 400 }),
        fc.string({ unit: "binary", maxLength: 400 }),
        (a, b) => {
          const ka = K.keyUnsafe({ q: a })
          const kb = K.keyUnsafe({ q: b })
          assert.isAtMost(utf8Length(ka.slice("long:".length)), 200)
          if (a !== b) assert.notStrictEqual(ka, kb)
          if (ka.includes("#")) assert.match(ka, /^long:q:[^#]*#[0-9a-f]{64}$/)
        }
      ),
      { numRuns: 1_000 }
    )
    const key = K.keyUnsafe({ q: "x".repeat(1_000) })
    assert.isTrue(key.startsWith("long:q:xxxx"))
  })

  it("limitKey leaves short keys alone and never splits a character", () => {
    assert.strictEqual(limitKey("short", 128), "short")
    const hashed = limitKey("😀".repeat(100), 128)
    assert.isTrue(hashed.isWellFormed())
    assert.isAtMost(utf8Length(hashed), 128)
  })
})

describe("values round-trip through their Schema", () => {
  const Users = Keyspace.make({ name: "user", key: "{id}", value: User, ttl: "1 minute" })
  const user = fc
    .record({
      id: fc.double({ noNaN: true }),
      name: fc.string({ unit: "binary" }),
      joined: fc.date({ noInvalidDate: true }),
      roles: fc.array(fc.constantFrom("admin" as const, "member" as const))
    })
    .map((u) => new User(u))

  it("encode then JSON then decode gives back an equal value", () => {
    fc.assert(
      fc.property(user, (u) => {
        const encoded = Users.encode(u)
        assert.isTrue(Result.isSuccess(encoded))
        const wire = JSON.parse(JSON.stringify(Result.getOrThrow(encoded)))
        const decoded = Users.decode(wire, "k")
        assert.isTrue(Result.isSuccess(decoded))
        const back = Result.getOrThrow(decoded) as User
        assert.instanceOf(back, User)
        assert.strictEqual(back.name, u.name)
        assert.strictEqual(back.joined.getTime(), u.joined.getTime())
        assert.deepStrictEqual(back.roles, u.roles)
        assert.isTrue(Object.is(back.id, u.id) || (back.id === 0 && u.id === 0))
      }),
      { numRuns: 500 }
    )
  })

  it("a value of the wrong shape fails to decode with CacheDecodeError, never throws", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (junk) => {
        const decoded = Users.decode(junk, "user:1")
        if (Result.isFailure(decoded)) {
          assert.strictEqual(decoded.failure._tag, "CacheDecodeError")
          assert.strictEqual(decoded.failure.key, "user:1")
        }
      }),
      { numRuns: 500 }
    )
  })

  it("is() checks the value against the Schema", () => {
    assert.isTrue(Users.is(new User({ id: 1, name: "a", joined: new Date(0), roles: [] })))
    assert.isFalse(Users.is({ id: "1" }))
  })
})
