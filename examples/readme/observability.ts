import { Cachet, Keyspace, Strategy } from "cachet"
import { Effect, Layer, Queue, Schema, Tracer } from "effect"

const Products = Keyspace.make({
  name: "product",
  key: "{id}",
  value: Schema.Struct({ id: Schema.Number, title: Schema.String }),
  ttl: "1 minute"
})
const findProduct = (id: number) => Effect.succeed({ id, title: `product ${id}` })
const getProduct = (id: number) =>
  findProduct(id).pipe(Strategy.cacheAside(Products, { id }), Effect.withSpan("GET /products/:id"))

// Spans go to the Tracer in context. Here one that keeps them; in production
// effect/observability's Otlp.layerJson({ baseUrl }) exports them.
const spans: Array<Tracer.NativeSpan> = []
const KeepSpans = Layer.succeed(
  Tracer.Tracer,
  Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
)

const program = Effect.scoped(
  Effect.gen(function* () {
    // A bounded queue of events for this scope (Cachet.events is the same as a Stream).
    const events = yield* Cachet.subscribeEvents
    yield* getProduct(1) // miss: a cachet.load span, and a store write
    yield* getProduct(1) // hit: no span (tracing "loads", the default)
    const seen = yield* Queue.takeAll(events)
    const health = yield* Cachet.health
    console.log(`spans: ${spans.map((s) => s.name).join(", ")}`)
    console.log(`load: ${spans.find((s) => s.name === "cachet.load")?.attributes.get("cachet.result")}`)
    console.log(`events: ${seen.map((e) => e._tag).join(", ")}`)
    console.log(`health: ${health.status}, store ${health.store.name}, journal ${health.journalDepth}`)
  })
)

Effect.runPromise(program.pipe(Effect.provide(Cachet.layerMemory({ tracing: "loads" })), Effect.provide(KeepSpans)))
