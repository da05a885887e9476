// Drivers with the same external provider, side by side: our driver, the upstream driver
// v1.6.0 as shipped, and the same upstream code with its client rate limit lifted, each
// calling upstream's fake provider (3 files, no network) on the provider API. Same API
// server, same kind of pods, sides alternating for BENCH_ROUNDS rounds (default 3).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { createNamespace, createPod, createSpc, deleteNamespace } from '../test/helpers/cluster.js';
import { DriverProcess, publishRequest } from '../test/helpers/driver.js';
import { FakeProvider } from '../test/helpers/fake-provider.js';
import { UpstreamDriver } from '../test/helpers/upstream-driver.js';
import type { Kubelet } from '../test/helpers/csi-client.js';
import { cpuMs, median, percentile, rssMiB } from './stats.js';

const nodeId = 'bench-provider-node';
const SINGLES = 40;
const BURST = 110;

interface Side {
  name: string;
  kubelet: Kubelet;
  pid: () => number;
  root: string;
}

interface Row {
  singleP50: number;
  singleP99: number;
  burstMs: number;
  burstCpuMs: number;
  providerCpuMs: number;
  rssAfter: number;
  unpublishBurstMs: number;
  unpublishOneP50: number;
}

const p = (xs: number[], q: number) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    q,
  );

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function calls(side: Side, pod: k8s.V1Pod) {
  const req = publishRequest(pod, 'fake-spc', side.root);
  return {
    publish: () => side.kubelet.call('Node', 'NodePublishVolume', req),
    unpublish: () =>
      retried(() =>
        side.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path }),
      ),
  };
}

/** As kubelet does: an unpublish that failed (upstream's umount can find the tmpfs busy) is asked again. */
async function retried(fn: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fn();
      return;
    } catch (err) {
      if (attempt >= 5) throw err;
      retries++;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

let retries = 0;

async function measure(side: Side, providerPid: number, round: number): Promise<Row> {
  const ns = await createNamespace(`bench-${side.name.replace(/\W+/g, '-')}-${round}`);
  try {
    await createSpc(ns, 'fake-spc', '', { provider: 'fake', parameters: { role: 'bench' } });
    const make = (prefix: string, n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) => createPod(ns, `${prefix}-${i}`, { nodeName: nodeId, spc: 'fake-spc' })),
      );
    const warm = await make('warm', 5);
    for (const pod of warm) await calls(side, pod).publish();
    const singles = await make('single', SINGLES);
    const single: number[] = [];
    for (const pod of singles) single.push(await timed(calls(side, pod).publish));
    const burst = await make('burst', BURST);
    const cpu0 = cpuMs(side.pid());
    const prov0 = cpuMs(providerPid);
    const burstMs = await timed(() => Promise.all(burst.map((pod) => calls(side, pod).publish())));
    const burstCpuMs = cpuMs(side.pid()) - cpu0;
    const providerCpuMs = cpuMs(providerPid) - prov0;
    const rssAfter = rssMiB(side.pid());
    const unpublishBurstMs = await timed(() => Promise.all(burst.map((pod) => calls(side, pod).unpublish())));
    const one: number[] = [];
    for (const pod of [...warm, ...singles]) one.push(await timed(calls(side, pod).unpublish));
    return {
      singleP50: p(single, 50),
      singleP99: p(single, 99),
      burstMs,
      burstCpuMs,
      providerCpuMs,
      rssAfter,
      unpublishBurstMs,
      unpublishOneP50: p(one, 50),
    };
  } finally {
    await deleteNamespace(ns);
  }
}

const COLUMNS: [keyof Row, string][] = [
  ['singleP50', 'single p50 ms'],
  ['singleP99', 'single p99 ms'],
  ['burstMs', `${BURST} concurrent ms`],
  ['burstCpuMs', 'driver CPU ms'],
  ['providerCpuMs', 'provider CPU ms'],
  ['rssAfter', 'driver RSS MiB'],
  ['unpublishBurstMs', `unpublish ${BURST} ms`],
  ['unpublishOneP50', 'unpublish one p50 ms'],
];

function table(rows: Map<string, Row>, ours: string): void {
  const names = [...rows.keys()];
  console.log(
    `| metric | ${names.join(' | ')} | ${names
      .filter((n) => n !== ours)
      .map((n) => `ours / ${n}`)
      .join(' | ')} |`,
  );
  console.log(`| --- |${' --- |'.repeat(names.length * 2 - 1)}`);
  const base = rows.get(ours)!;
  for (const [key, label] of COLUMNS) {
    const values = names.map((n) => rows.get(n)![key].toFixed(1));
    const ratios = names.filter((n) => n !== ours).map((n) => (base[key] / rows.get(n)![key]).toFixed(2));
    console.log(`| ${label} | ${values.join(' | ')} | ${ratios.join(' | ')} |`);
  }
}

export async function run(): Promise<void> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const providerDir = mkdtempSync(join(tmpdir(), 'cce-bench-providers-'));
  const provider = new FakeProvider(providerDir, 'fake');
  const files = ['db', 'api', 'tls'].map((f) => ({ path: f, mode: 0o644, contents: `${f}-value` }));
  await provider.start({ files, objects: { db: 'v1', api: 'v1', tls: 'v1' } });
  const ours = new DriverProcess({
    nodeId,
    csmsEndpoint: 'http://127.0.0.1:9',
    projectId: 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0',
    extraArgs: [`--provider-volume=${providerDir}`, '--additional-provider-volume-paths=', '-v=0'],
  });
  const shipped = new UpstreamDriver(nodeId, providerDir);
  const lifted = new UpstreamDriver(nodeId, providerDir, 'secrets-store-csi-driver-unlimited');
  await ours.start();
  await shipped.start(['-v=0']);
  await lifted.start(['-v=0']);
  const root = (d: UpstreamDriver) => mkdtempSync(join(d.work, 'kubelet-'));
  const sides: Side[] = [
    { name: 'ours', kubelet: ours.kubelet, pid: () => ours.pid!, root: ours.kubeletRoot },
    { name: 'upstream', kubelet: shipped.kubelet, pid: () => shipped.pid!, root: root(shipped) },
    { name: 'upstream, no rate limit', kubelet: lifted.kubelet, pid: () => lifted.pid!, root: root(lifted) },
  ];
  try {
    await new Promise((r) => setTimeout(r, 2000));
    console.log(`RSS at start (MiB): ${sides.map((s) => `${s.name} ${rssMiB(s.pid()).toFixed(1)}`).join(', ')}`);
    const results = new Map<string, Row[]>(sides.map((s) => [s.name, []]));
    const pid = providerPidOf(provider);
    for (let round = 1; round <= rounds; round++) {
      const byName = new Map<string, Row>();
      for (const side of sides) {
        const row = await measure(side, pid, round);
        results.get(side.name)!.push(row);
        byName.set(side.name, row);
      }
      console.log(`\nround ${round}`);
      table(byName, 'ours');
    }
    const medians = new Map<string, Row>();
    for (const [name, rows] of results) {
      const m = {} as Row;
      for (const [key] of COLUMNS) m[key] = median(rows.map((r) => r[key]));
      medians.set(name, m);
    }
    console.log(`\nmedians of ${rounds} rounds`);
    table(medians, 'ours');
    console.log(`unpublish calls retried after an error (all sides): ${retries}`);
  } finally {
    await ours.stop();
    await shipped.stop();
    await lifted.stop();
    await provider.stop();
  }
}

function providerPidOf(provider: FakeProvider): number {
  const pid = provider.pid;
  if (!pid) throw new Error('fake-provider is not running');
  return pid;
}
