/**
 * Load policy: an entry's lifetimes (static, or from the value), the loader's
 * timeouts and the failure backoff, compiled once per keyspace and, for a
 * call with options, once per miss of that call. Nothing here runs on a hit.
 *
 * @internal
 */
import { Duration } from "effect"
import type { Keyspace } from "../../Keyspace.ts"
import { millisOption, resolveTimeout } from "../duration.ts"

type LifetimeOf = (value: unknown, params: unknown) => Duration.Input

/** Per-call options of the read strategies that change how a miss loads and stores. */
export interface CallOptions {
  readonly ttl?: Duration.Input | ((value: any, params: any) => Duration.Input) | undefined
  readonly staleFor?: Duration.Input | ((value: any, params: any) => Duration.Input) | undefined
  readonly timeout?:
    | { readonly soft?: Duration.Input | undefined; readonly hard?: Duration.Input | undefined }
    | undefined
  readonly failureBackoff?: Duration.Input | undefined
}

/** A compiled policy. */
export interface Policy {
  /** Fresh lifetime (ms) when static; `ttlOf` otherwise. */
  readonly ttl: number
  readonly ttlOf: LifetimeOf | undefined
  readonly staleFor: number
  readonly staleForOf: LifetimeOf | undefined
  /** The longest fresh lifetime and stale window an entry may get (ms). */
  readonly ttlBound: number
  readonly staleBound: number
  readonly soft: number | undefined
  readonly hard: number | undefined
  readonly failureBackoff: number | undefined
}

/** The keyspace's own policy (built once, when the runtime first sees the keyspace). */
export const ofKeyspace = (ks: Keyspace<any, any, any>): Policy => {
  const maxTtl = ks.maxTtl ?? 0
  return {
    ttl: ks.ttl,
    ttlOf: ks.ttlOf,
    staleFor: ks.staleFor,
    staleForOf: ks.staleForOf,
    ttlBound: Math.max(ks.ttl, maxTtl),
    staleBound: Math.max(ks.staleFor, maxTtl),
    soft: ks.timeout?.soft,
    hard: ks.timeout?.hard,
    failureBackoff: ks.failureBackoff
  }
}

/** Whether a call's options change anything about loading (else the keyspace's policy applies). */
export const isEmpty = (call: CallOptions | undefined): boolean =>
  call === undefined ||
  (call.ttl === undefined &&
    call.staleFor === undefined &&
    call.timeout === undefined &&
    call.failureBackoff === undefined)

/**
 * The keyspace's policy with a call's overrides (validated: a bad option
 * throws, naming it). Static lifetimes are clamped to the keyspace's bounds.
 */
export const withCall = (base: Policy, ks: Keyspace<any, any, any>, call: CallOptions | undefined): Policy => {
  if (isEmpty(call)) return base
  const subject = `Strategy call on keyspace ${JSON.stringify(ks.name)}:`
  let { ttl, ttlOf, staleFor, staleForOf, soft, hard, failureBackoff } = base
  const c = call!
  if (c.ttl !== undefined) {
    if (typeof c.ttl === "function") ttlOf = c.ttl
    else {
      ttlOf = undefined
      ttl = Math.min(millisOption(subject, "ttl", c.ttl), base.ttlBound)
    }
  }
  if (c.staleFor !== undefined) {
    if (typeof c.staleFor === "function") staleForOf = c.staleFor
    else {
      staleForOf = undefined
      staleFor = Math.min(millisOption(subject, "staleFor", c.staleFor, { allowZero: true }), base.staleBound)
    }
  }
  if (c.timeout !== undefined) {
    const t = resolveTimeout(subject, { soft: c.timeout.soft ?? undefined, hard: c.timeout.hard ?? undefined })
    // A call's bound replaces the keyspace's; the other bound stays.
    if (c.timeout.soft !== undefined) soft = t?.soft
    if (c.timeout.hard !== undefined) hard = t?.hard
    if (soft !== undefined && hard !== undefined && soft >= hard) {
      throw new Error(`cachet: ${subject} option "timeout.soft" must be below "timeout.hard" (${soft} ms, ${hard} ms)`)
    }
  }
  if (c.failureBackoff !== undefined) failureBackoff = millisOption(subject, "failureBackoff", c.failureBackoff)
  return { ...base, ttl, ttlOf, staleFor, staleForOf, soft, hard, failureBackoff }
}

const millisOfResult = (input: Duration.Input, allowZero: boolean, bound: number): number | string => {
  let millis: number
  try {
    millis = Duration.toMillis(Duration.fromInputUnsafe(input))
  } catch {
    return `not a duration: ${String(input)}`
  }
  if (Number.isNaN(millis) || millis < 0 || (!allowZero && millis === 0)) {
    return `must be a duration${allowZero ? "" : " above zero"}, got ${String(input)}`
  }
  return Math.min(millis, bound)
}

/**
 * The fresh lifetime and stale window of `value` (ms), or why they cannot be
 * had (a function threw or answered something that is not a valid duration).
 */
export const lifetimes = (
  policy: Policy,
  value: unknown,
  params: unknown
): { readonly ttl: number; readonly staleFor: number } | string => {
  const ttl = policy.ttlOf === undefined ? policy.ttl : call(policy.ttlOf, value, params, false, policy.ttlBound)
  if (typeof ttl === "string") return `ttl function ${ttl}`
  const staleFor =
    policy.staleForOf === undefined ? policy.staleFor : call(policy.staleForOf, value, params, true, policy.staleBound)
  if (typeof staleFor === "string") return `staleFor function ${staleFor}`
  return { ttl, staleFor }
}

const call = (f: LifetimeOf, value: unknown, params: unknown, allowZero: boolean, bound: number): number | string => {
  try {
    return millisOfResult(f(value, params), allowZero, bound)
  } catch (cause) {
    return `threw: ${String(cause)}`
  }
}
