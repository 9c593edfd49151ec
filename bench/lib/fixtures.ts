/**
 * Shared fixtures of the benchmark suites: the value every contender caches
 * (a ~1 KB JSON object), the cachet keyspace for it, and key sequences.
 *
 * Every contender caches the same value objects under the same key strings
 * (`user:<id>`). cachet takes parameters (`{ id }`) and renders the key itself
 * on every call; the peers get the key string pre-built (a conservative choice:
 * cachet pays for its key rendering, the peers do not).
 */
import { Schema } from "effect"
import { Keyspace } from "../../src/index.ts"

/** The value: a user record whose JSON is ~1 KB. */
export const User = Schema.Struct({
  id: Schema.Number,
  name: Schema.String,
  email: Schema.String,
  orgId: Schema.Number,
  active: Schema.Boolean,
  roles: Schema.Array(Schema.String),
  bio: Schema.String
})
export type User = typeof User.Type

const BIO = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. "

/** A fresh ~1 KB user object (its own strings, so no sharing between values). */
export const makeUser = (id: number): User => ({
  id,
  name: `User number ${id}`,
  email: `user${id}@example.com`,
  orgId: id % 97,
  active: id % 3 !== 0,
  roles: ["reader", id % 2 === 0 ? "writer" : "commenter"],
  // 885 characters: ~1 KB of JSON in all.
  bio: `${id}:${BIO.repeat(9)}`.slice(0, 885)
})

/** Bytes of the value's JSON (for the README). */
export const userJsonBytes = (): number => Buffer.byteLength(JSON.stringify(makeUser(123456)))

/** The cachet keyspace of the benchmarks: one hour fresh, no tags. */
export const Users = Keyspace.make({ name: "user", key: "user:{id}", value: User, ttl: "1 hour" })

/** The key string every peer uses for `id` (the same as cachet's store key). */
export const keyOf = (id: number): string => `user:${id}`

/**
 * A deterministic pseudo-random sequence of `length` ids in [0, keys), uniform
 * (mulberry32): the same sequence for every contender.
 */
export const idSequence = (length: number, keys: number, seed = 42): Int32Array => {
  let a = seed >>> 0
  const out = new Int32Array(length)
  for (let i = 0; i < length; i++) {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out[i] = ((t ^ (t >>> 14)) >>> 0) % keys
  }
  return out
}
