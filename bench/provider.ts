// Drivers with the same external provider, side by side: our driver, the upstream driver
// v1.6.0 as shipped, and the same upstream code with its client rate limit lifted, each
// calling upstream's fake provider (3 files, no network) on the provider API.
// BENCH_ROUNDS rounds (default 3); see side-by-side.ts.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSpc } from '../test/helpers/cluster.js';
import { FakeProvider } from '../test/helpers/fake-provider.js';
import { UpstreamDriver } from '../test/helpers/upstream-driver.js';
import { benchNode, BENCH_SPC, driverWithoutCsms, ourMemory, sideBySide, type Side } from './side-by-side.js';

/** Upstream's fake provider on `<dir>/fake.sock`, returning 3 small files. */
export async function startFakeProvider(dir: string): Promise<FakeProvider> {
  const provider = new FakeProvider(dir, 'fake');
  const files = ['db', 'api', 'tls'].map((f) => ({ path: f, mode: 0o644, contents: `${f}-value` }));
  await provider.start({ files, objects: { db: 'v1', api: 'v1', tls: 'v1' } });
  return provider;
}

export const fakeSpc = (ns: string) =>
  createSpc(ns, BENCH_SPC, '', { provider: 'fake', parameters: { role: 'bench' } });

/** The upstream driver as shipped and with its rate limit lifted, both on `provider`. */
export async function upstreamSides(providerDir: string, provider: FakeProvider) {
  const shipped = new UpstreamDriver(benchNode('upstream'), providerDir);
  const lifted = new UpstreamDriver(benchNode('upstream-lifted'), providerDir, 'secrets-store-csi-driver-unlimited');
  await shipped.start(['-v=0']);
  await lifted.start(['-v=0']);
  const side = (name: string, node: string, d: UpstreamDriver): Side => ({
    name,
    node,
    kubelet: d.kubelet,
    pid: () => d.pid!,
    helperPids: () => [provider.pid!],
    root: mkdtempSync(join(d.work, 'kubelet-')),
    makeSpc: fakeSpc,
  });
  const sides = [
    side('upstream', benchNode('upstream'), shipped),
    side('upstream, no rate limit', benchNode('upstream-lifted'), lifted),
  ];
  return { sides, stop: async () => Promise.all([shipped.stop(), lifted.stop()]) };
}

export async function run(): Promise<void> {
  const providerDir = mkdtempSync(join(tmpdir(), 'cce-bench-providers-'));
  const provider = await startFakeProvider(providerDir);
  const ours = driverWithoutCsms(benchNode('ours'), [
    `--provider-volume=${providerDir}`,
    '--additional-provider-volume-paths=',
  ]);
  await ours.start();
  const upstream = await upstreamSides(providerDir, provider);
  const oursSide: Side = {
    name: 'ours',
    node: benchNode('ours'),
    kubelet: ours.kubelet,
    pid: () => ours.pid!,
    helperPids: () => [provider.pid!],
    root: ours.kubeletRoot,
    makeSpc: fakeSpc,
    memory: () => ourMemory(ours),
  };
  try {
    await new Promise((r) => setTimeout(r, 2000));
    await sideBySide([oursSide, ...upstream.sides], Number(process.env.BENCH_ROUNDS ?? 3));
  } finally {
    await ours.stop();
    await upstream.stop();
    await provider.stop();
  }
}
