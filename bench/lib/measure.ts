/**
 * The measuring core: tinybench drives every throughput scenario (warm-up,
 * time budget, minimum iterations); one tinybench iteration is one *batch* of
 * operations that the contender times itself.
 *
 * - A batch returns how many operations it ran, how long they took and,
 *   where single operations are long enough to time individually (async and
 *   Redis scenarios), each operation's latency.
 * - The sample handed to tinybench is the batch's mean time per operation
 *   (`overriddenDuration`), and the batch's whole duration is what counts
 *   against the time budget (`overriddenIterationCost`).
 * - Throughput of a round = operations / summed batch time, in the run phase
 *   only (warm-up batches are not recorded). Each scenario runs `rounds`
 *   rounds; the order of the contenders rotates every round, and the reported
 *   ops/s is the median round, with the spread of the rounds ((max - min) /
 *   median) as the noise figure.
 * - p50/p99 are over per-operation latencies when the batch records them, else
 *   over batch means (for sub-microsecond operations, which no timer can time
 *   one by one); the table says which.
 */
import { Bench } from "tinybench"
import { median, quantileSorted, Samples } from "./stats.ts"

/** What one batch did. */
export interface Batch {
  readonly ops: number
  readonly elapsedMs: number
  /** Per-operation latencies in ms, when the batch timed each operation. */
  readonly latenciesMs?: ArrayLike<number> | undefined
}

/** One contender of a throughput scenario. */
export interface Contender {
  readonly name: string
  /** Why this contender does not run here (a missing service...), if it does not. */
  readonly skip?: string | undefined
  readonly batch: () => Batch | Promise<Batch>
}

/** One row of a scenario's results. */
export interface Row {
  readonly name: string
  readonly metrics: Record<string, number>
  readonly skipped?: string | undefined
  readonly error?: string | undefined
}

export interface ThroughputOptions {
  readonly rounds: number
  /** Time budget per contender per round (tinybench `time`). */
  readonly timeMs: number
  /** Warm-up budget per contender per round (tinybench `warmupTime`). */
  readonly warmupMs: number
  /** Minimum batches per contender per round (tinybench `iterations`). */
  readonly minBatches: number
}

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect !== undefined) collect()
}

interface Record_ {
  readonly rounds: Array<number>
  readonly latencies: Samples
  perRequest: boolean
  batches: number
  error: string | undefined
}

/**
 * Runs the contenders through tinybench, `rounds` times. Metrics of a row:
 * `ops` (median round, ops/s), `spread` (fraction), `p50`, `p99` (ms),
 * `perRequest` (1 when p50/p99 are per-operation), `batches`, `rounds`.
 */
export const runThroughput = async (
  scenario: string,
  contenders: ReadonlyArray<Contender>,
  options: ThroughputOptions
): Promise<Array<Row>> => {
  const active = contenders.filter((c) => c.skip === undefined)
  const records = new Map<string, Record_>(
    active.map((c) => [
      c.name,
      { rounds: [], latencies: new Samples(4096), perRequest: false, batches: 0, error: undefined }
    ])
  )
  for (let round = 0; round < options.rounds; round++) {
    const bench = new Bench({
      name: `${scenario} #${round + 1}`,
      time: options.timeMs,
      warmupTime: options.warmupMs,
      iterations: options.minBatches,
      warmupIterations: 2
    })
    // Rotate the order every round: drift (other processes, heap growth,
    // JIT state) then spreads over every contender instead of hitting one.
    const order = active.map((_, i) => active[(i + round) % active.length]!)
    for (const contender of order) {
      const record = records.get(contender.name)!
      if (record.error !== undefined) continue
      let recording = false
      // BENCH_ROUNDS=1: each round's ops/s, p99 and slot, per contender.
      const perRound = process.env.BENCH_ROUNDS === "1"
      const roundLatencies: Array<number> = []
      let ops = 0
      let elapsed = 0
      bench.add(
        contender.name,
        async () => {
          const batch = await contender.batch()
          if (recording) {
            ops += batch.ops
            elapsed += batch.elapsedMs
            record.batches++
            if (batch.latenciesMs !== undefined) {
              if (perRound)
                for (let i = 0; i < batch.latenciesMs.length; i++) roundLatencies.push(batch.latenciesMs[i]!)
              record.perRequest = true
              record.latencies.pushAll(batch.latenciesMs)
            } else {
              record.latencies.push(batch.elapsedMs / batch.ops)
            }
          }
          return {
            overriddenDuration: batch.elapsedMs / Math.max(1, batch.ops),
            overriddenIterationCost: batch.elapsedMs
          }
        },
        {
          beforeAll: (mode) => {
            gc()
            recording = mode === "run"
            ops = 0
            elapsed = 0
          },
          afterAll: (mode) => {
            if (perRound && mode === "run" && elapsed > 0) {
              const l = roundLatencies.sort((x, y) => x - y)
              const p99 = l.length === 0 ? "-" : `${l[Math.floor((l.length - 1) * 0.99)]!.toFixed(2)} ms`
              console.log(
                `   round ${round + 1} slot ${order.indexOf(contender) + 1} ${contender.name}: ${((ops / elapsed) * 1000).toFixed(0)} ops/s, p99 ${p99}, ${l.length} samples`
              )
              roundLatencies.length = 0
            }
            if (mode === "run" && elapsed > 0) record.rounds.push((ops / elapsed) * 1000)
          }
        }
      )
    }
    await bench.run()
    for (const task of bench.tasks) {
      const result = task.result
      if (result.state === "errored") {
        const record = records.get(task.name)!
        record.error = result.error.message
      }
    }
  }
  return contenders.map((c): Row => {
    if (c.skip !== undefined) return { name: c.name, metrics: {}, skipped: c.skip }
    const record = records.get(c.name)!
    if (record.error !== undefined) return { name: c.name, metrics: {}, error: record.error }
    const sorted = record.latencies.sorted()
    const ops = median(record.rounds)
    return {
      name: c.name,
      metrics: {
        ops,
        spread: (Math.max(...record.rounds) - Math.min(...record.rounds)) / ops,
        p50: quantileSorted(sorted, 0.5),
        p99: quantileSorted(sorted, 0.99),
        perRequest: record.perRequest ? 1 : 0,
        batches: record.batches,
        rounds: record.rounds.length
      }
    }
  })
}

/** Times `n` sequential calls of an async function; per-call latencies included. */
export const timeSequentialAsync = async (n: number, op: (i: number) => Promise<unknown>): Promise<Batch> => {
  const latencies = new Float64Array(n)
  const start = performance.now()
  let last = start
  for (let i = 0; i < n; i++) {
    await op(i)
    const now = performance.now()
    latencies[i] = now - last
    last = now
  }
  return { ops: n, elapsedMs: last - start, latenciesMs: latencies }
}

/**
 * Runs `total` calls of an async function with `inFlight` of them outstanding
 * at any time (a pool of workers); each call is timed.
 */
export const timeConcurrentAsync = async (
  total: number,
  inFlight: number,
  op: (i: number) => Promise<unknown>
): Promise<Batch> => {
  const latencies = new Float64Array(total)
  let next = 0
  const worker = async () => {
    while (next < total) {
      const i = next++
      const t0 = performance.now()
      await op(i)
      latencies[i] = performance.now() - t0
    }
  }
  const start = performance.now()
  await Promise.all(Array.from({ length: inFlight }, worker))
  return { ops: total, elapsedMs: performance.now() - start, latenciesMs: latencies }
}
