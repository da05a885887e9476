// Percentiles, summaries and resident memory for the benchmarks' printed numbers (the /proc
// readers are the tests' own, test/helpers/proc.ts).
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';

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

/** One markdown table row, so that results are pasted into BENCHMARKS.md, not retyped. */
export function markdownRow(cells: (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

/** A markdown table's header and separator. */
export function markdownHeader(columns: string[]): string {
  return `${markdownRow(columns)}\n|${' --- |'.repeat(columns.length)}`;
}

/** Prints a whole markdown table. */
export function printTable(columns: string[], rows: (string | number)[][]): void {
  console.log([markdownHeader(columns), ...rows.map(markdownRow)].join('\n'));
}

/** What a bench's numbers were taken on: commit, machine, runtime and day, for BENCHMARKS.md. */
export function provenance(): string {
  const git = (...args: string[]) => {
    const r = spawnSync('git', args, { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : '';
  };
  const commit = git('rev-parse', '--short', 'HEAD') || 'unknown';
  const dirty = git('status', '--porcelain', '--untracked-files=no') ? ' (with local changes)' : '';
  const cpu = cpus();
  return (
    `commit ${commit}${dirty}, ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ` +
    `${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.version}, ${new Date().toISOString().slice(0, 10)}`
  );
}
