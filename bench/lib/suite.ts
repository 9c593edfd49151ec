/**
 * What a suite is: a group of scenarios sharing a setup.
 */
import type { ThroughputOptions } from "./measure.ts"
import type { ScenarioResult } from "./report.ts"

export interface SuiteOptions extends ThroughputOptions {
  /** Quick mode: smaller budgets, for validating the harness. */
  readonly quick: boolean
}

export interface Suite {
  readonly id: string
  readonly title: string
  readonly run: (options: SuiteOptions) => Promise<ReadonlyArray<ScenarioResult>>
}
