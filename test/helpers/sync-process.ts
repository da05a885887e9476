// Runs the real `sync` command (the shipped executable) as a child process against the test
// API server and a CSMS emulator, and reads its log and metrics.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, kubeconfigPath } from './cluster.js';
import { executable, opsUrlIn, scrapeMetric, stopChild } from './driver.js';
import { TEST_CREDS_ENV, TEST_PROJECT_ID } from './with-driver.js';

/** One HMAC key for every controller of a run: replicas must share it. */
const hashKeyFile = join(mkdtempSync(join(tmpdir(), 'cce-sync-key-')), 'hash-key');
writeFileSync(hashKeyFile, 'k'.repeat(48), { mode: 0o600 });

export interface SyncOptions {
  csmsEndpoint: string;
  /** Namespace of the leader Lease; without it the controller runs alone (--leader-elect=false). */
  leaseNamespace?: string;
  identity?: string;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Default: the test cluster's admin. */
  kubeconfig?: string;
  /** Default: the tests' project (TEST_PROJECT_ID). */
  projectId?: string;
}

export class SyncProcess {
  private output = '';
  private child?: ChildProcess;

  constructor(readonly opts: SyncOptions) {}

  get logs(): string {
    return this.output;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get exitCode(): number | null {
    return this.child?.exitCode ?? null;
  }

  /** Resolves once its caches are synced (and, with a Lease, once it has logged its metrics address). */
  async start(): Promise<void> {
    const lease = this.opts.leaseNamespace
      ? [`--leader-election-namespace=${this.opts.leaseNamespace}`, `--identity=${this.opts.identity ?? 'sync-a'}`]
      : ['--leader-elect=false'];
    const args = [
      'sync',
      `--kubeconfig=${this.opts.kubeconfig ?? kubeconfigPath}`,
      `--csms-endpoint=${this.opts.csmsEndpoint}`,
      `--project-id=${this.opts.projectId ?? TEST_PROJECT_ID}`,
      `--hash-key-file=${hashKeyFile}`,
      '--metrics-addr=127.0.0.1:0',
      '-v=2',
      ...lease,
      ...(this.opts.extraArgs ?? []),
    ];
    this.child = spawn(executable, args, {
      env: { ...process.env, ...TEST_CREDS_ENV, ...this.opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer) => (this.output += d.toString());
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    await eventually('the sync controller to sync its caches', async () => {
      if (this.child!.exitCode !== null) throw new Error(`sync exited ${this.child!.exitCode}:\n${this.output}`);
      return this.output.includes('Kubernetes caches synced') ? true : undefined;
    });
  }

  /** Resolves once it logs that it leads. */
  leading(timeoutMs = 30_000): Promise<true> {
    return eventually(
      'the sync controller to lead',
      async () => (this.output.includes('Became the leader') ? true : undefined),
      timeoutMs,
    );
  }

  get opsUrl(): string {
    return opsUrlIn(this.output, 'the sync controller');
  }

  metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return scrapeMetric(this.opsUrl, name, labels);
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    return stopChild(this.child, signal);
  }
}
