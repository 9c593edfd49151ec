/**
 * Duration options: validated once, at construction, into milliseconds.
 * One wording for every module, so an error always names its option.
 *
 * @internal
 */
import { Duration } from "effect"

/** What a duration option accepts besides a finite duration above zero. */
export interface MillisRule {
  /** Zero is allowed. */
  readonly allowZero?: boolean | undefined
  /** `Infinity` is allowed (for "no bound"). */
  readonly allowInfinity?: boolean | undefined
  /** The least value in ms (a bound for ioredis timers); the result is rounded up. */
  readonly min?: number | undefined
}

/**
 * `input` in milliseconds; throws `cachet: <subject> option "<option>" ...`.
 * `subject` is who owns the option (`Cachet.layer`, `Keyspace "user":`).
 */
export const millisOption = (subject: string, option: string, input: Duration.Input, rule?: MillisRule): number => {
  let millis: number
  try {
    millis = Duration.toMillis(Duration.fromInputUnsafe(input))
  } catch {
    throw new Error(`cachet: ${subject} option "${option}" is not a valid duration: ${String(input)}`)
  }
  const min = rule?.min
  if (min !== undefined) {
    if (!Number.isFinite(millis) || millis < min) {
      throw new Error(
        `cachet: ${subject} option "${option}" must be a finite duration of at least ${min} ms, got ${String(input)}`
      )
    }
    return Math.ceil(millis)
  }
  const finite = rule?.allowInfinity !== true
  if (
    Number.isNaN(millis) ||
    millis < 0 ||
    (finite && !Number.isFinite(millis)) ||
    (!rule?.allowZero && millis === 0)
  ) {
    throw new Error(
      `cachet: ${subject} option "${option}" must be a ${finite ? "finite " : ""}duration${rule?.allowZero ? "" : " above zero"}, got ${String(input)}`
    )
  }
  return millis
}

/** `millisOption`, or `fallback` when the option is not given. */
export const millisOr = (
  subject: string,
  option: string,
  input: Duration.Input | undefined,
  fallback: number,
  rule?: MillisRule
): number => (input === undefined ? fallback : millisOption(subject, option, input, rule))

/**
 * Validates `timeout` options into milliseconds (throws naming the option);
 * `undefined` when neither bound is given.
 */
export const resolveTimeout = (
  subject: string,
  options: { readonly soft?: Duration.Input | undefined; readonly hard?: Duration.Input | undefined } | undefined
): { readonly soft: number | undefined; readonly hard: number | undefined } | undefined => {
  if (options === undefined) return undefined
  const soft = options.soft === undefined ? undefined : millisOption(subject, "timeout.soft", options.soft)
  const hard = options.hard === undefined ? undefined : millisOption(subject, "timeout.hard", options.hard)
  if (soft !== undefined && hard !== undefined && soft >= hard) {
    throw new Error(
      `cachet: ${subject} option "timeout.soft" must be below "timeout.hard", got ${String(options.soft)} and ${String(options.hard)}`
    )
  }
  return soft === undefined && hard === undefined ? undefined : { soft, hard }
}
