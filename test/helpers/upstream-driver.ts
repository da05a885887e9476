// The upstream Secrets Store CSI driver (v1.6.0, built into the tools cache from its Go
// module by install-tools.sh) as a child process, and our `provider` command beside it on
// the provider socket folder they share, as the chart's driver.enabled=false mode runs them.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, logTail, startProcess, stopProcess, waitFor, type Managed } from '../cluster/processes.js';
import { binDir, kubeconfigPath } from './cluster.js';
import { Kubelet } from './csi-client.js';
import { executable } from './driver.js';

export class UpstreamDriver {
  readonly work = mkdtempSync(join(tmpdir(), 'cce-upstream-'));
  readonly socket = join(this.work, 'csi.sock');
  readonly kubelet = new Kubelet(this.socket);
  private process?: Managed;

  constructor(
    private readonly nodeId: string,
    private readonly providerDir: string,
    private readonly bin = 'secrets-store-csi-driver',
  ) {}

  async start(extraArgs: string[] = []): Promise<void> {
    const args = [
      `--endpoint=unix://${this.socket}`,
      `--nodeid=${this.nodeId}`,
      `--provider-volume=${this.providerDir}`,
      '--additional-provider-volume-paths=',
      `--metrics-addr=127.0.0.1:${await freePort()}`,
      `--kubeconfig=${kubeconfigPath}`,
      '-v=2',
      ...extraArgs,
    ];
    this.process = startProcess('upstream-driver', join(binDir, this.bin), args, join(this.work, 'driver.log'));
    await waitFor(
      'the upstream driver to report ready on Probe',
      async () => {
        const res = await this.kubelet.call<{ ready?: { value: boolean } }>('Identity', 'Probe', {});
        return res.ready?.value !== false;
      },
      30_000,
      () => logTail(this.process!),
    );
  }

  get pid(): number | undefined {
    return this.process?.child.pid;
  }

  get logs(): string {
    return this.process && existsSync(this.process.logPath) ? readFileSync(this.process.logPath, 'utf8') : '';
  }

  async stop(): Promise<void> {
    this.kubelet.close();
    if (this.process) await stopProcess(this.process);
  }
}

/** `cce-secrets-manager provider` on `<dir>/cce.sock`, as the image runs it. */
export class ProviderProcess {
  private process?: Managed;
  readonly socket: string;

  constructor(
    dir: string,
    private readonly flags: string[],
    private readonly env: Record<string, string> = {},
  ) {
    this.socket = join(dir, 'cce.sock');
  }

  async start(): Promise<void> {
    const work = mkdtempSync(join(tmpdir(), 'cce-provider-'));
    const args = ['provider', `--endpoint=unix://${this.socket}`, `--kubeconfig=${kubeconfigPath}`, ...this.flags];
    this.process = startProcess('provider', executable, args, join(work, 'provider.log'), this.env);
    await waitFor(
      'the provider socket',
      async () => existsSync(this.socket),
      15_000,
      () => logTail(this.process!),
    );
  }

  get logs(): string {
    return this.process ? readFileSync(this.process.logPath, 'utf8') : '';
  }

  async stop(): Promise<void> {
    if (this.process) await stopProcess(this.process);
  }
}
