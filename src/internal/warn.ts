/**
 * Rate-limited warnings: one log line per kind of trouble per interval, so
 * an outage is reported without flooding the log.
 *
 * @internal
 */
import { type Context, Effect } from "effect"

/** Least time between two warnings of one kind, unless configured. */
export const DEFAULT_INTERVAL = 10_000

/** A warning, logged unless one of the same kind (`what`) was logged less than the interval ago. */
export type Warn = (what: string, message: string, annotations?: Record<string, unknown>) => Effect.Effect<void>

/**
 * A rate limiter over `now` (Effect's clock for the runtime, the wall clock
 * for connections). The returned effect logs at the caller's fiber: no fiber
 * is started for a warning.
 */
export const make = (now: () => number, interval: number = DEFAULT_INTERVAL): Warn => {
  const lastLogged = new Map<string, number>()
  return (what, message, annotations) =>
    Effect.suspend(() => {
      const time = now()
      const last = lastLogged.get(what)
      if (last !== undefined && time - last < interval) return Effect.void
      lastLogged.set(what, time)
      const log = Effect.logWarning(message)
      return annotations === undefined ? log : Effect.annotateLogs(log, annotations)
    })
}

/**
 * `warn`, for callers outside any fiber (event listeners, synchronous
 * hooks): the log is written synchronously with `context`, and no fiber
 * outlives the call.
 */
export const unsafe =
  (warn: Warn, context: Context.Context<never>) =>
  (what: string, message: string, annotations?: Record<string, unknown>): void => {
    Effect.runSyncWith(context)(warn(what, message, annotations))
  }
