import type { Effect, Layer, Stream } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import type * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as RedisStore from "../../src/redis/RedisStore.ts"
import * as TieredStore from "../../src/redis/TieredStore.ts"

// Tracing, events, health and compression add nothing to E or R: they are
// options and reads that never fail.
describe("observability typing", () => {
  it("health and events need only the runtime and never fail", () => {
    expectTypeOf(Cachet.health).toEqualTypeOf<Effect.Effect<Cachet.Health, never, Cachet.Cachet>>()
    expectTypeOf(Cachet.events).toEqualTypeOf<Stream.Stream<Cachet.CacheEvent, never, Cachet.Cachet>>()
  })

  it("tracing options leave the layer's type alone", () => {
    expectTypeOf(Cachet.layer({ tracing: "all", traceKeys: true, eventsCapacity: 10 })).toEqualTypeOf<
      Layer.Layer<Cachet.Cachet, never, CacheStore.CacheStore>
    >()
    expectTypeOf(Cachet.layerMemory({ tracing: "off" })).toEqualTypeOf<
      Layer.Layer<Cachet.Cachet | CacheStore.CacheStore>
    >()
    // @ts-expect-error an unknown mode
    Cachet.layer({ tracing: "some" })
  })

  it("compression leaves the store layers' types alone", () => {
    expectTypeOf(
      RedisStore.layer({ url: "redis://127.0.0.1:6379", prefix: "app", compress: { codec: "zstd", minBytes: 512 } })
    ).toEqualTypeOf<Layer.Layer<CacheStore.CacheStore>>()
    expectTypeOf(
      TieredStore.layer({ l2: { url: "redis://127.0.0.1:6379", prefix: "app", compress: {} }, lease: false })
    ).toEqualTypeOf<Layer.Layer<CacheStore.CacheStore | TieredStore.Tiered>>()
    // @ts-expect-error an unknown codec
    RedisStore.layer({ url: "redis://127.0.0.1:6379", prefix: "app", compress: { codec: "lz4" } })
  })

  it("events are a union on _tag", () => {
    expectTypeOf<Cachet.CacheEvent["_tag"]>().toEqualTypeOf<
      "Hit" | "Miss" | "Stale" | "Load" | "Set" | "Delete" | "Invalidate" | "BusReset" | "DeadLetter"
    >()
  })
})
