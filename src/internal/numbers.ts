/**
 * Numeric options (counts, byte budgets): validated once, at construction.
 * One wording for every module, so an error always names its option.
 *
 * @internal
 */

/** `value` (an integer of at least 1), or `fallback`; throws naming the option. */
export const positiveInt = (subject: string, option: string, value: number | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`cachet: ${subject} option "${option}" must be a positive integer, got ${String(value)}`)
  }
  return value
}

/** Throws naming the option unless `value` is absent or a finite number above zero. */
export const checkPositive = (subject: string, option: string, value: number | undefined): void => {
  if (value === undefined) return
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new Error(`cachet: ${subject} option "${option}" must be a positive number, got ${String(value)}`)
  }
}
