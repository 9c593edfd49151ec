/**
 * Automatic batching of single-key reads: the reads of one node issued in the
 * same tick (before the microtask queue drains) go out as one multi-key read
 * (`MGET` on a standalone server; per slot on a Cluster), with one deadline
 * for the batch instead of one per read. A batch is run per node, so a node
 * that fails fails only the reads of its keys.
 *
 * Each caller keeps its own semantics: it waits for its batch (at most the
 * batch's deadline, which started after the caller asked), gets its own
 * key's reply (or the batch's error), and decodes it itself (`answer`, run
 * as the batch's reply is handed out: the caller resumes once, with its
 * decoded value, instead of resuming with the reply and then decoding);
 * interrupting a caller only stops it waiting.
 *
 * @internal
 */
import { Cause, type Context, Effect, Exit } from "effect"
import type { CacheStoreError } from "../../CacheError.ts"
import { MAX_KEYS_PER_CALL } from "./io.ts"

interface Waiter<T> {
  readonly key: string
  readonly resume: (effect: Effect.Effect<any, CacheStoreError>) => void
  /** What the caller makes of its reply (`one`); `many`'s waiters are resumed with the reply itself. */
  readonly answer: ((raw: T | null) => Effect.Effect<unknown, CacheStoreError>) | undefined
  done: boolean
}

/** Reads keys through the batcher: one key, or several (each with its node), answered together. */
export interface Batcher<T> {
  /**
   * One key's reply, made into the caller's answer as the batch's reply is
   * handed out (the key's node is looked up when the read runs).
   */
  readonly one: <A>(
    key: string,
    answer: (raw: T | null) => Effect.Effect<A, CacheStoreError>
  ) => Effect.Effect<A, CacheStoreError>
  /**
   * `one`, with more keys read in the same tick (each with its node):
   * `answer` gets the key's reply and theirs; a batch of the extra keys that
   * failed gives `undefined` for them (the caller reads them again if it
   * needs them), a failure of the key's own batch fails the read.
   */
  readonly oneWith: <A>(
    key: string,
    extraNodes: ReadonlyArray<string>,
    extraKeys: ReadonlyArray<string>,
    answer: (raw: T | null, extras: ReadonlyArray<T | null> | undefined) => Effect.Effect<A, CacheStoreError>
  ) => Effect.Effect<A, CacheStoreError>
  readonly many: (
    nodes: ReadonlyArray<string>,
    keys: ReadonlyArray<string>
  ) => Effect.Effect<Array<T | null>, CacheStoreError>
}

/** Reads larger than this go out in several batches. */
const MAX_BATCH = MAX_KEYS_PER_CALL

/**
 * A batcher over `fetch` (a multi-key read of one node's keys, aligned with
 * them), whose batches run as fibers with `context` (the store layer's:
 * its logger and tracer, not one caller's).
 */
export const make = <T>(
  fetch: (node: string, keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<T | null>, CacheStoreError>,
  context: Context.Context<never>,
  /** The node that serves a key (looked up when a read runs: a failover may move it). */
  nodeOf: (key: string) => string
): Batcher<T> => {
  const run = Effect.runForkWith(context)
  let pending = new Map<string, Array<Waiter<T>>>()
  let scheduled = false

  const flush = () => {
    scheduled = false
    const batches = pending
    pending = new Map()
    for (const [node, waiters] of batches) {
      for (let from = 0; from < waiters.length; from += MAX_BATCH) {
        dispatch(node, from === 0 && waiters.length <= MAX_BATCH ? waiters : waiters.slice(from, from + MAX_BATCH))
      }
    }
  }

  const dispatch = (node: string, waiters: ReadonlyArray<Waiter<T>>) => {
    // One fetch per distinct key.
    const index = new Map<string, number>()
    const keys: Array<string> = []
    for (const w of waiters) {
      if (w.done || index.has(w.key)) continue
      index.set(w.key, keys.length)
      keys.push(w.key)
    }
    if (keys.length === 0) return
    const fiber = run(fetch(node, keys))
    fiber.addObserver((exit) => {
      for (const w of waiters) {
        if (w.done) continue
        w.done = true
        if (Exit.isSuccess(exit)) {
          const raw = exit.value[index.get(w.key)!] ?? null
          if (w.answer === undefined) w.resume(Exit.succeed(raw))
          else {
            // An answer that throws fails its own caller, not the batch's others.
            let answered: Effect.Effect<unknown, CacheStoreError>
            try {
              answered = w.answer(raw)
            } catch (defect) {
              answered = Exit.die(defect)
            }
            w.resume(answered)
          }
        } else if (Cause.hasInterruptsOnly(exit.cause))
          w.resume(Exit.die(new Error("cachet: a batched read was interrupted")))
        else w.resume(exit as Exit.Exit<never, CacheStoreError>)
      }
    })
  }

  const enqueue = (node: string, waiter: Waiter<T>) => {
    const list = pending.get(node)
    if (list === undefined) pending.set(node, [waiter])
    else list.push(waiter)
    if (!scheduled) {
      scheduled = true
      queueMicrotask(flush)
    }
  }

  const one: Batcher<T>["one"] = <A>(key: string, answer: (raw: T | null) => Effect.Effect<A, CacheStoreError>) =>
    Effect.callback<A, CacheStoreError>((resume) => {
      const waiter: Waiter<T> = { key, resume, answer, done: false }
      enqueue(nodeOf(key), waiter)
      return Effect.sync(() => {
        waiter.done = true
      })
    })

  const many: Batcher<T>["many"] = (nodes, keys) =>
    Effect.callback<Array<T | null>, CacheStoreError>((resume) => {
      const out: Array<T | null> = new Array(keys.length).fill(null)
      let left = keys.length
      let failed = false
      const waiters = keys.map((key, i): Waiter<T> => {
        const waiter: Waiter<T> = {
          key,
          answer: undefined,
          done: false,
          resume: (effect) => {
            // `many`'s waiters have no answer: they are resumed with an Exit.
            const exit = effect as Exit.Exit<T | null, CacheStoreError>
            if (failed) return
            if (Exit.isFailure(exit)) {
              failed = true
              for (const w of waiters) w.done = true
              return resume(exit as Exit.Exit<never, CacheStoreError>)
            }
            out[i] = exit.value
            if (--left === 0) resume(Exit.succeed(out))
          }
        }
        return waiter
      })
      if (keys.length === 0) return resume(Exit.succeed(out))
      for (let i = 0; i < waiters.length; i++) enqueue(nodes[i]!, waiters[i]!)
      return Effect.sync(() => {
        for (const w of waiters) w.done = true
      })
    })

  const oneWith: Batcher<T>["oneWith"] = <A>(
    key: string,
    extraNodes: ReadonlyArray<string>,
    extraKeys: ReadonlyArray<string>,
    answer: (raw: T | null, extras: ReadonlyArray<T | null> | undefined) => Effect.Effect<A, CacheStoreError>
  ) =>
    Effect.callback<A, CacheStoreError>((resume) => {
      const extras: Array<T | null> = new Array(extraKeys.length).fill(null)
      let extrasFailed = false
      let own: Exit.Exit<T | null, CacheStoreError> | undefined
      let left = extraKeys.length + 1
      // Each waiter is resumed once, and none after an interruption (the
      // batch skips waiters marked done), so the last one to answer settles.
      const settle = () => {
        if (--left !== 0) return
        if (Exit.isFailure(own!)) return resume(own as Exit.Exit<never, CacheStoreError>)
        let answered: Effect.Effect<A, CacheStoreError>
        try {
          answered = answer(own!.value, extrasFailed ? undefined : extras)
        } catch (defect) {
          answered = Exit.die(defect)
        }
        resume(answered)
      }
      const waiters: Array<Waiter<T>> = [
        {
          key,
          answer: undefined,
          done: false,
          resume: (effect) => {
            own = effect as Exit.Exit<T | null, CacheStoreError>
            settle()
          }
        },
        ...extraKeys.map(
          (extraKey, i): Waiter<T> => ({
            key: extraKey,
            answer: undefined,
            done: false,
            resume: (effect) => {
              const exit = effect as Exit.Exit<T | null, CacheStoreError>
              if (Exit.isSuccess(exit)) extras[i] = exit.value
              else extrasFailed = true
              settle()
            }
          })
        )
      ]
      enqueue(nodeOf(key), waiters[0]!)
      for (let i = 0; i < extraKeys.length; i++) enqueue(extraNodes[i]!, waiters[i + 1]!)
      return Effect.sync(() => {
        for (const w of waiters) w.done = true
      })
    })

  return { one, oneWith, many }
}
