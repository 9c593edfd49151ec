/**
 * Shared fixtures of the observability tests: a keyspace with a stale
 * window, an in-memory tracer that keeps every span, and a settle step.
 */
import { Effect, Schema, Tracer } from "effect"
import * as Keyspace from "../../src/Keyspace.ts"

/** Ten seconds fresh, then a minute stale. */
export const Items = Keyspace.make({
  name: "item",
  key: "{id}",
  value: Schema.Number,
  ttl: "10 seconds",
  staleFor: "1 minute"
})

/** An in-memory tracer: every span it starts, in start order. */
export const recordingTracer = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  const named = (name: string) => spans.filter((s) => s.name === name)
  const cachet = () => spans.filter((s) => s.name.startsWith("cachet."))
  return { spans, tracer, named, cachet }
}

/** Lets forked fibers run without moving the clock. */
export const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})
