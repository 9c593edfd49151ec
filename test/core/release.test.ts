/**
 * A closed runtime is let go of: after its layer closes, nothing cachet keeps
 * (the runtime memo of the hit path, the keyspaces' per-runtime slots, the
 * memoised functions, background fibers) holds its service, its store or
 * their values alive. A process that builds and closes many runtimes (tests,
 * per-tenant layers, hot reloads) does not grow.
 *
 * Collection is real: `--expose-gc` turned on at run time. What is collected
 * is seen through a `FinalizationRegistry`, whose callbacks run as tasks
 * after a collection, so each collection is followed by a macrotask (bounded
 * polling: at most 20 rounds). Not a `WeakRef`: `deref()` keeps its target
 * alive until the job ends, and under vitest that was long enough to look
 * like a leak.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, ManagedRuntime, Schema } from "effect"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as TieredStore from "../../src/redis/TieredStore.ts"
import * as Strategy from "../../src/Strategy.ts"

setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

const Items = Keyspace.make({
  name: "release-item",
  key: "{id}",
  value: Schema.Struct({ id: Schema.Number, payload: Schema.String }),
  ttl: "1 hour",
  staleFor: "1 hour",
  tags: (_, value) => [`group:${value.id % 3}`]
})

type Use = "cacheAside" | "cached" | "staleWhileRevalidate" | "invalidate" | "tiered"

const loadItem = (id: number) => Effect.sync(() => ({ id, payload: "x".repeat(64) }))
// Module-level, as users write them: each keeps the keyspace and its own closures.
const cachedItem = Cachet.cached(Items, (p: { readonly id: number }) => loadItem(p.id), Strategy.cacheAside)
const swrItem = Cachet.cached(Items, (p: { readonly id: number }) => loadItem(p.id), Strategy.staleWhileRevalidate)

/** Objects seen collected, by label. */
const gone = new Set<string>()
const registry = new FinalizationRegistry<string>((label) => gone.add(label))
let probes = 0

/** Watches `target`: its label, for `collected`. */
const watch = (target: object): string => {
  const label = `probe-${probes++}`
  registry.register(target, label)
  return label
}

/** Builds a runtime, uses it, closes it; returns the labels of its service and one of its values. */
const closedRuntime = async (use: Use) => {
  const runtime = ManagedRuntime.make(
    use === "tiered"
      ? Cachet.layer().pipe(Layer.provide(TieredStore.layer({ l2: CacheStore.layerMemory(), bus: false })))
      : Cachet.layerMemory({ capacity: 100 })
  )
  const context = await runtime.context()
  const run = Effect.runPromiseWith(context)
  const service = Context.get(context, Cachet.Cachet)
  for (let round = 0; round < 2; round++) {
    for (let id = 0; id < 10; id++) {
      if (use === "cacheAside" || use === "tiered") await run(loadItem(id).pipe(Strategy.cacheAside(Items, { id })))
      else if (use === "cached") await run(cachedItem({ id }))
      else if (use === "staleWhileRevalidate") await run(swrItem({ id }))
      else {
        await run(cachedItem({ id }))
        await run(Cachet.invalidateTag("group:1"))
      }
    }
  }
  const value = await run(cachedItem({ id: 1 }))
  assert.strictEqual(value.id, 1)
  const labels = { service: watch(service), value: watch(value) }
  await runtime.dispose()
  return labels
}

/** Collects until both are gone or 20 rounds passed; whether each was collected. */
const collected = async (labels: { readonly service: string; readonly value: string }) => {
  for (let i = 0; i < 20 && !(gone.has(labels.service) && gone.has(labels.value)); i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return { service: gone.has(labels.service), value: gone.has(labels.value) }
}

describe("a closed runtime is released", () => {
  for (const use of ["cacheAside", "cached", "staleWhileRevalidate", "invalidate", "tiered"] as const) {
    it(`after reads through ${use === "tiered" ? "a TieredStore (memory L2)" : use}, its service and values can be collected`, async () => {
      const labels = await closedRuntime(use)
      assert.deepStrictEqual(await collected(labels), { service: true, value: true })
    })
  }

  // The probe's own check: objects still referenced (here by this test) are
  // reported as not collected, so a "collected" above is not the probe failing.
  it("the probe reports a runtime and a value still referenced as not collected", async () => {
    const runtime = ManagedRuntime.make(Cachet.layerMemory({ capacity: 100 }))
    const context = await runtime.context()
    const value = await Effect.runPromiseWith(context)(cachedItem({ id: 1 }))
    const labels = { service: watch(Context.get(context, Cachet.Cachet)), value: watch(value) }
    assert.deepStrictEqual(await collected(labels), { service: false, value: false })
    await runtime.dispose()
  })
})
