import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Schema } from "effect"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as ChaosStore from "../../src/testing/ChaosStore.ts"
import { captureLogs } from "../strategies/helpers.ts"

// Issue #10, cases 5 and 7: what a reader sees is what the read path
// decides, whichever accessor reads it; and what a loader returns is
// cached or refused loudly, never dropped in silence.

class User extends Schema.Class<User>("coherence/User")({ id: Schema.Number, name: Schema.String }) {}
const Users = Keyspace.make({ name: "coherence-user", key: "{id}", value: User, ttl: "1 minute" })

describe("case 5: getMany shares the read path's visibility", () => {
  it.effect("after a writeThrough that could neither set nor delete, get and getMany both read None", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosStore.ChaosControl
      yield* Cachet.set(Users, { id: 1 }, new User({ id: 1, name: "old" }))
      assert.isTrue(Option.isSome(yield* Cachet.get(Users, { id: 1 })))
      // The source takes the new value; the store takes nothing.
      yield* chaos.set({ failRate: 1, ops: ["set", "setMany", "delete", "deleteMany"] })
      yield* Effect.succeed(new User({ id: 1, name: "new" })).pipe(Strategy.writeThrough(Users, { id: 1 }))
      yield* chaos.set({ failRate: 0 })
      assert.isTrue(Option.isNone(yield* Cachet.get(Users, { id: 1 })), "get hides the old entry")
      const many = yield* Cachet.getMany(Users, [{ id: 1 }])
      assert.isTrue(Option.isNone(many[0]!), "getMany hides it too")
    }).pipe(
      Effect.provide(
        Cachet.layer().pipe(
          Layer.provideMerge(ChaosStore.layer({ failRate: 0 })),
          Layer.provide(CacheStore.layerMemory())
        )
      )
    )
  )
})

describe("case 7: a Schema.Class keyspace fed plain objects", () => {
  it.effect("a loader's plain { id, name } is cached as a User instance (no encode error)", () =>
    Effect.gen(function* () {
      let loads = 0
      const row = (id: number) =>
        Effect.sync(() => {
          loads++
          return { id, name: `row ${id}` } as User // what an SQL client returns
        })
      yield* row(1).pipe(Strategy.cacheAside(Users, { id: 1 }))
      const again = yield* row(1).pipe(Strategy.cacheAside(Users, { id: 1 }))
      assert.strictEqual(loads, 1, "the second read is a hit")
      assert.instanceOf(again, User)
      assert.strictEqual(again.name, "row 1")
      const stats = (yield* Cachet.stats).keyspaces["coherence-user"]!
      assert.strictEqual(stats.sets, 1)
      assert.strictEqual(stats.encodeErrors, 0)
    }).pipe(Effect.provide(Cachet.layerMemory()))
  )

  it.effect("a value that is neither is refused loudly: counted, and the warning says why", () => {
    const logs = captureLogs()
    return Effect.gen(function* () {
      yield* Effect.succeed({ id: 2 } as User).pipe(Strategy.cacheAside(Users, { id: 2 }))
      const stats = (yield* Cachet.stats).keyspaces["coherence-user"]!
      assert.strictEqual(stats.sets, 0)
      assert.strictEqual(stats.encodeErrors, 1)
      const warning = logs.messages.find((m) => m.includes("does not satisfy the keyspace Schema"))
      assert.isDefined(warning)
      assert.include(warning!, "name", "the warning names the missing field")
    }).pipe(Effect.provide(Cachet.layerMemory()), Effect.provide(logs.layer))
  })
})
