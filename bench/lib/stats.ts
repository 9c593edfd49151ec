/**
 * Small statistics and formatting helpers (no dependencies).
 */

/** The q-quantile (0..1) of `values`, linear interpolation; NaN when empty. Sorts a copy. */
export const quantile = (values: ArrayLike<number>, q: number): number => {
  const n = values.length
  if (n === 0) return Number.NaN
  const sorted = Float64Array.from(values as ArrayLike<number>).sort()
  return quantileSorted(sorted, q)
}

/** The q-quantile of an already sorted array. */
export const quantileSorted = (sorted: ArrayLike<number>, q: number): number => {
  const n = sorted.length
  if (n === 0) return Number.NaN
  const pos = (n - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  const a = sorted[lo]!
  const b = sorted[hi]!
  return a + (b - a) * (pos - lo)
}

export const median = (values: ArrayLike<number>): number => quantile(values, 0.5)

export const mean = (values: ArrayLike<number>): number => {
  let s = 0
  for (let i = 0; i < values.length; i++) s += values[i]!
  return values.length === 0 ? Number.NaN : s / values.length
}

/** Least-squares slope of y over x (units of y per unit of x). */
export const slope = (xs: ArrayLike<number>, ys: ArrayLike<number>): number => {
  const n = Math.min(xs.length, ys.length)
  if (n < 2) return Number.NaN
  const mx = mean(Array.from({ length: n }, (_, i) => xs[i]!))
  const my = mean(Array.from({ length: n }, (_, i) => ys[i]!))
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my)
    den += (xs[i]! - mx) ** 2
  }
  return den === 0 ? Number.NaN : num / den
}

/** A growable Float64Array (latency recording without boxing). */
export class Samples {
  private data: Float64Array
  length = 0
  constructor(initial = 1024) {
    this.data = new Float64Array(initial)
  }
  push(value: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2)
      next.set(this.data)
      this.data = next
    }
    this.data[this.length++] = value
  }
  pushAll(values: ArrayLike<number>): void {
    for (let i = 0; i < values.length; i++) this.push(values[i]!)
  }
  /** A sorted copy of the recorded values. */
  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort()
  }
  clear(): void {
    this.length = 0
  }
}

/** 1234567 -> "1.23M", 81234 -> "81.2k". */
export const formatOps = (ops: number): string => {
  if (!Number.isFinite(ops)) return "-"
  if (ops >= 1e6) return `${(ops / 1e6).toFixed(2)}M`
  if (ops >= 1e4) return `${(ops / 1e3).toFixed(1)}k`
  if (ops >= 1e3) return `${(ops / 1e3).toFixed(2)}k`
  return ops.toFixed(ops >= 100 ? 0 : 1)
}

/** A duration in milliseconds, in the most readable unit. */
export const formatMs = (ms: number): string => {
  if (!Number.isFinite(ms)) return "-"
  if (ms < 0.001) return `${(ms * 1e6).toFixed(0)} ns`
  if (ms < 0.01) return `${(ms * 1e3).toFixed(2)} µs`
  if (ms < 1) return `${(ms * 1e3).toFixed(1)} µs`
  if (ms < 100) return `${ms.toFixed(2)} ms`
  return `${ms.toFixed(0)} ms`
}

export const formatBytes = (bytes: number): string => {
  if (!Number.isFinite(bytes)) return "-"
  return `${bytes.toFixed(0)} B`
}

export const formatRatio = (ratio: number): string => {
  if (!Number.isFinite(ratio)) return "-"
  return ratio >= 10 ? `${ratio.toFixed(1)}×` : `${ratio.toFixed(2)}×`
}

/** Pads a table: first column left-aligned, the others right-aligned. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const all = [header, ...rows]
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)))
  const line = (r: ReadonlyArray<string>) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

/** A markdown table. */
export const markdownTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const line = (r: ReadonlyArray<string>) => `| ${r.join(" | ")} |`
  return [line(header), `|${header.map((_, c) => (c === 0 ? "---" : "---:")).join("|")}|`, ...rows.map(line)].join("\n")
}
