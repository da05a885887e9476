// Percentiles, summaries and resident memory for the benchmarks' printed numbers (the /proc
// readers are the tests' own, test/helpers/proc.ts).
export { anonMiB, cpuMs, rssMiB } from '../test/helpers/proc.js';

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `n=${s.length} p50=${percentile(s, 50).toFixed(1)}ms p99=${percentile(s, 99).toFixed(1)}ms max=${s[s.length - 1].toFixed(1)}ms`;
}

export function median(xs: number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
}
