// The round trip of a CSI call that does nothing (NodeGetCapabilities) to our driver and to the
// upstream driver, back to back and with 20 ms between calls, as kubelet's calls come. It is
// the floor under every single-mount figure: what transport and waking up cost either side.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kubelet } from '../../test/helpers/csi-client.js';
import { UpstreamDriver } from '../../test/helpers/upstream-driver.js';
import { sleep } from '../../src/util/async.js';
import { driverWithoutCsms } from '../side-by-side.js';
import { percentile } from '../stats.js';

const CALLS = 200;

async function roundTrips(kubelet: Kubelet, gapMs: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    if (gapMs) await sleep(gapMs);
    const start = performance.now();
    await kubelet.call('Node', 'NodeGetCapabilities', {});
    ms.push(performance.now() - start);
  }
  return ms.sort((a, b) => a - b);
}

export async function run(): Promise<void> {
  const ours = driverWithoutCsms('rtt-ours');
  const upstream = new UpstreamDriver(
    'rtt-upstream',
    mkdtempSync(join(tmpdir(), 'cce-rtt-providers-')),
    'secrets-store-csi-driver-unlimited',
  );
  await ours.start();
  await upstream.start(['-v=0']);
  try {
    console.log('| round | gap between calls | ours p50 / p90 ms | upstream p50 / p90 ms |');
    console.log('| --- | --- | --- | --- |');
    for (let round = 1; round <= 3; round++) {
      for (const gapMs of [0, 20]) {
        const cells = [];
        for (const kubelet of [ours.kubelet, upstream.kubelet]) {
          const ms = await roundTrips(kubelet, gapMs);
          cells.push(`${percentile(ms, 50).toFixed(2)} / ${percentile(ms, 90).toFixed(2)}`);
        }
        console.log(`| ${round} | ${gapMs} ms | ${cells.join(' | ')} |`);
      }
    }
  } finally {
    await Promise.all([ours.stop(), upstream.stop()]);
  }
}
