/**
 * The stored response: its Schema, the keyspaces that hold responses (one
 * per name in the process), and the path tags that invalidate them.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { type Duration, Schema } from "effect"
import { millisOption } from "../../internal/duration.ts"
import type { Keyspace } from "../../Keyspace.ts"
import * as KeyspaceModule from "../../Keyspace.ts"

const fail = (option: string, message: string): never => {
  throw new Error(`cachet: HttpCache option "${option}" ${message}`)
}

// ---------------------------------------------------------------------------
// The stored response
// ---------------------------------------------------------------------------

/** A stored response: what was received, and its HTTP timeline. */
export const ResponseEntry = Schema.Struct({
  status: Schema.Number,
  /** The header fields as received (RFC 9111 §3.1), less hop-by-hop ones, `Age` and `Content-Length`; `Date` always. */
  headers: Schema.Array(Schema.Tuple([Schema.String, Schema.String])),
  body: Schema.Uint8Array,
  etag: Schema.String,
  /** When cachet received the response (epoch ms): `response_time` of RFC 9111 §4.2.3. */
  date: Schema.Number,
  /** Its `corrected_initial_age` in ms (§4.2.3): current age = age + (now - date). */
  age: Schema.Number,
  /** Fresh until then: `date` + freshness lifetime - `age`. */
  freshUntil: Schema.Number,
  /** Served stale with a background revalidation until then. */
  swrUntil: Schema.Number,
  /** Served stale when the origin fails (5xx, error) until then. */
  sieUntil: Schema.Number,
  /** Never used stale without a successful revalidation (no-cache, must-revalidate, proxy-revalidate, s-maxage). */
  revalidate: Schema.Boolean,
  /** Lowercase names of the response's `Vary`, and digests of the request's values of them. */
  vary: Schema.Array(Schema.String),
  varyValues: Schema.Array(Schema.NullOr(Schema.String)),
  /** `public` or `s-maxage`: may answer requests that carry credentials. */
  shared: Schema.Boolean,
  /** The normalised path, for invalidation. */
  path: Schema.String
})

/** The type of {@link ResponseEntry}. */
export type ResponseEntry = typeof ResponseEntry.Type

const registry = new Map<string, Keyspace<{ readonly key: string }, ResponseEntry>>()

/** The keyspace named `name`: the one in use, or a new one with `maxTtl` (default 1 hour). */
export const keyspaceNamed = (
  name: string,
  maxTtl: Duration.Input | undefined
): Keyspace<{ readonly key: string }, ResponseEntry> => {
  const existing = registry.get(name)
  if (existing !== undefined && maxTtl === undefined) return existing
  return keyspaceFor(name, maxTtl === undefined ? 60 * 60 * 1000 : millisOption("HttpCache", "maxTtl", maxTtl))
}

/**
 * The tag of every entry of a path (as the router matches it, lower-cased:
 * see `handlerTarget`). Long paths are hashed to keep tags short.
 */
export const pathTag = (path: string): string =>
  path.length <= 400 ? `http:${path}` : `http:#${createHash("sha256").update(path).digest("base64url")}`

/**
 * How long a path invalidation must be remembered: the longest an HTTP entry
 * lives (the largest `maxTtl` in the process), not the runtime's day-long
 * tag retention, so that invalidations of random paths cannot pile up.
 */
export const tagRetention = (): number => {
  let longest = 0
  for (const keyspace of registry.values()) longest = Math.max(longest, keyspace.ttl)
  return longest === 0 ? 60 * 60 * 1000 : longest
}

/** A digest of a credential for a key: the key identifies it without holding it. */
export const digest = (value: string): string => createHash("sha256").update(value).digest("base64url")

/**
 * The keyspace of stored responses named `name`. One object per name in the
 * process (the runtime refuses two keyspaces with one name); its ttl is the
 * longest time an entry is kept (`maxTtl`).
 */
export const keyspaceFor = (name: string, maxTtl: number): Keyspace<{ readonly key: string }, ResponseEntry> => {
  const existing = registry.get(name)
  if (existing !== undefined) {
    if (existing.ttl !== maxTtl) {
      fail(
        "maxTtl",
        `differs between two HttpCache middlewares named ${JSON.stringify(name)} (${existing.ttl} ms and ${maxTtl} ms): give them different names or the same maxTtl`
      )
    }
    return existing
  }
  let keyspace: Keyspace<{ readonly key: string }, ResponseEntry>
  try {
    keyspace = KeyspaceModule.make({
      name,
      key: (params: { readonly key: string }) => params.key,
      value: ResponseEntry,
      ttl: maxTtl,
      tags: (_params, entry) => [pathTag(entry.path)]
    })
  } catch (cause) {
    return fail("name", String(cause instanceof Error ? cause.message : cause))
  }
  registry.set(name, keyspace)
  return keyspace
}
