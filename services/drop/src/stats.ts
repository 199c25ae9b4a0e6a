/** Percentiles and time buckets for latency and throughput series. */

export interface LatencySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array (`q` from 0 to 1); 0 for an empty one. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1]! : 0,
  };
}

export interface LatencyBucket extends LatencySummary {
  /** Bucket start, ms since the drop started. */
  t: number;
  /** Answers per second in this bucket. */
  perSecond: number;
  approved: number;
  refused: number;
}

/** A bucket width giving about 60 points over `spanMs`, between 250 ms and 5 s. */
export function bucketWidth(spanMs: number): number {
  const raw = Math.max(250, Math.min(5_000, spanMs / 60));
  for (const step of [250, 500, 1_000, 2_000, 5_000]) if (raw <= step) return step;
  return 5_000;
}

/** Groups `(t, latency, approved)` samples into buckets of `width` ms. Empty buckets are kept (n = 0). */
export function bucketize(samples: readonly { t: number; latencyMs: number; approved: boolean }[], width: number): LatencyBucket[] {
  if (samples.length === 0) return [];
  // A loop, not Math.max(...): a 100,000-buyer drop has more samples than a call takes arguments.
  let last = -Infinity;
  for (const s of samples) if (s.t > last) last = s.t;
  const count = Math.floor(Math.max(0, last) / width) + 1;
  const groups: { latencies: number[]; approved: number; refused: number }[] = Array.from({ length: count }, () => ({ latencies: [], approved: 0, refused: 0 }));
  for (const s of samples) {
    const g = groups[Math.min(count - 1, Math.max(0, Math.floor(s.t / width)))]!;
    g.latencies.push(s.latencyMs);
    if (s.approved) g.approved++;
    else g.refused++;
  }
  return groups.map((g, i) => ({ t: i * width, perSecond: (g.latencies.length * 1000) / width, approved: g.approved, refused: g.refused, ...summarize(g.latencies) }));
}

/** `n` formatted with thousands separators. */
export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Milliseconds, compact: 0.8 ms, 12.3 ms, 1,204 ms. */
export function fmtMs(ms: number): string {
  if (ms < 100) return `${(Math.round(ms * 10) / 10).toFixed(1)} ms`;
  return `${fmtInt(ms)} ms`;
}

export function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function fmtPct(part: number, whole: number): string {
  if (whole === 0) return '0%';
  return `${((100 * part) / whole).toFixed(1)}%`;
}
