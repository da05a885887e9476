// Runs the real driver binary (`serve`) as a child process and plays kubelet
// against it over its unix socket with a real gRPC client.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { eventually, kubeconfigPath } from './cluster.js';
import { Kubelet } from './csi-client.js';
import { unmountWhere } from './proc.js';

/** The executable we ship (scripts/bundle.mjs), not the compiled modules: tests run what users run. */
export const executable = resolve(import.meta.dirname, '../../cce-secrets-manager.mjs');

export interface DriverOptions {
  nodeId: string;
  csmsEndpoint: string;
  projectId: string;
  env?: Record<string, string>;
  extraArgs?: string[];
  kubeconfig?: string;
  socketDir?: string;
  /** kubelet's root folder for this driver (default: a fresh temporary folder). */
  kubeletRoot?: string;
  /** Another way to start it (a profiling wrapper, say); default the shipped executable. */
  executable?: string;
}

export class DriverProcess {
  readonly socket: string;
  private output = '';
  private child?: ChildProcess;
  readonly kubelet: Kubelet;
  readonly kubeletRoot: string;

  constructor(readonly opts: DriverOptions) {
    this.socket = join(opts.socketDir ?? mkdtempSync(join(tmpdir(), 'cce-csi-')), 'csi.sock');
    this.kubelet = new Kubelet(this.socket);
    this.kubeletRoot = opts.kubeletRoot ?? mkdtempSync(join(tmpdir(), 'cce-kubelet-'));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Everything the driver logged so far. */
  get logs(): string {
    return this.output;
  }

  /** Resolves once Probe reports ready (or, with `ready: false`, once Probe answers at all). */
  async start(opts: { ready?: boolean } = {}): Promise<void> {
    const args = [
      'serve',
      `--endpoint=unix://${this.socket}`,
      `--nodeid=${this.opts.nodeId}`,
      `--kubeconfig=${this.opts.kubeconfig ?? kubeconfigPath}`,
      `--csms-endpoint=${this.opts.csmsEndpoint}`,
      ...(this.opts.projectId ? [`--project-id=${this.opts.projectId}`] : []),
      '-v=2',
      '--metrics-addr=127.0.0.1:0',
      `--kubelet-root-dir=${this.kubeletRoot}`,
      ...(this.opts.extraArgs ?? []),
    ];
    // Started through its shebang, with the same Node flags as in production.
    this.child = spawn(this.opts.executable ?? executable, args, {
      env: { ...process.env, ...this.opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    await eventually(
      'the driver to report ready on Probe',
      async () => {
        if (this.child!.exitCode !== null) throw new Error(`driver exited ${this.child!.exitCode}:\n${this.output}`);
        const res = await this.kubelet
          .call<{ ready?: { value: boolean } }>('Identity', 'Probe', {})
          .catch(() => undefined);
        if (opts.ready === false) return res ? true : undefined;
        return res?.ready?.value ? true : undefined;
      },
      30_000,
    );
  }

  /** http://host:port of /metrics, /healthz and /readyz, from the driver's log. */
  get opsUrl(): string {
    return opsUrlIn(this.output, 'the driver');
  }

  /** The value of one sample of /metrics (summed over label sets matching `labels`). */
  metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return scrapeMetric(this.opsUrl, name, labels);
  }

  get exitCode(): number | null {
    return this.child?.exitCode ?? null;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    this.kubelet.close();
    return stopChild(this.child, signal);
  }
}

/** http://host:port of /metrics, /healthz and /readyz, from the log of a command (`who`) that serves them. */
export function opsUrlIn(output: string, who: string): string {
  const m = /"Serving metrics and health checks" address="([^"]+)"/.exec(output);
  if (!m) throw new Error(`${who} has not logged its metrics address`);
  return `http://${m[1]}`;
}

/** Sends `signal` to a child still running; resolves with its exit code. */
export function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<number | null> {
  if (!child || child.exitCode !== null) return Promise.resolve(child?.exitCode ?? null);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill(signal);
  return exited;
}

/** One sample of the /metrics at `opsUrl`, summed over the label sets matching `labels`. */
export async function scrapeMetric(opsUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    const have = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[2]);
  }
  return sum;
}

/**
 * The request kubelet sends for a pod's inline secrets-store volume (by default the
 * first csi volume of the pod's spec).
 */
export function publishRequest(
  pod: k8s.V1Pod,
  spc: string,
  kubeletRoot: string,
  opts: { volume?: string; secrets?: Record<string, string> } = {},
) {
  const uid = pod.metadata!.uid!;
  const volume =
    opts.volume ??
    pod.spec?.volumes?.find((v) => v.csi?.volumeAttributes?.secretProviderClass === spc)?.name ??
    'secrets-store-inline';
  // kubelet creates the volume's folder (and writes vol_data.json there) before the call;
  // the driver creates only the `mount` folder itself.
  const volumeDir = join(kubeletRoot, 'pods', uid, 'volumes', 'kubernetes.io~csi', volume);
  mkdirSync(volumeDir, { recursive: true, mode: 0o750 });
  writeFileSync(
    join(volumeDir, 'vol_data.json'),
    JSON.stringify({ driverName: 'secrets-store.csi.k8s.io', volumeHandle: `csi-${uid}-${volume}` }),
  );
  return {
    volume_id: `csi-${uid}-${volume}`,
    target_path: join(volumeDir, 'mount'),
    volume_capability: { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_READER_ONLY' } },
    readonly: true,
    secrets: opts.secrets ?? {},
    volume_context: {
      secretProviderClass: spc,
      'csi.storage.k8s.io/pod.name': pod.metadata!.name!,
      'csi.storage.k8s.io/pod.namespace': pod.metadata!.namespace!,
      'csi.storage.k8s.io/pod.uid': uid,
      'csi.storage.k8s.io/serviceAccount.name': pod.spec!.serviceAccountName ?? 'default',
      'csi.storage.k8s.io/ephemeral': 'true',
    },
  };
}

/** Takes down every tmpfs a test mounted under `root` (what kubelet's unpublish would do). */
export function unmountAll(root: string): void {
  unmountWhere((point) => point.startsWith(`${root}/`));
}
