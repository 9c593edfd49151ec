/**
 * The structural size estimate of a value in bytes: what `maxBytes` budgets
 * (memory store, TieredStore L1, write-behind queue) count when no `sizeOf` is given.
 *
 * @internal
 */

/** A structural size estimate in bytes: used only when a byte budget is set. */
export const estimateSize = (value: unknown): number => {
  let total = 0
  const seen = new Set<object>()
  const stack: Array<unknown> = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    switch (typeof v) {
      case "string":
        total += 16 + 2 * v.length
        break
      case "number":
      case "bigint":
        total += 8
        break
      case "boolean":
      case "undefined":
        total += 4
        break
      case "object": {
        if (v === null) {
          total += 4
          break
        }
        if (seen.has(v)) break
        seen.add(v)
        if (v instanceof Uint8Array) {
          total += 32 + v.byteLength
          break
        }
        if (v instanceof Date) {
          total += 24
          break
        }
        total += 24
        if (Array.isArray(v)) {
          total += 8 * v.length
          for (const item of v) stack.push(item)
        } else {
          for (const k in v) {
            total += 8 + 2 * k.length
            stack.push((v as Record<string, unknown>)[k])
          }
        }
        break
      }
      default:
        total += 8
    }
  }
  return total
}
