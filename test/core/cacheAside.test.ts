import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as CacheStore from "../../src/CacheStore.ts"
import * as Cachet from "../../src/Cachet.ts"
import { cacheAsideSuite } from "./cacheAside.suite.ts"

cacheAsideSuite("memory", CacheStore.layerMemory(), { inProcess: true, settle: Effect.yieldNow })

describe("Cachet.layer options", () => {
  it("invalid options fail at construction and name the option", () => {
    assert.throws(() => Cachet.layer({ tagRetention: 0 }), /"tagRetention"/)
    assert.throws(() => Cachet.layer({ logInterval: "never" as never }), /"logInterval"/)
  })
})
