/**
 * The cross-process lock contract for cluster-wide single flight: the runtime
 * consumes it, `cachet/redis` implements it; neither imports the other.
 *
 * @internal
 */
import { Context, type Effect } from "effect"
import type { ClusterSingleFlight } from "../Keyspace.ts"

/**
 * A cross-process lease for loads of keyspaces with
 * `singleFlight: { scope: "cluster" }` (`cachet/redis` provides one on Redis;
 * public as `TieredStore.LoadLease`). Read once, when the runtime is built,
 * from the context of `Cachet.layer`; when it is absent nothing changes and
 * nothing is paid.
 *
 * `run` answers with `poll` as soon as it finds the value another process
 * stored, else takes the lease of `key` and runs `load` holding it (the load
 * both runs the loader and stores its result, so the lease outlives the
 * write), else waits (bounded by `policy.wait`) and then runs `load` by
 * itself. It never fails: a lease backend that fails means `load` runs.
 */
export class LoadLease extends Context.Service<
  LoadLease,
  {
    readonly run: <A>(
      key: string,
      policy: ClusterSingleFlight,
      load: Effect.Effect<A>,
      poll: Effect.Effect<A | undefined>
    ) => Effect.Effect<A>
  }
>()("cachet/LoadLease") {}
