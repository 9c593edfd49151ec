import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Schedule, Tracer } from "effect"
import { TestClock } from "effect/testing"
import * as CacheStoreModule from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Strategy from "../../src/Strategy.ts"
import { Items, recordingTracer, settle } from "./observe.ts"

/** Runs `program` on a memory runtime with `options`, every fiber on the recording tracer. */
const traced = <A, E>(
  options: Cachet.Options,
  program: (t: ReturnType<typeof recordingTracer>) => Effect.Effect<A, E, Cachet.Cachet>
) =>
  Effect.gen(function* () {
    const t = recordingTracer()
    return yield* program(t).pipe(
      Effect.provide(Cachet.layerMemory(options)),
      Effect.provide(Layer.succeed(Tracer.Tracer, t.tracer))
    )
  })

const parentName = (span: Tracer.NativeSpan) => {
  const parent = Option.getOrUndefined(span.parent)
  return parent?._tag === "Span" ? parent.name : undefined
}

describe("tracing: loads (default)", () => {
  it.effect("a miss is a cachet.load span under the caller's span, with its store write; a hit is no span", () =>
    traced({}, (t) =>
      Effect.gen(function* () {
        const read = Effect.succeed(7).pipe(Strategy.cacheAside(Items, { id: 1 }))
        assert.strictEqual(yield* Effect.withSpan(read, "request"), 7)
        const loads = t.named("cachet.load")
        assert.strictEqual(loads.length, 1)
        const load = loads[0]!
        assert.strictEqual(parentName(load), "request", "the load fiber keeps the caller's span as parent")
        assert.strictEqual(load.attributes.get("cachet.keyspace"), "item")
        assert.strictEqual(load.attributes.get("cachet.result"), "miss")
        assert.isFalse(load.attributes.has("cachet.key"), "no key values unless asked")
        assert.strictEqual(load.status._tag, "Ended")
        const sets = t.named("cachet.store.set")
        assert.strictEqual(sets.length, 1)
        assert.strictEqual(parentName(sets[0]!), "cachet.load")

        const before = t.cachet().length
        for (let i = 0; i < 5; i++) assert.strictEqual(yield* Effect.withSpan(read, "request"), 7)
        assert.strictEqual(t.cachet().length, before, "hits start no cachet span")
      })
    )
  )

  it.effect("a load of a stale entry says stale; a stale-while-revalidate reload is cachet.revalidate", () =>
    traced({}, (t) =>
      Effect.gen(function* () {
        yield* Cachet.set(Items, { id: 1 }, 1)
        yield* Cachet.set(Items, { id: 2 }, 2)
        yield* TestClock.adjust("15 seconds") // both stale
        assert.strictEqual(yield* Effect.succeed(10).pipe(Strategy.cacheAside(Items, { id: 1 })), 10)
        assert.strictEqual(yield* Effect.succeed(20).pipe(Strategy.staleWhileRevalidate(Items, { id: 2 })), 2)
        yield* settle
        const load = t.named("cachet.load")
        assert.deepStrictEqual(
          load.map((s) => s.attributes.get("cachet.result")),
          ["stale"]
        )
        const revalidate = t.named("cachet.revalidate")
        assert.strictEqual(revalidate.length, 1)
        assert.strictEqual(revalidate[0]!.attributes.get("cachet.result"), "stale")
        assert.strictEqual(revalidate[0]!.status._tag, "Ended")
        assert.deepStrictEqual(yield* Cachet.get(Items, { id: 2 }), Option.some(20))
      })
    )
  )

  it.effect("a load whose key is written meanwhile is fenced", () =>
    traced({}, (t) =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const reader = yield* Effect.forkChild(
          Deferred.await(gate).pipe(Effect.as(1), Strategy.cacheAside(Items, { id: 3 }))
        )
        yield* settle
        yield* Cachet.set(Items, { id: 3 }, 99) // newer than the load's start
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(reader), 1)
        const load = t.named("cachet.load")
        assert.strictEqual(load.length, 1)
        assert.strictEqual(load[0]!.attributes.get("cachet.result"), "fenced")
        assert.deepStrictEqual(yield* Cachet.get(Items, { id: 3 }), Option.some(99), "the explicit write stayed")
      })
    )
  )

  it.effect("a failed load ends its span with the failure", () =>
    traced({}, (t) =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(Effect.fail("db down").pipe(Strategy.cacheAside(Items, { id: 4 })))
        assert.isTrue(exit._tag === "Failure")
        const load = t.named("cachet.load")[0]!
        assert.strictEqual(load.status._tag, "Ended")
        assert.strictEqual(load.status._tag === "Ended" && load.status.exit._tag, "Failure", "the span ends failed")
        assert.strictEqual(load.attributes.get("cachet.result"), "miss")
      })
    )
  )

  it.effect("invalidations and write-behind flushes are spanned", () =>
    traced({ writeBehind: { flushInterval: "1 second", retry: Schedule.recurs(0) } }, (t) =>
      Effect.gen(function* () {
        yield* Cachet.invalidate(Items, { id: 1 })
        yield* Cachet.invalidateKeyspace(Items)
        yield* Cachet.invalidateTag("t")
        assert.strictEqual(t.named("cachet.store.delete").length, 1)
        assert.strictEqual(t.named("cachet.store.deletePrefix")[0]!.attributes.get("cachet.keyspace"), "item")
        assert.strictEqual(t.named("cachet.store.setTagTime").length, 1)

        yield* Strategy.writeBehind(Items, { id: 5 }, 5, Effect.void)
        yield* Strategy.writeBehind(Items, { id: 6 }, 6, Effect.void)
        yield* Strategy.flushWriteBehind
        const flush = t.named("cachet.writeBehind.flush")
        assert.strictEqual(flush.length, 1)
        assert.strictEqual(flush[0]!.attributes.get("cachet.batch"), 2)
      })
    )
  )
})

describe("tracing: all, off, keys", () => {
  it.effect('"all" spans every read with its result, hits included', () =>
    traced({ tracing: "all" }, (t) =>
      Effect.gen(function* () {
        const read = Effect.succeed(7).pipe(Strategy.cacheAside(Items, { id: 1 }))
        yield* read
        yield* read
        yield* TestClock.adjust("15 seconds")
        yield* Effect.succeed(8).pipe(Strategy.staleWhileRevalidate(Items, { id: 1 }))
        yield* settle
        assert.deepStrictEqual(
          t.named("cachet.get").map((s) => s.attributes.get("cachet.result")),
          ["miss", "hit", "stale"]
        )
        assert.strictEqual(parentName(t.named("cachet.load")[0]!), "cachet.get")
      })
    )
  )

  it.effect('"off" starts no cachet span at all', () =>
    traced({ tracing: "off", writeBehind: { flushInterval: "1 second" } }, (t) =>
      Effect.gen(function* () {
        yield* Effect.succeed(7).pipe(Strategy.cacheAside(Items, { id: 1 }))
        yield* Cachet.invalidate(Items, { id: 1 })
        yield* Strategy.writeBehind(Items, { id: 5 }, 5, Effect.void)
        yield* Strategy.flushWriteBehind
        assert.deepStrictEqual(
          t.cachet().map((s) => s.name),
          []
        )
      })
    )
  )

  it.effect("traceKeys adds the key to load and store spans", () =>
    traced({ traceKeys: true }, (t) =>
      Effect.gen(function* () {
        yield* Effect.succeed(7).pipe(Strategy.cacheAside(Items, { id: 42 }))
        assert.strictEqual(t.named("cachet.load")[0]!.attributes.get("cachet.key"), "item:42")
        assert.strictEqual(t.named("cachet.store.set")[0]!.attributes.get("cachet.key"), "item:42")
      })
    )
  )

  it("an unknown tracing mode fails at the call, naming the option", () => {
    assert.throws(
      () => Cachet.layer({ tracing: "some" as never }),
      /option "tracing" must be "loads", "all" or "off", got some/
    )
  })
})

describe("tracing without a backend (effect's native tracer)", () => {
  // The native tracer exports nothing: cachet starts no span under it (see
  // `whenTraced`). What a program can still see is the current span: inside
  // a loader it is the caller's, not a cachet.load span.
  const spanInLoader = (options: Cachet.Options, id: number) =>
    Effect.gen(function* () {
      let seen: string | undefined = "(none read)"
      const loader = Effect.map(Effect.option(Effect.currentSpan), (span) => {
        seen = Option.isSome(span) ? span.value.name : undefined
        return 7
      })
      yield* Effect.withSpan(loader.pipe(Strategy.cacheAside(Items, { id })), "request")
      return seen
    }).pipe(Effect.provide(Cachet.layerMemory(options)))

  it.effect("a load starts no span: its loader sees the caller's span", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* spanInLoader({}, 1), "request")
      assert.strictEqual(yield* spanInLoader({ tracing: "all" }, 2), "request")
    })
  )

  it.effect("with a backend the same loader runs inside cachet.load", () =>
    Effect.gen(function* () {
      const t = recordingTracer()
      const seen = yield* spanInLoader({}, 1).pipe(Effect.provide(Layer.succeed(Tracer.Tracer, t.tracer)))
      assert.strictEqual(seen, "cachet.load")
      assert.strictEqual(t.named("cachet.load").length, 1)
      assert.strictEqual(t.named("cachet.store.set").length, 1)
    })
  )
})

describe('tracing "all" over a store outside the process', () => {
  // A store whose `get` counts how often a read of it is built: the span of
  // a remote read is started before the store call, and each read must build
  // (and so issue) that call once, traced or not.
  const counted = Layer.effect(
    CacheStoreModule.CacheStore,
    Effect.map(CacheStoreModule.makeMemory(), (inner) => {
      const store = CacheStoreModule.make({
        ...inner,
        get: (key, codec) => {
          gets++
          return inner.get(key, codec)
        }
      })
      return { ...store, getUnsafe: undefined, getFreshUnsafe: undefined }
    })
  )
  let gets = 0
  const reads = (withBackend: boolean) =>
    Effect.gen(function* () {
      gets = 0
      const t = recordingTracer()
      const read = Effect.succeed(7).pipe(Strategy.cacheAside(Items, { id: 3 }))
      const program = Effect.gen(function* () {
        assert.strictEqual(yield* read, 7)
        assert.strictEqual(yield* read, 7)
      }).pipe(Effect.provide(Cachet.layer({ tracing: "all" }).pipe(Layer.provide(counted))))
      yield* withBackend ? program.pipe(Effect.provide(Layer.succeed(Tracer.Tracer, t.tracer))) : program
      return { gets, spans: t.named("cachet.get").length }
    })

  it.effect("each read builds its store call once, with or without a backend", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* reads(false), { gets: 2, spans: 0 })
      assert.deepStrictEqual(yield* reads(true), { gets: 2, spans: 2 })
    })
  )
})
