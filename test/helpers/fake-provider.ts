// Upstream's own fake provider (provider/fake of sigs.k8s.io/secrets-store-csi-driver,
// built into the tools cache by install-tools.sh) on a socket of ours: what it returns is a
// JSON file the test rewrites, and every Mount request it got is kept for the test to read.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logTail, startProcess, stopProcess, waitFor, type Managed } from '../cluster/processes.js';
import { binDir, eventually } from './cluster.js';

export interface FakeFile {
  path: string;
  mode: number;
  contents: string;
}

export interface FakeConfig {
  files?: FakeFile[];
  objects?: Record<string, string>;
  errorCode?: string;
  /** A gRPC failure: "<code name>: <message>", e.g. "PERMISSION_DENIED: no". */
  fail?: string;
}

export interface RecordedMount {
  attributes: string;
  secrets: string;
  target_path: string;
  permission: string;
  current_object_version?: { id: string; version: string }[];
}

export class FakeProvider {
  readonly socket: string;
  private readonly work = mkdtempSync(join(tmpdir(), 'cce-fake-provider-'));
  private process?: Managed;

  constructor(dir: string, name: string) {
    this.socket = join(dir, `${name}.sock`);
  }

  async start(config: FakeConfig): Promise<void> {
    this.configure(config);
    const bin = join(binDir, 'fake-provider');
    const args = ['--endpoint', this.socket, '--config', this.configPath, '--record', this.recordPath];
    this.process = startProcess('fake-provider', bin, args, join(this.work, 'provider.log'));
    await waitFor(
      'fake-provider to listen',
      async () => existsSync(this.socket),
      10_000,
      () => logTail(this.process!),
    );
  }

  configure(config: FakeConfig): void {
    const files = (config.files ?? []).map((f) => ({ ...f, contents: Buffer.from(f.contents).toString('base64') }));
    writeFileSync(this.configPath, JSON.stringify({ ...config, files }));
  }

  /** The last Mount request, with `attributes`, `secrets` and `permission` parsed. */
  lastMount(): { raw: RecordedMount; attributes: Record<string, string>; secrets: Record<string, string> } {
    const raw = JSON.parse(readFileSync(this.recordPath, 'utf8')) as RecordedMount;
    return { raw, attributes: JSON.parse(raw.attributes), secrets: JSON.parse(raw.secrets) };
  }

  /**
   * The last Mount for `targetPath`. The record is the provider's last Mount of any volume,
   * and the driver rotates the others every second: a later call (or two at once, whose
   * writes of the one file interleave) may stand there; the next rotation writes ours again.
   */
  mountFor(targetPath: string): Promise<ReturnType<FakeProvider['lastMount']>> {
    return eventually(`a Mount for ${targetPath}`, async () => {
      const m = this.lastMount();
      return m.raw.target_path === targetPath ? m : undefined;
    });
  }

  get pid(): number | undefined {
    return this.process?.child.pid;
  }

  async stop(): Promise<void> {
    if (this.process) await stopProcess(this.process);
  }

  private get configPath(): string {
    return join(this.work, 'config.json');
  }

  private get recordPath(): string {
    return join(this.work, 'requests.json');
  }
}
