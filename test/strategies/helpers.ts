import { Clock, Effect, Layer, Logger } from "effect"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"

/** Counts store writes, and those made once `closing` was set. */
export interface WriteLog {
  closing: boolean
  writes: number
  writesAfterClose: number
}

export const makeWriteLog = (): WriteLog => ({ closing: false, writes: 0, writesAfterClose: 0 })

/** A memory store that records every write (set, delete, tag time). */
export const recordingStore = (log: WriteLog): Layer.Layer<CacheStore.CacheStore> =>
  Layer.effect(
    CacheStore.CacheStore,
    Effect.map(CacheStore.makeMemory(), (inner) => {
      const note = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.suspend(() => {
          log.writes++
          if (log.closing) log.writesAfterClose++
          return effect
        })
      return CacheStore.make({
        ...inner,
        name: "recording",
        set: (key, entry, codec) => note(inner.set(key, entry, codec)),
        setMany: (entries, codec) => note(inner.setMany(entries, codec)),
        delete: (key) => note(inner.delete(key)),
        deleteMany: (keys) => note(inner.deleteMany(keys)),
        deletePrefix: (prefix) => note(inner.deletePrefix(prefix)),
        setTagTime: (tag, time, retain) => note(inner.setTagTime(tag, time, retain))
      })
    })
  )

/** The runtime over a ChaosStore over memory; ChaosControl in context. */
export const chaosLayer = (options: ChaosStore.Options, runtime?: Cachet.Options) =>
  Cachet.layer(runtime).pipe(Layer.provideMerge(ChaosStore.layer(options)), Layer.provide(CacheStore.layerMemory()))

/** A logger that keeps messages, for asserting on warnings. */
export const captureLogs = () => {
  const messages: Array<string> = []
  const layer = Logger.layer([
    Logger.make((options) => {
      const message = options.message
      messages.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
    })
  ])
  return { messages, layer }
}

/** Lets forked fibers run, without moving the clock. */
export const settle = Effect.gen(function* () {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow
})

/** A loader that takes `millis` of clock time and answers with the time it started. */
export const timedLoader = (millis: number) => {
  const starts: Array<number> = []
  const loader = Effect.gen(function* () {
    const at = yield* Clock.currentTimeMillis
    starts.push(at)
    yield* Effect.sleep(millis)
    return at
  })
  return { starts, loader }
}
