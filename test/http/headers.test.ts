import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import {
  maxDeltaSeconds,
  noneMatch,
  parseCacheControl,
  parseEntityTags,
  parseVary
} from "../../src/http/internal/headers.ts"

describe("Cache-Control parsing", () => {
  it("reads the directives RFC 9111 defines, case-insensitively, tokens or quoted", () => {
    const cc = parseCacheControl('Public, MAX-AGE=60, s-maxage="120", Stale-While-Revalidate=30, stale-if-error=600')
    assert.isTrue(cc.public)
    assert.strictEqual(cc.maxAge, 60)
    assert.strictEqual(cc.sMaxage, 120)
    assert.strictEqual(cc.staleWhileRevalidate, 30)
    assert.strictEqual(cc.staleIfError, 600)
    assert.isFalse(cc.private)
    assert.isFalse(cc.noStore)
  })

  it("ignores unknown directives, even with quoted commas and directive names inside", () => {
    const cc = parseCacheControl('x-unknown="no-store, private, max-age=1", max-age=60, foo=bar, =oops, ,,')
    assert.isFalse(cc.noStore)
    assert.isFalse(cc.private)
    assert.strictEqual(cc.maxAge, 60)
  })

  it("qualified private and no-cache still count as private and no-cache", () => {
    assert.isTrue(parseCacheControl('private="set-cookie, x-user"').private)
    assert.isTrue(parseCacheControl('no-cache="set-cookie"').noCache)
  })

  it("duplicates: the same value is kept; different values are invalid (stale)", () => {
    assert.strictEqual(parseCacheControl("max-age=60, max-age=60").maxAge, 60)
    assert.strictEqual(parseCacheControl("max-age=60, max-age=120").maxAge, -1)
    assert.strictEqual(parseCacheControl("max-age=60").maxAge, 60)
  })

  it("invalid numbers read as -1; huge ones are capped at 2^31", () => {
    assert.strictEqual(parseCacheControl("max-age").maxAge, -1)
    assert.strictEqual(parseCacheControl("max-age=").maxAge, -1)
    assert.strictEqual(parseCacheControl("max-age=-5").maxAge, -1)
    assert.strictEqual(parseCacheControl("max-age=1e3").maxAge, -1)
    assert.strictEqual(parseCacheControl(`max-age=${"9".repeat(400)}`).maxAge, maxDeltaSeconds)
  })

  it("unterminated quotes and stray characters end without error", () => {
    assert.strictEqual(parseCacheControl('max-age=5, x="unterminated, no-store').noStore, false)
    assert.strictEqual(parseCacheControl('max-age=5, x="unterminated, no-store').maxAge, 5)
    assert.strictEqual(parseCacheControl('max-age=5"junk", public').public, true)
    assert.strictEqual(parseCacheControl('"quoted-name", public').public, true)
  })

  it("property: a list of known directives among unknown ones parses to the model", () => {
    const known = fc.constantFrom("no-store", "no-cache", "private", "public", "must-revalidate")
    const numeric = fc.record({
      name: fc.constantFrom("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"),
      value: fc.nat({ max: 100_000 }),
      quoted: fc.boolean()
    })
    const unknown = fc.record({
      name: fc.stringMatching(/^x-[a-z]{1,8}$/),
      value: fc.string({ maxLength: 20 }).map((s) => `"${s.replace(/["\\]/g, "")}"`)
    })
    const item = fc.oneof(
      known.map((k) => ({ kind: "flag" as const, text: k.toUpperCase(), name: k })),
      numeric.map((n) => ({
        kind: "num" as const,
        text: `${n.name}=${n.quoted ? `"${n.value}"` : n.value}`,
        name: n.name,
        value: n.value
      })),
      unknown.map((u) => ({ kind: "unknown" as const, text: `${u.name}=${u.value}`, name: u.name }))
    )
    fc.assert(
      fc.property(fc.array(item, { maxLength: 12 }), fc.constantFrom(",", ", ", " ,  "), (items, sep) => {
        const cc = parseCacheControl(items.map((i) => i.text).join(sep))
        const flags = new Set(items.filter((i) => i.kind === "flag").map((i) => i.name))
        assert.strictEqual(cc.noStore, flags.has("no-store"))
        assert.strictEqual(cc.noCache, flags.has("no-cache"))
        assert.strictEqual(cc.private, flags.has("private"))
        assert.strictEqual(cc.public, flags.has("public"))
        assert.strictEqual(cc.mustRevalidate, flags.has("must-revalidate"))
        const expect = (name: string) => {
          const values = items
            .filter((i) => i.kind === "num" && i.name === name)
            .map((i) => (i as { value: number }).value)
          if (values.length === 0) return undefined
          return values.every((v) => v === values[0]) ? values[0] : -1
        }
        assert.strictEqual(cc.maxAge, expect("max-age"))
        assert.strictEqual(cc.sMaxage, expect("s-maxage"))
        assert.strictEqual(cc.staleWhileRevalidate, expect("stale-while-revalidate"))
        assert.strictEqual(cc.staleIfError, expect("stale-if-error"))
      }),
      { numRuns: 500 }
    )
  })
})

describe("Vary and entity tags", () => {
  it("Vary: names lowercased, deduplicated, sorted; * anywhere wins", () => {
    assert.deepStrictEqual(parseVary("Accept-Encoding, origin,ACCEPT-encoding , ,").names, [
      "accept-encoding",
      "origin"
    ])
    assert.isTrue(parseVary("accept-encoding, *").star)
    assert.isFalse(parseVary(undefined).star)
  })

  it("If-None-Match: weak comparison, lists, *", () => {
    assert.isTrue(noneMatch('W/"a", "b"', '"b"'))
    assert.isTrue(noneMatch('"a"', 'W/"a"'))
    assert.isFalse(noneMatch('"a"', '"b"'))
    assert.isTrue(noneMatch("*", '"b"'))
    assert.isFalse(noneMatch("*", undefined))
    assert.deepStrictEqual(parseEntityTags('junk, "x", W/"y", "unterminated').tags, ["x", "y"])
  })
})

// ---------------------------------------------------------------------------
// Fuzz: hostile values parse in linear time
// ---------------------------------------------------------------------------

/** Best-of-n time of `f` in ms. */
const time = (f: () => void, n = 7): number => {
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < n; i++) {
    const start = performance.now()
    f()
    best = Math.min(best, performance.now() - start)
  }
  return best
}

const shapes: Record<string, (size: number) => string> = {
  "duplicated directives": (n) => "max-age=60, ".repeat(Math.ceil(n / 12)).slice(0, n),
  "unknown directives": (n) => "x-a=b, y, ".repeat(Math.ceil(n / 10)).slice(0, n),
  "one huge unknown token": (n) => `public, ${"x".repeat(n)}`,
  "one huge quoted value": (n) => `x="${"a, max-age=1, ".repeat(Math.ceil(n / 15)).slice(0, n)}", max-age=5`,
  "unterminated quote": (n) => `x="${"a".repeat(n)}`,
  "backslashes in quotes": (n) => `x="${"\\\\".repeat(Math.ceil(n / 2)).slice(0, n)}"`,
  "quotes only": (n) => '"'.repeat(n),
  "equals only": (n) => "=".repeat(n),
  "commas and spaces": (n) => ", ".repeat(Math.ceil(n / 2)).slice(0, n),
  "huge number": (n) => `max-age=${"9".repeat(n)}`
}

describe("header fuzz: linear time", () => {
  it("Cache-Control, Vary and If-None-Match of 100 KB parse in time linear in their size", () => {
    const report: Array<string> = []
    for (const [name, shape] of Object.entries(shapes)) {
      const small = shape(10_000)
      const large = shape(100_000)
      for (const [parser, parse] of [
        ["cache-control", parseCacheControl],
        ["vary", parseVary],
        ["if-none-match", parseEntityTags]
      ] as const) {
        // Warm up, then compare a 10x larger input against the baseline.
        parse(small)
        parse(large)
        // Measured again (up to 3 times) when over the bound: a load spike
        // on a shared machine moves one measurement, a quadratic parser
        // fails every one.
        let base = 0
        let big = 0
        for (let attempt = 0; attempt < 3; attempt++) {
          base = time(() => {
            for (let i = 0; i < 10; i++) parse(small)
          })
          big = time(() => {
            for (let i = 0; i < 10; i++) parse(large)
          })
          if (big < 30 * base + 5) break
        }
        report.push(`${parser}/${name}: ${base.toFixed(2)} ms -> ${big.toFixed(2)} ms`)
        // Linear is ~10x; quadratic would be ~100x. Generous bound, plus slack
        // for timer resolution on tiny baselines.
        assert.isBelow(big, 30 * base + 5, `${parser} on ${name}: ${base} ms for 10 KB, ${big} ms for 100 KB`)
      }
    }
    console.log(report.join("\n"))
  })

  it("property: arbitrary strings never throw and give well-formed results", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        const cc = parseCacheControl(s)
        for (const v of [cc.maxAge, cc.sMaxage, cc.staleWhileRevalidate, cc.staleIfError]) {
          assert.isTrue(v === undefined || (Number.isInteger(v) && v >= -1 && v <= maxDeltaSeconds))
        }
        const vary = parseVary(s)
        assert.isTrue(vary.star ? vary.names.length === 0 : vary.names.every((n) => n === n.toLowerCase()))
        parseEntityTags(s)
      }),
      { numRuns: 2_000 }
    )
  })
})
