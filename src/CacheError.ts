/**
 * The errors of cachet: one family, each with a `_tag` to catch on.
 *
 * **Details**
 *
 * - {@link CacheStoreError}: the backend failed. Its `reason` says how
 *   (`Unavailable`, `Timeout`, `CircuitOpen`, `Protocol`), with the `op` and
 *   `store` it happened in. In the default *degrade* mode strategies never
 *   surface it: the failure is logged, counted and read as a miss. In *strict*
 *   mode (`{ onStoreError: "fail" }`) it appears in the error channel.
 * - {@link CacheDecodeError}: a stored entry did not decode (corrupt bytes,
 *   changed schema). Strategies treat it as a miss and delete the entry.
 * - {@link CacheEncodeError}: a value did not satisfy its keyspace Schema on
 *   write. Nothing is stored.
 * - {@link CacheKeyError}: key parameters could not form a key.
 * - {@link CacheValueTooLarge}: the encoded value is over the store's limit;
 *   nothing was sent to the store.
 * - {@link CacheShuttingDown}: the runtime's layer has closed.
 * - {@link CacheLoadTimeout}: a load passed its hard timeout and no stale
 *   value could answer (only where a hard timeout is configured).
 *
 * This module does not log or count errors: the `Cachet` runtime does.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Why a store call failed.
 *
 * - `Unavailable`: no connection, connection refused or reset.
 * - `Timeout`: the call did not finish within the store's command timeout.
 * - `CircuitOpen`: the circuit breaker is open; the store was not called.
 * - `Protocol`: the backend answered, but not as expected.
 *
 * @example
 * ```ts
 * import type { CacheError } from "cachet"
 * const retryable = (r: CacheError.StoreErrorReason) => r !== "Protocol"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type StoreErrorReason = "Unavailable" | "Timeout" | "CircuitOpen" | "Protocol"

/**
 * The backend failed. Strategies in degrade mode (the default) turn this into
 * a counted miss; strict mode surfaces it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CacheError } from "cachet"
 *
 * const failing = Effect.fail(new CacheError.CacheStoreError({ reason: "Timeout", op: "get", store: "redis" }))
 * const handled = failing.pipe(Effect.catchTag("CacheStoreError", (e) => Effect.succeed(e.reason)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheStoreError extends Schema.TaggedError<CacheStoreError>("cachet/CacheStoreError")("CacheStoreError", {
  reason: Schema.Literals(["Unavailable", "Timeout", "CircuitOpen", "Protocol"]),
  op: Schema.String,
  store: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  /**
   * Whether trying again later may succeed.
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return this.reason !== "Protocol"
  }

  override get message(): string {
    const cause = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `${this.store} store ${this.op} failed (${this.reason})${cause}`
  }
}

/**
 * A stored entry could not be decoded with its keyspace Schema, or its
 * envelope was not readable. The entry is treated as a miss and deleted.
 *
 * @example
 * ```ts
 * import { CacheError } from "cachet"
 * const error = new CacheError.CacheDecodeError({ keyspace: "user", key: "user:1", message: "Expected number" })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheDecodeError extends Schema.TaggedError<CacheDecodeError>("cachet/CacheDecodeError")(
  "CacheDecodeError",
  {
    keyspace: Schema.String,
    key: Schema.String,
    message: Schema.String
  }
) {}

/**
 * A value did not satisfy its keyspace Schema on write: nothing was stored.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cachet, CacheError } from "cachet"
 * declare const program: Effect.Effect<void, CacheError.CacheEncodeError, Cachet.Cachet>
 * program.pipe(Effect.catchTag("CacheEncodeError", (e) => Effect.logWarning(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheEncodeError extends Schema.TaggedError<CacheEncodeError>("cachet/CacheEncodeError")(
  "CacheEncodeError",
  {
    keyspace: Schema.String,
    message: Schema.String
  }
) {}

/**
 * Key parameters could not form a key (for example a key function threw, or
 * returned something other than a string).
 *
 * @example
 * ```ts
 * import { CacheError } from "cachet"
 * const error = new CacheError.CacheKeyError({ keyspace: "user", message: "key function threw" })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheKeyError extends Schema.TaggedError<CacheKeyError>("cachet/CacheKeyError")("CacheKeyError", {
  keyspace: Schema.String,
  message: Schema.String
}) {}

/**
 * The value is larger than the store accepts (`maxEntryBytes`). Raised before
 * any command is sent to the store.
 *
 * @example
 * ```ts
 * import { CacheError } from "cachet"
 * const error = new CacheError.CacheValueTooLarge({ keyspace: "user", key: "user:1", bytes: 2_000_000, maxBytes: 1_048_576 })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheValueTooLarge extends Schema.TaggedError<CacheValueTooLarge>("cachet/CacheValueTooLarge")(
  "CacheValueTooLarge",
  {
    keyspace: Schema.String,
    key: Schema.String,
    bytes: Schema.Number,
    maxBytes: Schema.Number
  }
) {
  override get message(): string {
    return `value for ${this.key} is ${this.bytes} bytes, over the limit of ${this.maxBytes}`
  }
}

/**
 * The runtime's layer has closed; no more cache work is accepted.
 *
 * @example
 * ```ts
 * import { CacheError } from "cachet"
 * const error = new CacheError.CacheShuttingDown({ op: "writeBehind" })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CacheShuttingDown extends Schema.TaggedError<CacheShuttingDown>("cachet/CacheShuttingDown")(
  "CacheShuttingDown",
  {
    op: Schema.String
  }
) {}

/**
 * A load ran past its hard timeout (`timeout: { hard }` on the keyspace or
 * the call) and no stale value could answer. In `E` only where a hard
 * timeout is configured.
 *
 * **Details**
 *
 * The caller stops waiting; the load goes on only if other callers still
 * wait on it (it is interrupted otherwise), and its result is stored, fenced,
 * if it finishes.
 *
 * @example
 * ```ts
 * import { CacheError } from "cachet"
 * const error = new CacheError.CacheLoadTimeout({ keyspace: "user", after: 2000 })
 * error.message // "cachet: load of keyspace user timed out after 2000 ms"
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class CacheLoadTimeout extends Schema.TaggedError<CacheLoadTimeout>("cachet/CacheLoadTimeout")(
  "CacheLoadTimeout",
  {
    keyspace: Schema.String,
    /** The hard timeout that passed, in milliseconds. */
    after: Schema.Number
  }
) {
  override get message(): string {
    return `cachet: load of keyspace ${this.keyspace} timed out after ${this.after} ms`
  }
}

/**
 * Every error cachet can raise.
 *
 * @example
 * ```ts
 * import type { CacheError } from "cachet"
 * const describe = (e: CacheError.CacheError) => e._tag
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type CacheError =
  | CacheStoreError
  | CacheDecodeError
  | CacheEncodeError
  | CacheKeyError
  | CacheValueTooLarge
  | CacheShuttingDown
  | CacheLoadTimeout
