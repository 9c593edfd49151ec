import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { check, describe as explain, type Operation } from "./checker.ts"

// The checker must be right before it can judge the cache: over generated
// histories of a correct register it finds nothing, and it finds every
// stale read planted in them.

/** A history of a correct (linearizable) register: each read returns the source's version at some instant inside it. */
const correctHistory = fc
  .array(
    fc.record({
      client: fc.constantFrom("a", "b", "c"),
      key: fc.constantFrom("k1", "k2"),
      kind: fc.constantFrom("read", "read", "write"),
      start: fc.integer({ min: 0, max: 1_000 }),
      length: fc.integer({ min: 0, max: 50 }),
      at: fc.double({ min: 0, max: 1, noNaN: true })
    }),
    { maxLength: 60 }
  )
  .map((specs) => {
    // Writes take effect at their completion (a conservative register).
    const writes = specs.filter((s) => s.kind === "write").sort((x, y) => x.start + x.length - (y.start + y.length))
    const versions = new Map<string, Array<readonly [number, number]>>()
    const history: Array<Operation> = []
    const counter = new Map<string, number>()
    for (const w of writes) {
      const v = (counter.get(w.key) ?? 0) + 1
      counter.set(w.key, v)
      const done = w.start + w.length
      versions.set(w.key, [...(versions.get(w.key) ?? []), [done, v]])
      history.push({ type: "write", client: w.client, key: w.key, version: v, invokedAt: w.start, completedAt: done })
    }
    for (const r of specs.filter((s) => s.kind === "read")) {
      const instant = r.start + r.length * r.at
      const version = (versions.get(r.key) ?? []).filter(([t]) => t <= instant).reduce((m, [, v]) => Math.max(m, v), 0)
      history.push({
        type: "read",
        client: r.client,
        key: r.key,
        version,
        invokedAt: r.start,
        completedAt: r.start + r.length
      })
    }
    return history
  })

describe("the coherence checker", () => {
  it("property: a correct register's histories have no violation", () => {
    fc.assert(
      fc.property(correctHistory, (history) => {
        assert.deepStrictEqual(check(history).violations, [])
      }),
      { numRuns: 500 }
    )
  })

  it("property: a read made stale after an acknowledged write is found, with its sub-history", () => {
    fc.assert(
      fc.property(correctHistory, fc.nat(), (history, pick) => {
        const writes = history.filter((op) => op.type === "write")
        if (writes.length === 0) return
        const w = writes[pick % writes.length]!
        const stale: Operation = {
          type: "read",
          client: "z",
          key: w.key,
          version: w.version - 1,
          invokedAt: w.completedAt! + 1,
          completedAt: w.completedAt! + 2
        }
        const report = check([...history, stale])
        assert.isTrue(
          report.violations.some((v) => v.read === stale),
          "the planted stale read is reported"
        )
        const found = report.violations.find((v) => v.read === stale)!
        assert.isAtLeast(found.write.version, w.version)
        assert.include(explain(found), `returned v${w.version - 1}`)
      }),
      { numRuns: 500 }
    )
  })

  it("a read inside the bound is allowed; past it, it is not; failed writes promise nothing", () => {
    const history: Array<Operation> = [
      { type: "write", client: "a", key: "k", version: 1, invokedAt: 0, completedAt: 10 },
      { type: "read", client: "b", key: "k", version: 0, invokedAt: 50, completedAt: 51 },
      { type: "read", client: "b", key: "k", version: 0, invokedAt: 200, completedAt: 201 },
      { type: "write", client: "a", key: "k", version: 2, invokedAt: 300, completedAt: undefined },
      { type: "read", client: "c", key: "k", version: 1, invokedAt: 400, completedAt: 401 }
    ]
    assert.strictEqual(check(history, 100).violations.length, 1)
    assert.strictEqual(check(history, 100).violations[0]!.read.invokedAt, 200)
    assert.strictEqual(check(history, 0).violations.length, 2)
    const report = check(history)
    assert.deepStrictEqual([report.operations, report.reads, report.writes], [5, 3, 2])
  })

  it("a write acknowledged during an outage: its bound runs from the outage's end", () => {
    const history: Array<Operation> = [
      { type: "write", client: "a", key: "k", version: 1, invokedAt: 100, completedAt: 110 },
      // 1 s after the ack, but the store came back at 1,500: inside the bound.
      { type: "read", client: "b", key: "k", version: 0, invokedAt: 1_200, completedAt: 1_201 },
      // Past the outage's end + the bound: a violation.
      { type: "read", client: "b", key: "k", version: 0, invokedAt: 2_600, completedAt: 2_601 }
    ]
    const outages = [{ from: 50, to: 1_500 }]
    assert.strictEqual(check(history, 1_000).violations.length, 2, "without the outage, both reads are late")
    const report = check(history, 1_000, outages)
    assert.strictEqual(report.violations.length, 1)
    assert.strictEqual(report.violations[0]!.read.invokedAt, 2_600)
    // A write acknowledged outside every outage keeps its own time.
    assert.strictEqual(check(history, 1_000, [{ from: 200, to: 5_000 }]).violations.length, 2)
  })
})
