import { Context, Effect, type Layer, type Option, Schema } from "effect"
import * as Request from "effect/Request"
import type * as RequestResolver from "effect/RequestResolver"
import { describe, expectTypeOf, it } from "vitest"
import type { CacheKeyError, CacheLoadTimeout, CacheStoreError } from "../src/CacheError.ts"
import * as CacheStore from "../src/CacheStore.ts"
import * as Cachet from "../src/Cachet.ts"
import * as Keyspace from "../src/Keyspace.ts"
import * as TieredStore from "../src/redis/TieredStore.ts"
import * as Strategy from "../src/Strategy.ts"

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String, orgId: Schema.Number }) {}
class DbError extends Schema.TaggedError<DbError>()("DbError", {}) {}
class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { id: Schema.Number }) {}
class Db extends Context.Service<Db, { readonly findUser: (id: number) => Effect.Effect<User, DbError> }>()("Db") {}

const Users = Keyspace.make({ name: "user", key: "user:{id}", value: User, ttl: "5 minutes" })
const findUser = (id: number) => Effect.flatMap(Effect.service(Db), (db) => db.findUser(id))

describe("Keyspace typing", () => {
  it("infers template parameters", () => {
    expectTypeOf<Keyspace.TemplateParams<"user:{id}:posts:{page}">>().toEqualTypeOf<{
      readonly id: string | number
      readonly page: string | number
    }>()
    expectTypeOf<Keyspace.TemplateParams<"static">>().toEqualTypeOf<{}>()
    expectTypeOf(Users).toEqualTypeOf<Keyspace.Keyspace<{ readonly id: string | number }, User, never>>()
  })

  it("takes parameters from a key function", () => {
    const Search = Keyspace.make({
      name: "search",
      key: (p: { readonly q: string; readonly page: number }) => `${p.q}:${p.page}`,
      value: Schema.Array(Schema.String),
      ttl: 1000
    })
    expectTypeOf<Keyspace.Params<typeof Search>>().toEqualTypeOf<{ readonly q: string; readonly page: number }>()
    expectTypeOf<Keyspace.Value<typeof Search>>().toEqualTypeOf<ReadonlyArray<string>>()
  })

  it("carries the negative-caching error type", () => {
    const Lookups = Keyspace.make({
      name: "l",
      key: "{id}",
      value: User,
      ttl: 1,
      negative: { ttl: 1, error: NotFound }
    })
    expectTypeOf(Lookups).toEqualTypeOf<Keyspace.Keyspace<{ readonly id: string | number }, User, NotFound>>()
  })

  it("types tags from parameters and value", () => {
    Keyspace.make({
      name: "t",
      key: "org:{org}",
      value: User,
      ttl: 1,
      tags: (params, user) => {
        expectTypeOf(params).toEqualTypeOf<{ readonly org: string | number }>()
        expectTypeOf(user).toEqualTypeOf<User>()
        return [`org:${user.orgId}`]
      }
    })
  })
})

describe("cacheAside typing", () => {
  it("adds only Cachet to R and nothing to E in degrade mode (both forms)", () => {
    const piped = findUser(1).pipe(Strategy.cacheAside(Users, { id: 1 }))
    expectTypeOf(piped).toEqualTypeOf<Effect.Effect<User, DbError, Db | Cachet.Cachet>>()
    const direct = Strategy.cacheAside(findUser(1), Users, { id: 1 })
    expectTypeOf(direct).toEqualTypeOf<Effect.Effect<User, DbError, Db | Cachet.Cachet>>()
    const explicit = Strategy.cacheAside(findUser(1), Users, { id: 1 }, { onStoreError: "degrade" })
    expectTypeOf(explicit).toEqualTypeOf<Effect.Effect<User, DbError, Db | Cachet.Cachet>>()
  })

  it("adds CacheStoreError to E in strict mode", () => {
    const strict = findUser(1).pipe(Strategy.cacheAside(Users, { id: 1 }, { onStoreError: "fail" }))
    expectTypeOf(strict).toEqualTypeOf<Effect.Effect<User, DbError | CacheStoreError, Db | Cachet.Cachet>>()
  })

  it("adds CacheStoreError whenever the mode may be fail: widened options, a mode chosen at run time", () => {
    const widened: Strategy.Options = { onStoreError: "fail" }
    const a = findUser(1).pipe(Strategy.cacheAside(Users, { id: 1 }, widened))
    expectTypeOf(a).toEqualTypeOf<Effect.Effect<User, DbError | CacheStoreError, Db | Cachet.Cachet>>()
    const mode = (process.env["STRICT"] === "1" ? "fail" : "degrade") as "fail" | "degrade"
    const b = Strategy.cacheAside(findUser(1), Users, { id: 1 }, { onStoreError: mode })
    expectTypeOf(b).toEqualTypeOf<Effect.Effect<User, DbError | CacheStoreError, Db | Cachet.Cachet>>()
    const either = {} as { readonly onStoreError: "fail" } | { readonly onStoreError?: "degrade" }
    const c = Strategy.cacheAside(findUser(1), Users, { id: 1 }, either)
    expectTypeOf(c).toEqualTypeOf<Effect.Effect<User, DbError | CacheStoreError, Db | Cachet.Cachet>>()
    expectTypeOf<Strategy.StrictError<{}>>().toEqualTypeOf<never>()
    expectTypeOf<Strategy.StrictError<{ readonly onStoreError: "degrade" }>>().toEqualTypeOf<never>()
    expectTypeOf<Strategy.StrictError<{ readonly onStoreError?: "degrade" | undefined }>>().toEqualTypeOf<never>()
  })

  it("adds the negative-caching error to E", () => {
    const Lookups = Keyspace.make({
      name: "l",
      key: "{id}",
      value: User,
      ttl: 1,
      negative: { ttl: 1, error: NotFound }
    })
    const read = findUser(1).pipe(Strategy.cacheAside(Lookups, { id: 1 }))
    expectTypeOf(read).toEqualTypeOf<Effect.Effect<User, DbError | NotFound, Db | Cachet.Cachet>>()
  })

  it("rejects a loader whose value does not match the keyspace", () => {
    // @ts-expect-error a number is not a User
    Effect.succeed(42).pipe(Strategy.cacheAside(Users, { id: 1 }))
    // @ts-expect-error a number is not a User (data-first)
    Strategy.cacheAside(Effect.succeed(42), Users, { id: 1 })
  })

  it("rejects wrong parameters", () => {
    // @ts-expect-error id is missing
    findUser(1).pipe(Strategy.cacheAside(Users, { userId: 1 }))
    // @ts-expect-error id must be a string or a number
    findUser(1).pipe(Strategy.cacheAside(Users, { id: true }))
  })

  it("is a Strategy value", () => {
    expectTypeOf(Strategy.cacheAside).toExtend<Strategy.Strategy>()
  })
})

describe("Cachet typing", () => {
  it("direct access", () => {
    expectTypeOf(Cachet.get(Users, { id: 1 })).toEqualTypeOf<Effect.Effect<Option.Option<User>, never, Cachet.Cachet>>()
    expectTypeOf(Cachet.invalidate(Users, { id: 1 })).toEqualTypeOf<Effect.Effect<void, never, Cachet.Cachet>>()
    expectTypeOf(Cachet.invalidateTag("org:7")).toEqualTypeOf<Effect.Effect<void, never, Cachet.Cachet>>()
    expectTypeOf(Cachet.invalidateTag("org:7", { onStoreError: "fail" })).toEqualTypeOf<
      Effect.Effect<void, CacheStoreError, Cachet.Cachet>
    >()
    expectTypeOf(Cachet.stats).toEqualTypeOf<Effect.Effect<Cachet.CacheStats, never, Cachet.Cachet>>()
    // @ts-expect-error the value must be a User
    Cachet.set(Users, { id: 1 }, { name: "not a user" })
  })

  it("cached is (params) => Effect<A, E, R | Cachet>", () => {
    const cachedFind = Cachet.cached(Users, (p: { readonly id: number }) => findUser(p.id))
    expectTypeOf(cachedFind).toEqualTypeOf<
      (params: { readonly id: number }) => Effect.Effect<User, DbError, Db | Cachet.Cachet>
    >()
    const withStrategy = Cachet.cached(Users, (p: { readonly id: number }) => findUser(p.id), Strategy.cacheAside)
    expectTypeOf(withStrategy).toEqualTypeOf<
      (params: { readonly id: number }) => Effect.Effect<User, DbError, Db | Cachet.Cachet>
    >()
  })

  it("warm requires a loader of the keyspace value", () => {
    expectTypeOf(Cachet.warm(Users, [{ id: 1 }], (p) => findUser(p.id))).toEqualTypeOf<
      Effect.Effect<Cachet.WarmResult, never, Db | Cachet.Cachet>
    >()
    // @ts-expect-error the loader must produce a User
    Cachet.warm(Users, [{ id: 1 }], () => Effect.succeed("nope"))
  })
})

describe("issue #14: keys, versions, patterns, peek", () => {
  it("typed placeholders infer their types; untyped ones stay string | number", () => {
    expectTypeOf<Keyspace.TemplateParams<"user:{id:number}/{slug:string}">>().toEqualTypeOf<{
      readonly id: number
      readonly slug: string
    }>()
    const Pages = Keyspace.make({ name: "page", key: "{id:number}:{slug:string}:{tab}", value: User, ttl: 1 })
    expectTypeOf<Keyspace.Params<typeof Pages>>().toEqualTypeOf<{
      readonly id: number
      readonly slug: string
      readonly tab: string | number
    }>()
    expectTypeOf<Keyspace.ParamNames<"{id:number}:{tab}">>().toEqualTypeOf<"id" | "tab">()
    // @ts-expect-error a string where a number is declared
    Cachet.get(Pages, { id: "7", slug: "a", tab: 1 })
  })

  it("a template typed as plain string, adjacent placeholders and unknown types are compile errors", () => {
    const template: string = "user:{id}"
    // @ts-expect-error the parameters of a string-typed template cannot be inferred
    Keyspace.make({ name: "s", key: template, value: User, ttl: 1 })
    // @ts-expect-error placeholders must be separated by text containing ":"
    Keyspace.make({ name: "s", key: "{a}{b}", value: User, ttl: 1 })
    // @ts-expect-error only number and string
    Keyspace.make({ name: "s", key: "{a:bool}", value: User, ttl: 1 })
    expectTypeOf<Keyspace.TemplateError<"user:{id}:{page:number}">>().toEqualTypeOf<never>()
    expectTypeOf<Keyspace.TemplateError<string>>().toExtend<string>()
  })

  it("version adds nothing to the keyspace's type", () => {
    const V2 = Keyspace.make({ name: "v", key: "{id}", value: User, ttl: 1, version: 2 })
    expectTypeOf(V2).toEqualTypeOf<Keyspace.Keyspace<{ readonly id: string | number }, User, never>>()
  })

  it("invalidatePattern: CacheKeyError always (a malformed pattern), CacheStoreError with onStoreError: fail", () => {
    expectTypeOf(Cachet.invalidatePattern(Users, "4*")).toEqualTypeOf<
      Effect.Effect<number, CacheKeyError, Cachet.Cachet>
    >()
    expectTypeOf(Cachet.invalidatePattern(Users, "4*", { onStoreError: "fail" })).toEqualTypeOf<
      Effect.Effect<number, CacheKeyError | CacheStoreError, Cachet.Cachet>
    >()
  })

  it("invalidateKeyspace: allVersions adds nothing; onStoreError: fail adds CacheStoreError", () => {
    expectTypeOf(Cachet.invalidateKeyspace(Users, { allVersions: true })).toEqualTypeOf<
      Effect.Effect<number, never, Cachet.Cachet>
    >()
    expectTypeOf(Cachet.invalidateKeyspace(Users, { allVersions: true, onStoreError: "fail" })).toEqualTypeOf<
      Effect.Effect<number, CacheStoreError, Cachet.Cachet>
    >()
  })

  it("peek never fails and needs only Cachet", () => {
    expectTypeOf(Cachet.peek(Users, { id: 1 })).toEqualTypeOf<
      Effect.Effect<Option.Option<Cachet.Entry<User>>, never, Cachet.Cachet>
    >()
  })
})

describe("TieredStore typing", () => {
  it("declares the lease it provides with a Redis L2, and only then", () => {
    const withRedis = TieredStore.layer({ l2: { url: "redis://127.0.0.1:6379", prefix: "app" } })
    expectTypeOf(withRedis).toEqualTypeOf<
      Layer.Layer<CacheStore.CacheStore | TieredStore.Tiered | TieredStore.LoadLease>
    >()
    const noLease = TieredStore.layer({ l2: { url: "redis://127.0.0.1:6379", prefix: "app" }, lease: false })
    expectTypeOf(noLease).toEqualTypeOf<Layer.Layer<CacheStore.CacheStore | TieredStore.Tiered>>()
    const overLayer = TieredStore.layer({ l2: CacheStore.layerMemory(), bus: false })
    expectTypeOf(overLayer).toEqualTypeOf<Layer.Layer<CacheStore.CacheStore | TieredStore.Tiered>>()
  })
})

describe("load policy typing", () => {
  it("ttl and staleFor functions see the value and the parameters", () => {
    Keyspace.make({
      name: "ttl-fn",
      key: "user:{id}",
      value: User,
      ttl: (user, params) => {
        expectTypeOf(user).toEqualTypeOf<User>()
        expectTypeOf(params).toEqualTypeOf<{ readonly id: string | number }>()
        return user.orgId === 1 ? "1 minute" : "1 hour"
      },
      staleFor: (user) => (user.name === "" ? 0 : "1 day")
    })
    Keyspace.make({
      name: "ttl-fn-bad",
      key: "{id}",
      value: User,
      // @ts-expect-error a ttl function returns a duration
      ttl: (user) => user.name === "x"
    })
  })

  it("CacheLoadTimeout is in E exactly when a hard timeout is configured", () => {
    const Hard = Keyspace.make({
      name: "hard",
      key: "{id}",
      value: User,
      ttl: "1 minute",
      timeout: { soft: "100 millis", hard: "2 seconds" }
    })
    const Soft = Keyspace.make({
      name: "soft",
      key: "{id}",
      value: User,
      ttl: "1 minute",
      timeout: { soft: "100 millis" }
    })
    const Backoff = Keyspace.make({
      name: "backoff",
      key: "{id}",
      value: User,
      ttl: "1 minute",
      sliding: true,
      failureBackoff: "5 seconds"
    })
    expectTypeOf(Hard).toEqualTypeOf<Keyspace.Keyspace<{ readonly id: string | number }, User, CacheLoadTimeout>>()
    expectTypeOf(Soft).toEqualTypeOf<Keyspace.Keyspace<{ readonly id: string | number }, User, never>>()
    expectTypeOf(Backoff).toEqualTypeOf<Keyspace.Keyspace<{ readonly id: string | number }, User, never>>()
    expectTypeOf(findUser(1).pipe(Strategy.cacheAside(Hard, { id: 1 }))).toEqualTypeOf<
      Effect.Effect<User, DbError | CacheLoadTimeout, Db | Cachet.Cachet>
    >()
    expectTypeOf(findUser(1).pipe(Strategy.cacheAside(Soft, { id: 1 }))).toEqualTypeOf<
      Effect.Effect<User, DbError, Db | Cachet.Cachet>
    >()
    expectTypeOf(Cachet.cached(Hard, (p: { readonly id: number }) => findUser(p.id))).toEqualTypeOf<
      (params: { readonly id: number }) => Effect.Effect<User, DbError | CacheLoadTimeout, Db | Cachet.Cachet>
    >()
    expectTypeOf<Keyspace.TimeoutError<{ timeout: { hard: "1 second" } }>>().toEqualTypeOf<CacheLoadTimeout>()
    expectTypeOf<Keyspace.TimeoutError<{ timeout: { soft: "1 second" } }>>().toEqualTypeOf<never>()
    expectTypeOf<Keyspace.TimeoutError<{ timeout: { hard: undefined } }>>().toEqualTypeOf<never>()
    expectTypeOf<Keyspace.TimeoutError<{}>>().toEqualTypeOf<never>()
    // A widened option may hold a hard bound: it adds the error.
    expectTypeOf<Keyspace.TimeoutError<{ timeout: Keyspace.TimeoutOptions }>>().toEqualTypeOf<CacheLoadTimeout>()
  })
})

describe("batched loads typing", () => {
  it("cachedMany is (params[]) => Effect<ReadonlyArray<A>, E | EN, R | Cachet>", () => {
    const many = Cachet.cachedMany(Users, (ps: ReadonlyArray<{ readonly id: number }>) =>
      Effect.forEach(ps, (p) => findUser(p.id))
    )
    expectTypeOf(many).toEqualTypeOf<
      (
        params: ReadonlyArray<{ readonly id: number }>
      ) => Effect.Effect<ReadonlyArray<User>, DbError, Db | Cachet.Cachet>
    >()
    // @ts-expect-error loadMany must produce the keyspace's values
    Cachet.cachedMany(Users, (ps: ReadonlyArray<{ readonly id: number }>) => Effect.succeed(ps.map(() => "nope")))
  })

  it("resolver keeps the wrapped resolver's request type and needs Cachet to be built", () => {
    class GetUser extends Request.Class<{ readonly id: number }, User, DbError> {}
    class GetName extends Request.Class<{ readonly id: number }, string, DbError> {}
    const inner = {} as RequestResolver.RequestResolver<GetUser>
    expectTypeOf(Cachet.resolver(Users, inner)).toEqualTypeOf<
      Effect.Effect<RequestResolver.RequestResolver<GetUser>, never, Cachet.Cachet>
    >()
    // @ts-expect-error the request's success must be the keyspace's value
    Cachet.resolver(Users, {} as RequestResolver.RequestResolver<GetName>)
  })
})

describe("write lifetimes", () => {
  it("ttl and staleFor on a write add nothing to E or R; onStoreError 'fail' adds CacheStoreError", () => {
    const user = new User({ id: 1, name: "a", orgId: 1 })
    const plain = Cachet.set(Users, { id: 1 }, user)
    const timed = Cachet.set(Users, { id: 1 }, user, { ttl: "10 seconds", staleFor: 0 })
    expectTypeOf(timed).toEqualTypeOf(plain)
    const strict = Cachet.set(Users, { id: 1 }, user, { ttl: "10 seconds", onStoreError: "fail" })
    expectTypeOf<Effect.Error<typeof strict>>().toEqualTypeOf<Effect.Error<typeof plain> | CacheStoreError>()
    const through = findUser(1).pipe(Strategy.writeThrough(Users, { id: 1 }, { ttl: (u: User) => (u.orgId ? 1 : 2) }))
    expectTypeOf(through).toEqualTypeOf<Effect.Effect<User, DbError, Db | Cachet.Cachet>>()
  })
})
