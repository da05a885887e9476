// The CSMS emulator as its own process, as CSMS is remote from the driver: the
// benchmark process then only plays kubelet and measures.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executable } from '../test/helpers/driver.js';
import type { EmulatorSeed } from '../src/emulator/store.js';

/** The CSMS project and key pair every bench's emulator and driver share. */
export const BENCH_PROJECT_ID = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
export const BENCH_CREDS = { accessKey: 'BENCHAK', secretKey: 'bench-sk' };
/** BENCH_CREDS in the driver's environment, where the image's users put their keys. */
export const BENCH_CREDS_ENV = { HUAWEICLOUD_SDK_AK: BENCH_CREDS.accessKey, HUAWEICLOUD_SDK_SK: BENCH_CREDS.secretKey };

/** BENCH_NAMESPACE_POLICY=off|audit|enforce compares the permit's cost; unset, the driver's default. */
export const namespacePolicyFlag = (): string[] =>
  process.env.BENCH_NAMESPACE_POLICY ? [`--namespace-policy=${process.env.BENCH_NAMESPACE_POLICY}`] : [];

export interface EmulatorProcess {
  url: string;
  total(): Promise<number>;
  resetCounts(): Promise<void>;
  addVersion(secret: string, value: string): Promise<void>;
  stop(): void;
}

export async function startEmulatorProcess(seed: EmulatorSeed): Promise<EmulatorProcess> {
  const seedFile = join(mkdtempSync(join(tmpdir(), 'cce-bench-seed-')), 'seed.json');
  writeFileSync(seedFile, JSON.stringify(seed));
  const child = spawn(executable, ['csms-emulator', '--port', '0', '--seed', seedFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((res, rej) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /listening on (\S+)/.exec(d.toString());
      if (m) res(m[1]);
    });
    child.once('exit', (code) => rej(new Error(`the emulator exited with ${code}`)));
  });
  return {
    url,
    total: async () => ((await (await fetch(`${url}/_emulator/stats`)).json()) as { total: number }).total,
    resetCounts: async () => {
      await fetch(`${url}/_emulator/stats`, { method: 'DELETE' });
    },
    addVersion: async (secret, value) => {
      await fetch(`${url}/_emulator/secrets/${secret}/versions`, {
        method: 'POST',
        body: JSON.stringify({ secret_string: value }),
      });
    },
    stop: () => child.kill(),
  };
}
