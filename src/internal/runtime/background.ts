/**
 * Ownership of the runtime's fibers: loads, background reloads and the
 * write-behind flusher all live in FiberSets of one child scope of the layer.
 *
 * Structural, not a matter of finalizer discipline: closing the layer's scope
 * closes the child scope, which interrupts whatever is still running, even if
 * the runtime's own finalizer never ran. The runtime adds its finalizer to the
 * child scope (sequential) after the sets, so it runs first: it stops loads,
 * then drains write-behind, and only then do the sets' own finalizers run.
 *
 * @internal
 */
import { Effect, type Fiber, FiberSet, Scope } from "effect"

export interface Background {
  /** The child scope of the layer's scope that owns every fiber below. */
  readonly scope: Scope.Scope
  /** Forks a load or background reload in the caller's context. */
  readonly fork: <A>(effect: Effect.Effect<A>, startImmediately: boolean) => Effect.Effect<Fiber.Fiber<A>>
  /** Forks a worker from synchronous code, in the layer's context (the write-behind flusher). */
  readonly forkWorkerUnsafe: <A>(effect: Effect.Effect<A>) => Fiber.Fiber<A>
  /** Interrupts every load and reload, and waits for them to end. */
  readonly interruptLoads: Effect.Effect<void>
  /** Fibers forked here that have not ended yet (for tests: 0 once the layer is closed). */
  readonly live: () => number
}

/** Builds the sets in a child scope of the current scope. */
export const make: Effect.Effect<Background, never, Scope.Scope> = Effect.gen(function* () {
  const scope = yield* Scope.fork(yield* Effect.scope, "sequential")
  const loads = yield* Scope.provide(FiberSet.make<unknown, never>(), scope)
  const workers = yield* Scope.provide(FiberSet.make<unknown, never>(), scope)
  const runWorker = yield* FiberSet.runtime(workers)<never>()
  let live = 0
  const track = <A>(fiber: Fiber.Fiber<A>): Fiber.Fiber<A> => {
    live++
    fiber.addObserver(() => {
      live--
    })
    return fiber
  }
  return {
    scope,
    fork: (effect, startImmediately) => Effect.map(FiberSet.run(loads, effect, { startImmediately }), track),
    forkWorkerUnsafe: (effect) => track(runWorker(effect)),
    interruptLoads: FiberSet.clear(loads),
    live: () => live
  }
})
