import { Context, Effect, type Layer, Schema } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import type {
  CacheEncodeError,
  CacheKeyError,
  CacheLoadTimeout,
  CacheShuttingDown,
  CacheStoreError
} from "../../src/CacheError.ts"
import type * as Cachet from "../../src/Cachet.ts"
import * as Keyspace from "../../src/Keyspace.ts"
import * as Strategy from "../../src/Strategy.ts"

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String, orgId: Schema.Number }) {}
class DbError extends Schema.TaggedError<DbError>()("DbError", {}) {}
class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { id: Schema.Number }) {}
class Db extends Context.Service<
  Db,
  {
    readonly findUser: (id: number) => Effect.Effect<User, DbError>
    readonly saveUser: (user: User) => Effect.Effect<User, DbError>
  }
>()("Db") {}

const Users = Keyspace.make({ name: "user", key: "user:{id}", value: User, ttl: "5 minutes", staleFor: "1 hour" })
const Lookups = Keyspace.make({
  name: "lookup",
  key: "{id}",
  value: User,
  ttl: "5 minutes",
  negative: { ttl: "10 seconds", error: NotFound }
})
const findUser = (id: number) => Effect.flatMap(Effect.service(Db), (db) => db.findUser(id))
const saveUser = (user: User) => Effect.flatMap(Effect.service(Db), (db) => db.saveUser(user))
declare const ada: User

type Read = Effect.Effect<User, DbError, Db | Cachet.Cachet>
type ReadStrict = Effect.Effect<User, DbError | CacheStoreError, Db | Cachet.Cachet>

describe("read strategies keep A, E, R and add only Cachet", () => {
  it("staleWhileRevalidate", () => {
    expectTypeOf(findUser(1).pipe(Strategy.staleWhileRevalidate(Users, { id: 1 }))).toEqualTypeOf<Read>()
    expectTypeOf(Strategy.staleWhileRevalidate(findUser(1), Users, { id: 1 })).toEqualTypeOf<Read>()
    expectTypeOf(
      findUser(1).pipe(Strategy.staleWhileRevalidate(Users, { id: 1 }, { onStoreError: "fail" }))
    ).toEqualTypeOf<ReadStrict>()
  })

  it("refreshAhead", () => {
    expectTypeOf(findUser(1).pipe(Strategy.refreshAhead(Users, { id: 1 }))).toEqualTypeOf<Read>()
    expectTypeOf(
      findUser(1).pipe(Strategy.refreshAhead(Users, { id: 1 }, { at: 0.8, jitter: 0.1 }))
    ).toEqualTypeOf<Read>()
    expectTypeOf(Strategy.refreshAhead(findUser(1), Users, { id: 1 }, { beta: 1 })).toEqualTypeOf<Read>()
    expectTypeOf(
      Strategy.refreshAhead(findUser(1), Users, { id: 1 }, { at: 0.5, onStoreError: "fail" })
    ).toEqualTypeOf<ReadStrict>()
  })

  it("readOnly, bypass, auto", () => {
    expectTypeOf(findUser(1).pipe(Strategy.readOnly(Users, { id: 1 }))).toEqualTypeOf<Read>()
    expectTypeOf(Strategy.readOnly(findUser(1), Users, { id: 1 }, { onStoreError: "fail" })).toEqualTypeOf<ReadStrict>()
    expectTypeOf(findUser(1).pipe(Strategy.bypass(Users, { id: 1 }))).toEqualTypeOf<Read>()
    expectTypeOf(Strategy.bypass(findUser(1), Users, { id: 1 })).toEqualTypeOf<Read>()
    expectTypeOf(findUser(1).pipe(Strategy.auto(Users, { id: 1 }))).toEqualTypeOf<Read>()
    expectTypeOf(Strategy.auto(findUser(1), Users, { id: 1 })).toEqualTypeOf<Read>()
  })

  it("add the negative-caching error of the keyspace", () => {
    expectTypeOf(findUser(1).pipe(Strategy.staleWhileRevalidate(Lookups, { id: 1 }))).toEqualTypeOf<
      Effect.Effect<User, DbError | NotFound, Db | Cachet.Cachet>
    >()
  })

  it("reject a loader of another type", () => {
    // @ts-expect-error a number is not a User
    Effect.succeed(42).pipe(Strategy.staleWhileRevalidate(Users, { id: 1 }))
    // @ts-expect-error a number is not a User
    Effect.succeed(42).pipe(Strategy.refreshAhead(Users, { id: 1 }))
    // @ts-expect-error a number is not a User
    Strategy.writeThrough(Effect.succeed(42), Users, { id: 1 })
  })

  it("are Strategy values", () => {
    expectTypeOf(Strategy.staleWhileRevalidate).toExtend<Strategy.Strategy>()
    expectTypeOf(Strategy.refreshAhead).toExtend<Strategy.Strategy>()
    expectTypeOf(Strategy.readOnly).toExtend<Strategy.Strategy>()
    expectTypeOf(Strategy.bypass).toExtend<Strategy.Strategy>()
    expectTypeOf(Strategy.auto).toExtend<Strategy.Strategy>()
    const early: Strategy.Strategy = (keyspace, params) => Strategy.refreshAhead(keyspace, params, { at: 0.5 })
    expectTypeOf(Strategy.layer(Users, early)).toEqualTypeOf<Layer.Layer<never>>()
    expectTypeOf(Strategy.layerDefault(Strategy.bypass)).toEqualTypeOf<Layer.Layer<never>>()
    // @ts-expect-error strict mode adds CacheStoreError, which a Strategy value cannot carry
    const strict: Strategy.Strategy = (ks, p) => Strategy.cacheAside(ks, p, { onStoreError: "fail" })
    void strict
  })
})

describe("write strategies", () => {
  it("writeThrough keeps A, E, R (no negative error: it writes) and adds only Cachet", () => {
    const save = (u: User) => saveUser(u).pipe(Strategy.writeThrough(Users, { id: u.id }))
    expectTypeOf(save(ada)).toEqualTypeOf<Read>()
    expectTypeOf(Strategy.writeThrough(saveUser(ada), Lookups, { id: 1 })).toEqualTypeOf<Read>()
    expectTypeOf(
      saveUser(ada).pipe(Strategy.writeThrough(Users, { id: 1 }, { onStoreError: "fail" }))
    ).toEqualTypeOf<ReadStrict>()
  })

  it("writeBehind: the writer's R is required at the call; E lists only why the call can be refused", () => {
    type Refused = CacheShuttingDown | Strategy.WriteBehindQueueFull | CacheEncodeError | CacheKeyError
    expectTypeOf(Strategy.writeBehind(Users, { id: 1 }, ada, saveUser(ada))).toEqualTypeOf<
      Effect.Effect<void, Refused, Db | Cachet.Cachet>
    >()
    expectTypeOf(Strategy.writeBehind(Users, { id: 1 }, ada, (u) => saveUser(u))).toEqualTypeOf<
      Effect.Effect<void, Refused, Db | Cachet.Cachet>
    >()
    expectTypeOf(Strategy.writeBehind(Users, { id: 1 }, ada, saveUser, { onStoreError: "fail" })).toEqualTypeOf<
      Effect.Effect<void, Refused | CacheStoreError, Db | Cachet.Cachet>
    >()
    expectTypeOf(Strategy.deleteBehind(Users, { id: 1 }, Effect.void)).toEqualTypeOf<
      Effect.Effect<void, CacheShuttingDown | Strategy.WriteBehindQueueFull | CacheKeyError, Cachet.Cachet>
    >()
    expectTypeOf(Strategy.flushWriteBehind).toEqualTypeOf<Effect.Effect<void, never, Cachet.Cachet>>()
  })

  it("writeBehind requires a writer and a value of the keyspace's type", () => {
    // @ts-expect-error the writer takes a string, the keyspace holds Users
    Strategy.writeBehind(Users, { id: 1 }, ada, (name: string) => Effect.log(name))
    // @ts-expect-error the value is not a User
    Strategy.writeBehind(Users, { id: 1 }, { name: "Ada" }, saveUser)
    // @ts-expect-error wrong parameters
    Strategy.writeBehind(Users, { userId: 1 }, ada, saveUser)
  })
})

describe("per-call load options", () => {
  it("ttl, staleFor, soft timeouts and backoff add nothing to E", () => {
    expectTypeOf(
      findUser(1).pipe(
        Strategy.cacheAside(Users, { id: 1 }, { ttl: "10 seconds", staleFor: (u: User) => (u.orgId ? 0 : "1 minute") })
      )
    ).toEqualTypeOf<Read>()
    expectTypeOf(
      Strategy.staleWhileRevalidate(
        findUser(1),
        Users,
        { id: 1 },
        { timeout: { soft: "100 millis" }, failureBackoff: "5 seconds" }
      )
    ).toEqualTypeOf<Read>()
  })

  it("a call's hard timeout adds CacheLoadTimeout to E, in every read strategy and both forms", () => {
    type ReadTimeout = Effect.Effect<User, DbError | CacheLoadTimeout, Db | Cachet.Cachet>
    expectTypeOf(
      findUser(1).pipe(Strategy.cacheAside(Users, { id: 1 }, { timeout: { hard: "2 seconds" } }))
    ).toEqualTypeOf<ReadTimeout>()
    expectTypeOf(
      Strategy.cacheAside(findUser(1), Users, { id: 1 }, { timeout: { soft: "1 second", hard: "2 seconds" } })
    ).toEqualTypeOf<ReadTimeout>()
    expectTypeOf(
      findUser(1).pipe(Strategy.staleWhileRevalidate(Users, { id: 1 }, { timeout: { hard: "2 seconds" } }))
    ).toEqualTypeOf<ReadTimeout>()
    expectTypeOf(
      findUser(1).pipe(Strategy.refreshAhead(Users, { id: 1 }, { at: 0.5, timeout: { hard: "2 seconds" } }))
    ).toEqualTypeOf<ReadTimeout>()
    expectTypeOf(
      findUser(1).pipe(Strategy.cacheAside(Users, { id: 1 }, { timeout: { hard: "2 seconds" }, onStoreError: "fail" }))
    ).toEqualTypeOf<Effect.Effect<User, DbError | CacheLoadTimeout | CacheStoreError, Db | Cachet.Cachet>>()
  })
})
