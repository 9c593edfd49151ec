/**
 * A keyspace is a typed family of cache entries: how parameters become a key,
 * the Schema of the value, and the policy (ttl, stale window, tags, negative
 * caching).
 *
 * **Details**
 *
 * Keys are encoded injectively: two different parameter sets never share a
 * key, and no key of one keyspace reaches into another (see the key encoding
 * notes in the README). The store key is `<name>:<key>`.
 *
 * A keyspace is plain data: it holds no state and can be declared at module
 * level and shared by any number of runtimes.
 *
 * @since 0.1.0
 */
import { type Duration, Effect, Result, Schema } from "effect"
import { CacheDecodeError, CacheEncodeError, CacheKeyError, type CacheLoadTimeout } from "./CacheError.ts"
import { millisOption, resolveTimeout } from "./internal/duration.ts"
import { compile as compileFastDecode } from "./internal/fastDecode.ts"
import {
  escapePart,
  flatten,
  keyspaceName,
  limitKey,
  parseTemplate,
  renderTemplate,
  versionedNamespace
} from "./internal/keyEncoding.ts"
import { KeyMemo } from "./internal/keyMemo.ts"

/**
 * The parameters of a key template, inferred at the type level:
 * `"user:{id}:posts:{page}"` gives `{ readonly id: string | number; readonly page: string | number }`.
 * A placeholder may declare its type: `"user:{id:number}/{slug:string}"`
 * gives `{ readonly id: number; readonly slug: string }`.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type P = Keyspace.TemplateParams<"user:{id}:posts:{page}">
 * const p: P = { id: 1, page: "2" }
 * type Q = Keyspace.TemplateParams<"{id:number}/{slug:string}">
 * const q: Q = { id: 1, slug: "ada" }
 * ```
 *
 * @since 0.1.0
 * @category type-level
 */
export type TemplateParams<T extends string> = [Placeholders<T>] extends [never]
  ? {}
  : { readonly [S in Placeholders<T> as NameOfPlaceholder<S>]: TypeOfPlaceholder<S> }

/**
 * The placeholders of a key template as written (`"id"`, `"id:number"`), as a union.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type S = Keyspace.Placeholders<"user:{id:number}:{tab}"> // "id:number" | "tab"
 * ```
 *
 * @since 0.2.0
 * @category type-level
 */
export type Placeholders<T extends string> = T extends `${string}{${infer P}}${infer Rest}`
  ? P | Placeholders<Rest>
  : never

/**
 * The parameter name of a placeholder: `"id:number"` gives `"id"`.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type N = Keyspace.NameOfPlaceholder<"id:number"> // "id"
 * ```
 *
 * @since 0.2.0
 * @category type-level
 */
export type NameOfPlaceholder<S extends string> = S extends `${infer N}:${string}` ? N : S

/**
 * The parameter type of a placeholder: `number` for `{id:number}`, `string`
 * for `{id:string}`, `string | number` for `{id}`.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type T = Keyspace.TypeOfPlaceholder<"id:number"> // number
 * ```
 *
 * @since 0.2.0
 * @category type-level
 */
export type TypeOfPlaceholder<S extends string> = S extends `${string}:number`
  ? number
  : S extends `${string}:string`
    ? string
    : string | number

/**
 * The placeholder names of a key template, as a union.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type N = Keyspace.ParamNames<"user:{id}:posts:{page:number}"> // "id" | "page"
 * ```
 *
 * @since 0.1.0
 * @category type-level
 */
export type ParamNames<T extends string> = NameOfPlaceholder<Placeholders<T>>

/**
 * Why a key template is refused at the type level, as a message, or `never`
 * when it is valid: a template typed as plain `string` (its parameters
 * cannot be inferred), two placeholders not separated by text containing
 * `:` (`"{a}{b}"`), or a placeholder type other than `number` or `string`.
 * {@link make} turns the message into a compile error on `key`.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type Ok = Keyspace.TemplateError<"user:{id}"> // never
 * type Bad = Keyspace.TemplateError<"{a}{b}"> // "cachet: placeholders ... "
 * ```
 *
 * @since 0.2.0
 * @category type-level
 */
export type TemplateError<T extends string> = string extends T
  ? "cachet: the key template is typed as string, so its parameters cannot be inferred: write it as a literal (or `as const`), or use a key function"
  : Separated<T> extends false
    ? 'cachet: placeholders must be separated by text containing ":" (for example "{a}:{b}"), so that keys stay unambiguous'
    : BadKind<Placeholders<T>> extends never
      ? never
      : `cachet: placeholder {${BadKind<Placeholders<T>>}} declares an unknown type; use {name}, {name:number} or {name:string}`

type Separated<T extends string> = T extends `${string}{${string}}${infer Rest}`
  ? Rest extends `${infer Lit}{${string}}${string}`
    ? Lit extends `${string}:${string}`
      ? Separated<Rest>
      : false
    : true
  : true

type BadKind<S extends string> = S extends `${string}:${infer K}` ? (K extends "number" | "string" ? never : S) : never

/**
 * The check {@link make} adds to its options: nothing for a valid key,
 * otherwise a required property `keyTemplateError` typed as the message, so
 * that the compiler reports "Property 'keyTemplateError' is missing ... :
 * <the message>" at the call.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type Fine = Keyspace.KeyCheck<"user:{id}"> // {}
 * ```
 *
 * @since 0.2.0
 * @category type-level
 */
export type KeyCheck<K> = K extends string
  ? [TemplateError<K>] extends [never]
    ? {}
    : { readonly keyTemplateError: TemplateError<K> }
  : {}

/**
 * Negative caching: loader failures that match `error` are cached for `ttl`
 * and replayed to readers in that window.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import type { Keyspace } from "cachet"
 * class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { id: Schema.Number }) {}
 * const negative: Keyspace.NegativeOptions<NotFound> = { ttl: "10 seconds", error: NotFound }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface NegativeOptions<EN> {
  readonly ttl: Duration.Input
  readonly error: Schema.Codec<EN, any, never, never>
}

/**
 * A typed family of cache entries. `P` is the parameter type, `A` the value
 * type, `EN` the error type cached by negative caching (`never` when off).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Keyspace } from "cachet"
 * const Users: Keyspace.Keyspace<{ readonly id: string | number }, string> =
 *   Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "5 minutes" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Keyspace<in P, in out A, out EN = never> {
  readonly [TypeId]: typeof TypeId
  /** The keyspace name. */
  readonly name: string
  /**
   * The version of the value Schema (`version` option; 1 when not given).
   * Optional so that hand-built keyspaces stay valid.
   */
  readonly version?: number | undefined
  /**
   * The first segment of every store key: the name, with `@<version>` from
   * version 2 on (`user`, `user@2`). Optional: the name when absent.
   */
  readonly namespace?: string | undefined
  /**
   * What makes two keyspace objects the same keyspace to a runtime (name,
   * version, key, timeline; see the README's "Keys"). Optional: identity
   * alone when absent.
   */
  readonly fingerprint?: string | undefined
  /** The value Schema. */
  readonly value: Schema.Codec<A, any, never, never>
  /**
   * How long an entry is fresh, in milliseconds. With a ttl function, the
   * longest it may answer (`maxTtl`).
   */
  readonly ttl: number
  /**
   * How long after `ttl` an entry may still be served stale, in
   * milliseconds. With a staleFor function, the longest it may answer.
   */
  readonly staleFor: number
  /** The ttl of one value, when it depends on the value (see {@link Options}). */
  readonly ttlOf?: ((value: A, params: P) => Duration.Input) | undefined
  /** The stale window of one value, when it depends on the value. */
  readonly staleForOf?: ((value: A, params: P) => Duration.Input) | undefined
  /**
   * The longest fresh lifetime or stale window any entry gets, in ms (ttl
   * and staleFor functions, per-call overrides are clamped to it).
   */
  readonly maxTtl?: number | undefined
  /** Whether a fresh read extends the entry's freshness (see {@link Options}). */
  readonly sliding?: boolean | undefined
  /** Loader timeouts in milliseconds, if any (see {@link TimeoutOptions}). */
  readonly timeout?: { readonly soft: number | undefined; readonly hard: number | undefined } | undefined
  /** After a loader failure answered from stale, how long the key's loader rests (ms). */
  readonly failureBackoff?: number | undefined
  /** The largest key part (UTF-8 bytes) kept readable; longer keys are hashed. */
  readonly maxKeyBytes: number
  /** Tags of an entry, already escaped for stores. */
  readonly tagsOf: ((params: P, value: A) => ReadonlyArray<string>) | undefined
  /** Negative caching, if on: ttl in milliseconds and the error Schema. */
  readonly negative: { readonly ttl: number; readonly error: Schema.Codec<EN, any, never, never> } | undefined
  /**
   * Cluster-wide single flight, if on (`undefined`: loads are shared within
   * one process only). Optional so that hand-built keyspaces stay valid.
   */
  readonly singleFlight?: ClusterSingleFlight | undefined
  /**
   * The store key of `params` (`<name>:<key>`). Throws a `CacheKeyError` for
   * parameters that cannot form a key; prefer {@link key} outside hot paths.
   */
  readonly keyUnsafe: (params: P) => string
  /** Whether `u` is a valid value of this keyspace. */
  readonly is: (u: unknown) => u is A
  /** Encodes a value (or cached error) to JSON-compatible data. */
  readonly encode: (value: unknown, negative?: boolean) => Result.Result<unknown, CacheEncodeError>
  /** Decodes JSON-compatible data into a value (or cached error). */
  readonly decode: (data: unknown, key: string, negative?: boolean) => Result.Result<unknown, CacheDecodeError>
}

/**
 * The brand carried by every keyspace.
 *
 * @example
 * ```ts
 * import { Keyspace } from "cachet"
 * const branded = (u: object) => Keyspace.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: "~cachet/Keyspace" = "~cachet/Keyspace"

/**
 * Options of {@link make}.
 *
 * - `name`: letters, digits, `_ . - /`, at most 100 characters, no `:`.
 * - `key`: a template such as `"user:{id}"` (parameters inferred), or a
 *   function from parameters to a string.
 * - `value`: the value Schema (no context requirements). Remote stores encode
 *   with its JSON codec.
 * - `ttl`: how long an entry is fresh; or a function of the value and the
 *   parameters (`(user) => user.vip ? "1 minute" : "1 hour"`), called once
 *   per stored value. A function's result must be above zero and is clamped
 *   to `maxTtl`; an invalid one (or a throw) serves the value without storing
 *   it, counted as an encode error.
 * - `staleFor`: how long after that it may still be served stale (for
 *   stale-while-revalidate and stale-if-error). Default 0. A function as for
 *   `ttl` (zero allowed).
 * - `maxTtl`: the longest fresh lifetime, and the longest stale window, that
 *   a ttl or staleFor function or a per-call override may give. Default: 1
 *   day when `ttl` (or `staleFor`) is a function, else the static value, so
 *   a per-call override can shorten the keyspace's ttl but not lengthen it.
 * - `sliding`: a fresh read moves `freshUntil` to the read's time plus the
 *   ttl (lru-cache's `updateAgeOnGet`, Caffeine's `expireAfterAccess`).
 *   Default false (costs nothing when off).
 * - `timeout`: loader timeouts (see {@link TimeoutOptions}).
 * - `failureBackoff`: after a loader failure answered from a stale value,
 *   the key's loader is not called again for this long; readers get the
 *   stale value. Default: off.
 * - `tags`: tags of an entry, from its parameters and value.
 * - `negative`: cache loader failures matching `error` for `ttl`.
 * - `maxKeyBytes`: keys longer than this (UTF-8) are hashed. Default 512.
 * - `version`: the version of the value Schema, a positive integer (default
 *   1). From version 2 on it is part of the namespace (`user@2:<key>`), so a
 *   deploy that changes the Schema reads misses (counted as `versionMisses`)
 *   instead of decode errors; `Cachet.invalidateKeyspace(ks, { allVersions:
 *   true })` clears the old versions' entries.
 * - `singleFlight`: `{ scope: "process" }` (default): concurrent misses of a
 *   key run the loader once per process. `{ scope: "cluster" }`: once across
 *   every process sharing the store, through a lease (see
 *   {@link SingleFlightOptions}).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import type { Keyspace } from "cachet"
 * const options: Keyspace.Options<"user:{id}", string, never> = {
 *   name: "user", key: "{id}", value: Schema.String, ttl: "1 minute"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<K, A, EN> {
  readonly name: string
  readonly key: K
  readonly value: Schema.Codec<A, any, never, never>
  readonly ttl: Duration.Input | ((value: A, params: ParamsOf<K>) => Duration.Input)
  readonly staleFor?: Duration.Input | ((value: A, params: ParamsOf<K>) => Duration.Input) | undefined
  readonly maxTtl?: Duration.Input | undefined
  readonly sliding?: boolean | undefined
  readonly timeout?: TimeoutOptions | undefined
  readonly failureBackoff?: Duration.Input | undefined
  readonly tags?: ((params: ParamsOf<K>, value: A) => ReadonlyArray<string>) | undefined
  readonly negative?: NegativeOptions<EN> | undefined
  readonly maxKeyBytes?: number | undefined
  readonly singleFlight?: SingleFlightOptions | undefined
  readonly version?: number | undefined
}

/**
 * Loader timeouts, on a keyspace or a strategy call.
 *
 * - `soft`: when a stale value exists and the loader has not answered
 *   within `soft`, the reader gets the stale value now; the load goes on in
 *   the background (in the `Cachet` layer's scope) and its result is stored,
 *   fenced as a revalidation's, when it finishes. Without a stale value a
 *   soft timeout does nothing.
 * - `hard`: a reader waits at most `hard` for the loader; then it gets the
 *   stale value if one is inside its window, else fails with
 *   `CacheLoadTimeout` (which the type of `E` then includes). The load goes
 *   on only while other readers wait on it.
 *
 * `soft` must be below `hard` when both are given. Timers run on Effect's
 * `Clock`.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * const timeout: Keyspace.TimeoutOptions = { soft: "100 millis", hard: "2 seconds" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface TimeoutOptions {
  readonly soft?: Duration.Input | undefined
  readonly hard?: Duration.Input | undefined
}

/**
 * `CacheLoadTimeout` when options configure a hard timeout, else `never`:
 * what a keyspace's or a call's `timeout` adds to `E`.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type E1 = Keyspace.TimeoutError<{ timeout: { hard: "1 second" } }> // CacheLoadTimeout
 * type E2 = Keyspace.TimeoutError<{ timeout: { soft: "1 second" } }> // never
 * ```
 *
 * @since 0.2.0
 * @category type-level
 */
export type TimeoutError<O> = O extends unknown
  ? "timeout" extends keyof O
    ? O["timeout" & keyof O] extends infer T
      ? T extends { readonly hard?: infer H }
        ? [Exclude<H, undefined>] extends [never]
          ? never
          : CacheLoadTimeout
        : never
      : never
    : never
  : never

/**
 * Where concurrent misses of one key are collapsed into one loader run.
 *
 * - `{ scope: "process" }` (the default): once per process.
 * - `{ scope: "cluster" }`: once across every process that shares the store.
 *   The process that takes the key's lease loads; the lease expires after
 *   `lease` (default 5 seconds) unless renewed, and it is renewed every
 *   `lease / 3` while the loader runs, so a crashed holder blocks the others
 *   for at most `lease`. The others wait for the value, reading the store
 *   every `pollInterval` (default 50 ms) and retrying the lease, for at most
 *   `wait` (default 10 seconds); then they load themselves.
 *
 * **Details**
 *
 * The lease is a service in the runtime's context: `cachet/redis` provides
 * one on Redis (`TieredStore.layer`, `TieredStore.layerLease`). Without one,
 * a cluster-scoped keyspace loads once per process and the runtime logs a
 * warning. When the lease cannot be taken because its backend fails, the
 * process loads by itself (degrade). A miss of a cluster-scoped key reads
 * the store up to twice more (before and after taking the lease), and the
 * lease's timings (renewal, polls, `wait`) are wall-clock time, as the
 * lease's expiry in Redis is.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Keyspace } from "cachet"
 *
 * const Reports = Keyspace.make({
 *   name: "report",
 *   key: "report:{id}",
 *   value: Schema.String,
 *   ttl: "10 minutes",
 *   singleFlight: { scope: "cluster", lease: "5 seconds", wait: "30 seconds" }
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type SingleFlightOptions =
  | { readonly scope: "process" }
  | {
      readonly scope: "cluster"
      readonly lease?: Duration.Input | undefined
      readonly wait?: Duration.Input | undefined
      readonly pollInterval?: Duration.Input | undefined
    }

/**
 * A keyspace's cluster-wide single flight, resolved: durations in
 * milliseconds (see {@link SingleFlightOptions}).
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * const policy: Keyspace.ClusterSingleFlight = { scope: "cluster", lease: 5_000, wait: 10_000, pollInterval: 50 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClusterSingleFlight {
  readonly scope: "cluster"
  readonly lease: number
  readonly wait: number
  readonly pollInterval: number
}

/**
 * The parameters of a key: inferred from a template, or the key function's
 * argument.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * type P = Keyspace.ParamsOf<"org:{org}:user:{id}">
 * ```
 *
 * @since 0.1.0
 * @category type-level
 */
export type ParamsOf<K> = K extends string ? TemplateParams<K> : K extends (params: infer P) => string ? P : never

const fail = (name: string, message: string): never => {
  throw new Error(`cachet: Keyspace ${JSON.stringify(name)}: ${message}`)
}

const durationOption = (name: string, option: string, input: Duration.Input, allowZero: boolean): number =>
  millisOption(`Keyspace ${JSON.stringify(name)}:`, option, input, { allowZero })

const issueMessage = (error: Schema.SchemaError): string => error.message

/**
 * Declares a keyspace.
 *
 * **Details**
 *
 * With a template key, the parameter type is inferred from the placeholders.
 * Parameter values may be strings or numbers (`1` and `"1"` name the same
 * entry). Values are escaped, so any string is a safe parameter.
 *
 * **Gotchas**
 *
 * Invalid definitions throw at construction, with a message that names the
 * option: a bad name, a zero ttl, a template whose placeholders are not
 * separated by `:`, a value that is not a Schema, a version that is not a
 * positive integer. A template typed as plain `string`, adjacent
 * placeholders (`"{a}{b}"`) and unknown placeholder types
 * (`"{id:bool}"`) are compile errors too (see {@link TemplateError}).
 *
 * Typed placeholders are checked at runtime: `{id:number}` takes only a
 * finite number, `{slug:string}` only a string; anything else is a
 * `CacheKeyError` (strategies count it and bypass the cache).
 *
 * Entries with tags live at most the runtime's `tagRetention` (default 1 day),
 * so that a tag invalidation is never forgotten while an entry it covers is
 * still stored.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Keyspace } from "cachet"
 *
 * class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String, orgId: Schema.Number }) {}
 *
 * const Users = Keyspace.make({
 *   name: "user",
 *   key: "{id}", // stored as user:<id>: the name namespaces the key
 *   value: User,
 *   ttl: "5 minutes",
 *   staleFor: "1 hour",
 *   tags: (_params, user) => ["users", `org:${user.orgId}`]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <
  const K extends string | ((params: any) => string),
  A,
  EN = never,
  const T extends TimeoutOptions | undefined = undefined
>(
  options: Options<K, A, EN> & KeyCheck<K> & { readonly timeout?: T }
): Keyspace<ParamsOf<K>, A, EN | TimeoutError<{ timeout: T }>> => {
  const name = options.name
  if (typeof name !== "string" || !keyspaceName.test(name)) {
    fail(
      String(name),
      `option "name" must be 1 to 100 characters of letters, digits and _ . - / (starting with a letter, digit or _), with no ":"`
    )
  }
  if (!Schema.isSchema(options.value)) fail(name, `option "value" must be a Schema`)
  const ttlOf = typeof options.ttl === "function" ? options.ttl : undefined
  const staleForOf = typeof options.staleFor === "function" ? options.staleFor : undefined
  const maxTtlOption = options.maxTtl === undefined ? undefined : durationOption(name, "maxTtl", options.maxTtl, false)
  const maxTtl = maxTtlOption ?? (ttlOf !== undefined || staleForOf !== undefined ? 24 * 60 * 60 * 1000 : undefined)
  const ttl = ttlOf !== undefined ? maxTtl! : durationOption(name, "ttl", options.ttl as Duration.Input, false)
  const staleFor =
    staleForOf !== undefined
      ? maxTtl!
      : options.staleFor === undefined
        ? 0
        : durationOption(name, "staleFor", options.staleFor as Duration.Input, true)
  if (options.sliding !== undefined && typeof options.sliding !== "boolean") {
    fail(name, `option "sliding" must be a boolean, got ${String(options.sliding)}`)
  }
  const timeout = resolveTimeout(`Keyspace ${JSON.stringify(name)}:`, options.timeout)
  const failureBackoff =
    options.failureBackoff === undefined
      ? undefined
      : durationOption(name, "failureBackoff", options.failureBackoff, false)
  const maxKeyBytes = options.maxKeyBytes ?? 512
  if (!Number.isInteger(maxKeyBytes) || maxKeyBytes < 128) {
    fail(name, `option "maxKeyBytes" must be an integer of at least 128, got ${String(options.maxKeyBytes)}`)
  }
  if (options.tags !== undefined && typeof options.tags !== "function") {
    fail(name, `option "tags" must be a function (params, value) => tags`)
  }
  let negative: Keyspace<unknown, A, EN>["negative"]
  if (options.negative !== undefined) {
    if (!Schema.isSchema(options.negative.error)) fail(name, `option "negative.error" must be a Schema`)
    negative = { ttl: durationOption(name, "negative.ttl", options.negative.ttl, false), error: options.negative.error }
  }

  let singleFlight: ClusterSingleFlight | undefined
  const flight = options.singleFlight
  if (flight !== undefined) {
    if (flight.scope === "cluster") {
      singleFlight = {
        scope: "cluster",
        lease: flight.lease === undefined ? 5_000 : durationOption(name, "singleFlight.lease", flight.lease, false),
        wait: flight.wait === undefined ? 10_000 : durationOption(name, "singleFlight.wait", flight.wait, true),
        pollInterval:
          flight.pollInterval === undefined
            ? 50
            : durationOption(name, "singleFlight.pollInterval", flight.pollInterval, false)
      }
    } else if (flight.scope !== "process") {
      fail(
        name,
        `option "singleFlight.scope" must be "process" or "cluster", got ${String((flight as { scope: unknown }).scope)}`
      )
    }
  }

  const version = options.version ?? 1
  if (!Number.isSafeInteger(version) || version < 1) {
    fail(name, `option "version" must be a positive integer, got ${String(options.version)}`)
  }
  const namespace = versionedNamespace(name, version)

  let render: (params: any) => string
  // The placeholder of a one-placeholder template (keys memoised by its value).
  let single: string | undefined
  const key: unknown = options.key
  if (typeof key === "string") {
    const parsed = parseTemplate(key)
    if (typeof parsed === "string") return fail(name, `option "key": ${parsed}`)
    render = renderTemplate(parsed)
    if (parsed.params.length === 1) single = parsed.params[0]
  } else if (typeof key === "function") {
    const fn = key as (params: unknown) => unknown
    render = (params) => {
      const out = fn(params)
      if (typeof out !== "string") throw new Error(`key function returned ${typeof out}, not a string`)
      return escapePart(out)
    }
  } else {
    return fail(name, `option "key" must be a template string or a function`)
  }
  const prefix = `${namespace}:`
  const renderKey = (params: unknown): string => {
    try {
      return prefix + limitKey(render(params), maxKeyBytes)
    } catch (cause) {
      throw new CacheKeyError({ keyspace: name, message: cause instanceof Error ? cause.message : String(cause) })
    }
  }
  // A rendered key is a fresh rope (cons string) that every Map lookup must
  // flatten and hash again: most of the cost of a memory hit. Keys of
  // one-placeholder templates are memoised by the parameter's value, flat and
  // with their hash cached; the memo is bounded (two generations, `KeyMemo`).
  // With each key the memo keeps its hash for the memory store's index
  // (`internal/lru.ts`), handed over on every memoised read: a memory hit
  // then hashes nothing.
  const memo = new KeyMemo()
  const keyUnsafe =
    single === undefined
      ? renderKey
      : (params: unknown): string => {
          const value = (params as Record<string, unknown> | null | undefined)?.[single]
          if (typeof value !== "number" && typeof value !== "string") return renderKey(params)
          const memoised = memo.get(value)
          if (memoised !== undefined) return memoised
          const k = flatten(renderKey(params))
          memo.add(value, k)
          return k
        }

  const userTags = options.tags
  const tagsOf =
    userTags === undefined
      ? undefined
      : (params: unknown, value: A) => userTags(params as ParamsOf<K>, value).map(escapePart)

  const valueCodec = Schema.toCodecJson(options.value)
  const encodeValue = Schema.encodeUnknownResult(valueCodec)
  const fullDecodeValue = Schema.decodeUnknownResult(valueCodec)
  // Compiled once: a value Schema whose JSON form is its type form skips the
  // parser for values its validator accepts (fastDecode.ts).
  const fastValue = compileFastDecode(options.value.ast)
  const decodeValue =
    fastValue === undefined
      ? fullDecodeValue
      : (u: unknown): Result.Result<unknown, Schema.SchemaError> =>
          fastValue(u) ? Result.succeed(u) : fullDecodeValue(u)
  const errorCodec = negative === undefined ? undefined : Schema.toCodecJson(negative.error)
  const encodeError = errorCodec === undefined ? undefined : Schema.encodeUnknownResult(errorCodec)
  const decodeError = errorCodec === undefined ? undefined : Schema.decodeUnknownResult(errorCodec)

  return {
    [TypeId]: TypeId,
    name,
    version,
    namespace,
    fingerprint: JSON.stringify([
      namespace,
      typeof key === "string" ? key : String(key),
      ttl,
      staleFor,
      maxKeyBytes,
      negative?.ttl ?? null,
      singleFlight ?? null
    ]),
    value: options.value,
    ttl,
    staleFor,
    ttlOf: ttlOf as ((value: A, params: unknown) => Duration.Input) | undefined,
    staleForOf: staleForOf as ((value: A, params: unknown) => Duration.Input) | undefined,
    maxTtl,
    sliding: options.sliding === true,
    timeout,
    failureBackoff,
    maxKeyBytes,
    tagsOf,
    negative,
    singleFlight,
    keyUnsafe,
    is: Schema.is(options.value) as (u: unknown) => u is A,
    encode: (value, isNegative) => {
      const encode: ((u: unknown) => Result.Result<unknown, Schema.SchemaError>) | undefined = isNegative
        ? encodeError
        : encodeValue
      if (encode === undefined) {
        return Result.fail(
          new CacheEncodeError({ keyspace: name, message: "negative caching is off for this keyspace" })
        )
      }
      return Result.mapError(
        encode(value),
        (issue) => new CacheEncodeError({ keyspace: name, message: issueMessage(issue) })
      )
    },
    decode: (data, key, isNegative) => {
      const decode: ((u: unknown) => Result.Result<unknown, Schema.SchemaError>) | undefined = isNegative
        ? decodeError
        : decodeValue
      if (decode === undefined) {
        return Result.fail(
          new CacheDecodeError({ keyspace: name, key, message: "negative entry, but negative caching is off" })
        )
      }
      return Result.mapError(
        decode(data),
        (issue) => new CacheDecodeError({ keyspace: name, key, message: issueMessage(issue) })
      )
    }
  } satisfies Keyspace<any, A, EN> as Keyspace<ParamsOf<K>, A, EN | TimeoutError<{ timeout: T }>>
}

/**
 * The store key of `params`, or a `CacheKeyError`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Keyspace } from "cachet"
 * const Users = Keyspace.make({ name: "user", key: "{id}", value: Schema.String, ttl: "1 minute" })
 * const key = Keyspace.key(Users, { id: 7 }) // Effect<"user:7">
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const key = <P, A, EN>(keyspace: Keyspace<P, A, EN>, params: P): Effect.Effect<string, CacheKeyError> =>
  Effect.try({
    try: () => keyspace.keyUnsafe(params),
    catch: (e) => (e instanceof CacheKeyError ? e : new CacheKeyError({ keyspace: keyspace.name, message: String(e) }))
  })

/**
 * The parameter type of a keyspace.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * declare const Users: Keyspace.Keyspace<{ readonly id: number }, string>
 * type P = Keyspace.Params<typeof Users> // { readonly id: number }
 * ```
 *
 * @since 0.1.0
 * @category type-level
 */
export type Params<K> = K extends Keyspace<infer P, infer _A, infer _EN> ? P : never

/**
 * The value type of a keyspace.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * declare const Users: Keyspace.Keyspace<{ readonly id: number }, string>
 * type A = Keyspace.Value<typeof Users> // string
 * ```
 *
 * @since 0.1.0
 * @category type-level
 */
export type Value<K> = K extends Keyspace<infer _P, infer A, infer _EN> ? A : never

/**
 * Any keyspace.
 *
 * @example
 * ```ts
 * import type { Keyspace } from "cachet"
 * const names = (all: ReadonlyArray<Keyspace.Any>) => all.map((k) => k.name)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Any = Keyspace<any, any, any>

/**
 * Whether a value is a keyspace.
 *
 * @example
 * ```ts
 * import { Keyspace } from "cachet"
 * Keyspace.isKeyspace({}) // false
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isKeyspace = (u: unknown): u is Any => typeof u === "object" && u !== null && TypeId in u
