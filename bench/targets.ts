/**
 * The targets of issues 7 and 12, as ratios measured in the same run.
 */
import { metric, ratioTarget, type Target } from "./lib/report.ts"
import { formatMs, formatOps } from "./lib/stats.ts"
import { MAX_MEAN_GAP, TOLERANCE } from "./suites/hitratio.ts"

export const STAMPEDE_MAX_OVERHEAD_US = 3
export const FOOTPRINT_MAX_BYTES = 120

export const targets: ReadonlyArray<Target> = [
  ratioTarget(
    "hit-fiber-effect",
    "memory hit in a fiber >= 1x effect Cache.get",
    "hit-fiber",
    "cachet cacheAside",
    "effect Cache.get",
    1
  ),
  ratioTarget(
    "hit-cached-effect",
    "memory hit, Cachet.cached memoised function >= 1.5x effect Cache.get (issue 12)",
    "hit-fiber",
    "cachet Cachet.cached",
    "effect Cache.get",
    1.5
  ),
  ratioTarget(
    "hit-fiber-bento",
    "memory hit in a fiber >= 10x BentoCache getOrSet",
    "hit-fiber",
    "cachet cacheAside",
    "BentoCache getOrSet (await)",
    10
  ),
  ratioTarget(
    "hit-fiber-cache-manager",
    "memory hit in a fiber >= 3x cache-manager wrap",
    "hit-fiber",
    "cachet cacheAside",
    "cache-manager wrap (await)",
    3
  ),
  ratioTarget(
    "hit-runpromise-effect",
    "memory hit, runPromise per op >= 1x effect Cache.get (issue 12; was within 1.2x)",
    "hit-runpromise",
    "cachet cacheAside",
    "effect Cache.get",
    1
  ),
  ratioTarget(
    "redis-hit-raw",
    "Redis hit, 100 in flight >= 1x raw ioredis GET+JSON.parse (issue 12)",
    "redis-hit",
    "cachet cacheAside",
    "ioredis GET + JSON.parse",
    1
  ),
  ratioTarget(
    "redis-hit-bento",
    "Redis hit, 100 in flight >= 1.5x BentoCache L2 (issue 12)",
    "redis-hit",
    "cachet cacheAside",
    "BentoCache L2 getOrSet",
    1.5
  ),
  ratioTarget(
    "redis-getmany-raw",
    "getMany 100 >= 0.9x raw MGET+JSON.parse (issue 12)",
    "redis-getmany",
    "cachet Cachet.getMany",
    "ioredis MGET + JSON.parse",
    0.9
  ),
  ratioTarget(
    "hit-tiered",
    "TieredStore L1 hit within 1.2x of a memory-store hit (issue 12)",
    "hit-fiber",
    "cachet cacheAside, TieredStore L1 hit",
    "cachet cacheAside",
    1 / 1.2
  ),
  {
    id: "stampede",
    description: `stampede: 1 loader run, <= ${STAMPEDE_MAX_OVERHEAD_US} µs overhead per request`,
    evaluate: (results) => {
      const runs = metric(results, "stampede", "cachet cacheAside", "loaderRunsMax")
      const overhead = metric(results, "stampede", "cachet cacheAside", "overheadMs")
      if (runs === undefined || overhead === undefined) return { status: "SKIP", measured: "not measured" }
      const ok = runs === 1 && overhead <= STAMPEDE_MAX_OVERHEAD_US / 1000
      return { status: ok ? "PASS" : "MISS", measured: `${runs} run(s), ${formatMs(overhead)}/request` }
    }
  },
  {
    id: "stampede-effect",
    description: "stampede: 1 loader run, overhead per request <= effect Cache.get's waiters (issue 12)",
    evaluate: (results) => {
      const runs = metric(results, "stampede", "cachet cacheAside", "loaderRunsMax")
      const overhead = metric(results, "stampede", "cachet cacheAside", "overheadMs")
      const peer = metric(results, "stampede", "effect Cache.get", "overheadMs")
      if (runs === undefined || overhead === undefined || peer === undefined) {
        return { status: "SKIP", measured: "not measured" }
      }
      const ok = runs === 1 && overhead <= peer
      return {
        status: ok ? "PASS" : "MISS",
        measured: `${runs} run(s), ${formatMs(overhead)} vs ${formatMs(peer)}/request (${(overhead / peer).toFixed(2)}×)`
      }
    }
  },
  {
    id: "footprint",
    description: `memory: structure overhead <= ${FOOTPRINT_MAX_BYTES} B/entry`,
    evaluate: (results) => {
      const bytes = metric(results, "footprint", "cachet memory store", "overhead")
      if (bytes === undefined) return { status: "SKIP", measured: "not measured" }
      return { status: bytes <= FOOTPRINT_MAX_BYTES ? "PASS" : "MISS", measured: `${bytes.toFixed(0)} B/entry` }
    }
  },
  {
    id: "swr",
    description: "SWR hot key: p99 while revalidating below the loader time (informational)",
    evaluate: (results) => {
      const p99 = metric(results, "swr", "cachet staleWhileRevalidate", "p99")
      const loader = metric(results, "swr", "cachet staleWhileRevalidate", "loaderMs")
      const ops = metric(results, "swr", "cachet staleWhileRevalidate", "ops")
      if (p99 === undefined || loader === undefined) return { status: "SKIP", measured: "not measured" }
      return {
        status: p99 < loader ? "PASS" : "MISS",
        measured: `p99 ${formatMs(p99)} (loader ${formatMs(loader)}), ${formatOps(ops ?? Number.NaN)} req/s`
      }
    }
  },
  {
    id: "hitratio-each",
    description: `hit ratio (issue 15): cachet within ${TOLERANCE} point of the best of LRU and S3-FIFO at every trace and size`,
    evaluate: (results) => {
      const result = results.get("hitratio")
      if (result === undefined || result.skipped !== undefined) return { status: "SKIP", measured: "not measured" }
      const rows = result.rows.filter((r) => r.metrics.opt !== undefined)
      const missed = rows.filter((r) => r.metrics.pass !== 1).map((r) => r.name)
      return {
        status: missed.length === 0 ? "PASS" : "MISS",
        measured: missed.length === 0 ? `${rows.length} of ${rows.length}` : `missed: ${missed.join(", ")}`
      }
    }
  },
  {
    id: "hitratio-mean-gap",
    description: `hit ratio (issue 15): mean gap to OPT <= ${MAX_MEAN_GAP} points`,
    evaluate: (results) => {
      const gap = metric(results, "hitratio", "mean gap to OPT", "gap")
      if (gap === undefined) return { status: "SKIP", measured: "not measured" }
      const lru = metric(results, "hitratio", "mean gap to OPT", "lru")
      const s3 = metric(results, "hitratio", "mean gap to OPT", "s3")
      return {
        status: gap <= MAX_MEAN_GAP ? "PASS" : "MISS",
        measured: `${gap.toFixed(2)} (LRU ${lru?.toFixed(2)}, S3-FIFO ${s3?.toFixed(2)})`
      }
    }
  }
]
