/**
 * The key memo of one-placeholder keyspaces (`internal/keyMemo.ts`): what it
 * answers is what was memoised for that value, a hot set larger than one
 * generation stays memoised (the generations grow), and keys read once hold
 * no more than two of the smallest generations.
 */
import { assert, describe, it } from "@effect/vitest"
import { KEY_MEMO_MAX, KEY_MEMO_MIN, KeyMemo } from "../../src/internal/keyMemo.ts"

/** A deterministic pseudo-random sequence (xorshift32). */
const randoms = (seed: number) => {
  let x = seed
  return (n: number) => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % n
  }
}

/** A read through the memo, memoising on a miss; whether the memo answered. */
const read = (memo: KeyMemo, value: number | string): boolean => {
  const key = memo.get(value)
  if (key === undefined) {
    memo.add(value, `k:${value}`)
    return false
  }
  if (key !== `k:${value}`) assert.fail(`value ${value} answered ${key}`)
  return true
}

describe("the key memo", () => {
  it("answers only the key memoised for the value, through rotations (values and strings apart)", () => {
    const memo = new KeyMemo()
    const next = randoms(7)
    for (let i = 0; i < 200_000; i++) read(memo, next(60_000))
    // A string value is its own entry: "5" is not the number 5's.
    memo.add("5", "s:5")
    assert.strictEqual(memo.get("5"), "s:5")
    read(memo, 5)
    assert.strictEqual(memo.get(5), "k:5")
  })

  for (const [hot, least, kind] of [
    [30_000, 0.95, "number"],
    [50_000, 0.7, "number"],
    [30_000, 0.95, "string"]
  ] as const) {
    it(`a hot set of ${hot} uniform ${kind} values stays memoised: the generations grow`, () => {
      const memo = new KeyMemo()
      const next = randoms(11)
      const value = (n: number) => (kind === "string" ? `org-${n}` : n)
      for (let i = 0; i < 6 * hot; i++) read(memo, value(next(hot)))
      let answered = 0
      for (let i = 0; i < hot; i++) if (read(memo, value(next(hot)))) answered++
      // Two of the smallest generations (2 x 4,096) would answer 8,192 / hot
      // of the reads at most (27%, 16%).
      assert.isAbove(answered / hot, least)
      assert.isAtMost(memo.held, 2 * KEY_MEMO_MAX)
    })
  }

  it("keys read once hold at most two of the smallest generations, also after a hot phase", () => {
    const memo = new KeyMemo()
    let value = 0
    for (let i = 0; i < 100_000; i++) {
      read(memo, value++)
      assert.isAtMost(memo.held, 2 * KEY_MEMO_MIN)
    }
    // A hot phase grows the generations; a scan after it shrinks them back.
    const next = randoms(3)
    for (let i = 0; i < 300_000; i++) read(memo, 1_000_000 + next(50_000))
    assert.isAbove(memo.held, 2 * KEY_MEMO_MIN)
    for (let i = 0; i < 200_000; i++) read(memo, value++)
    assert.isAtMost(memo.held, 2 * KEY_MEMO_MIN)
  })
})
