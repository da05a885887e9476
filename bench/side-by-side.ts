// The harness of the side-by-side benchmarks: drivers on one API server, the same kind of
// pods for each, sides alternating within each round, per-round and median tables with our
// side's ratios. Each side brings how to make its SPC and which processes count as its CPU.
import type * as k8s from '@kubernetes/client-node';
import { core, createNamespace, createPod, createServiceAccount, deleteNamespace } from '../test/helpers/cluster.js';
import type { Kubelet } from '../test/helpers/csi-client.js';
import { DriverProcess, publishRequest } from '../test/helpers/driver.js';
import { BENCH_PROJECT_ID } from './emulator-process.js';
import { anonMiB, cpuMs, markdownHeader, markdownRow, median, percentile, rssMiB } from './stats.js';

/** Each side has a node of its own, so no driver's pod cache sees the other sides' pods. */
export const benchNode = (side: 'ours' | `ours-${string}` | 'upstream' | 'upstream-lifted') => `bench-${side}-node`;
export const BENCH_SPC = 'bench-spc';
const SINGLES = 40;
const BURST = 110;

export interface Side {
  name: string;
  /** The node its driver serves; the side's pods are scheduled there. */
  node: string;
  kubelet: Kubelet;
  /** The driver's process. */
  pid: () => number;
  /** Other processes whose CPU is the side's (an external provider). */
  helperPids?: () => number[];
  /** kubelet's root folder for this side's target paths. */
  root: string;
  /** Creates the side's SPC `BENCH_SPC` in `ns` (the ServiceAccount `app` exists). */
  makeSpc(ns: string): Promise<void>;
  /** Where the driver's memory goes, MiB by part (our driver: from its /metrics). */
  memory?: () => Promise<Record<string, number>>;
}

const MiB = 1024 * 1024;

/** Our driver on `nodeId` with no CSMS to reach: for benches whose volumes come from elsewhere, or none. */
export function driverWithoutCsms(nodeId: string, extraArgs: string[] = []): DriverProcess {
  return new DriverProcess({
    nodeId,
    csmsEndpoint: 'http://127.0.0.1:9',
    projectId: BENCH_PROJECT_ID,
    extraArgs: [...extraArgs, '-v=0'],
  });
}

/**
 * Our driver's resident memory by part: file pages (the node binary and libraries, which the
 * page cache shares) and anonymous memory, which is V8's heap (committed; not all of it need be
 * resident), external memory (Buffers) and the native rest (malloc, thread stacks).
 */
export async function ourMemory(driver: DriverProcess): Promise<Record<string, number>> {
  const [rss, anon] = [rssMiB(driver.pid!), anonMiB(driver.pid!)];
  const [heap, used, code, external] = await Promise.all([
    driver.metric('nodejs_heap_size_total_bytes'),
    driver.metric('nodejs_heap_size_used_bytes'),
    driver.metric('nodejs_heap_space_size_total_bytes', { space: 'code' }),
    driver.metric('nodejs_external_memory_bytes'),
  ]);
  return {
    'resident (RSS)': rss,
    'file pages (node binary, libraries)': rss - anon,
    anonymous: anon,
    'V8 heap, committed': heap / MiB,
    'V8 heap, of it code space': code / MiB,
    'V8 heap, of it in use': used / MiB,
    'external (Buffers)': external / MiB,
    'native rest (malloc, stacks)': anon - (heap + external) / MiB,
  };
}

export interface Row {
  rssStart: number;
  singleP50: number;
  singleP99: number;
  burstMs: number;
  burstCpuMs: number;
  burstCpuWithChildrenMs: number;
  rssAfter: number;
  anonAfter: number;
  unpublishBurstMs: number;
  unpublishOneP50: number;
  memory?: Record<string, number>;
}

/** Every number of a row. */
type Metric = Exclude<keyof Row, 'memory'>;

const COLUMNS: [Metric, string][] = [
  ['singleP50', 'single mount p50 ms'],
  ['singleP99', 'single mount p99 ms'],
  ['burstMs', `${BURST} concurrent mounts ms`],
  ['burstCpuMs', 'CPU for the burst ms (driver + provider)'],
  ['burstCpuWithChildrenMs', 'CPU for the burst ms, with the commands they ran (mount)'],
  ['rssStart', 'driver RSS before the round MiB'],
  ['rssAfter', `driver RSS after the burst MiB`],
  ['anonAfter', 'driver anonymous memory after the burst MiB'],
  ['unpublishBurstMs', `unpublish ${BURST} concurrent ms`],
  ['unpublishOneP50', 'unpublish one at a time p50 ms'],
];

const pct = (xs: number[], q: number) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    q,
  );

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

let retries = 0;

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

function calls(side: Side, pod: k8s.V1Pod) {
  const req = publishRequest(pod, BENCH_SPC, side.root);
  const target = { volume_id: req.volume_id, target_path: req.target_path };
  return {
    publish: () => side.kubelet.call('Node', 'NodePublishVolume', req),
    unpublish: () => retried(() => side.kubelet.call('Node', 'NodeUnpublishVolume', target)),
  };
}

const sideCpu = (side: Side) =>
  [side.pid(), ...(side.helperPids?.() ?? [])]
    .map(cpuMs)
    .reduce((a, b) => ({ own: a.own + b.own, withChildren: a.withChildren + b.withChildren }));

async function measure(side: Side, round: number): Promise<Row> {
  const ns = await createNamespace(`${side.node}-${round}`, ['*']);
  try {
    await createServiceAccount(ns, 'app', ['db', 'api', 'tls']);
    await side.makeSpc(ns);
    const make = (prefix: string, n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) =>
          createPod(ns, `${prefix}-${i}`, { nodeName: side.node, serviceAccountName: 'app', spc: BENCH_SPC }),
        ),
      );
    const rssStart = rssMiB(side.pid());
    const warm = await make('warm', 5);
    for (const pod of warm) await calls(side, pod).publish();
    const singles = await make('single', SINGLES);
    const single: number[] = [];
    for (const pod of singles) single.push(await timed(calls(side, pod).publish));
    const burst = await make('burst', BURST);
    const cpu0 = sideCpu(side);
    const burstMs = await timed(() => Promise.all(burst.map((pod) => calls(side, pod).publish())));
    const cpu1 = sideCpu(side);
    const [burstCpuMs, burstCpuWithChildrenMs] = [cpu1.own - cpu0.own, cpu1.withChildren - cpu0.withChildren];
    const [rssAfter, anonAfter] = [rssMiB(side.pid()), anonMiB(side.pid())];
    const memory = await side.memory?.();
    const unpublishBurstMs = await timed(() => Promise.all(burst.map((pod) => calls(side, pod).unpublish())));
    const one: number[] = [];
    for (const pod of [...warm, ...singles]) one.push(await timed(calls(side, pod).unpublish));
    const [singleP50, singleP99, unpublishOneP50] = [pct(single, 50), pct(single, 99), pct(one, 50)];
    return {
      rssStart,
      singleP50,
      singleP99,
      burstMs,
      burstCpuMs,
      burstCpuWithChildrenMs,
      rssAfter,
      anonAfter,
      unpublishBurstMs,
      unpublishOneP50,
      memory,
    };
  } finally {
    // What kubelet does once a pod's volumes are gone. With no kubelet on these nodes the pods of
    // a deleted namespace would stay Terminating, and each side's pod cache would carry every
    // earlier round's pods into the next.
    await core.deleteCollectionNamespacedPod({ namespace: ns, gracePeriodSeconds: 0 });
    await deleteNamespace(ns);
  }
}

function table(rows: Map<string, Row>, ours: string): void {
  const names = [...rows.keys()];
  const others = names.filter((n) => n !== ours);
  console.log(markdownHeader(['metric', ...names, ...others.map((n) => `ours / ${n}`)]));
  const base = rows.get(ours)!;
  for (const [key, label] of COLUMNS) {
    const values = names.map((n) => rows.get(n)![key].toFixed(1));
    const ratios = others.map((n) => (base[key] / rows.get(n)![key]).toFixed(2));
    console.log(markdownRow([label, ...values, ...ratios]));
  }
}

/** The medians of a side's memory by part after the burst, if the side tells them. */
function memoryTable(name: string, rows: Row[]): void {
  const parts = Object.keys(rows[0].memory ?? {});
  if (parts.length === 0) return;
  console.log(`\n${name}: memory after the burst, MiB (medians)`);
  console.log(markdownHeader(['part', 'MiB']));
  for (const part of parts) console.log(markdownRow([part, median(rows.map((r) => r.memory![part])).toFixed(1)]));
}

/** Runs `rounds` rounds over `sides` (the first is ours) and prints each round and the medians. */
export async function sideBySide(sides: Side[], rounds: number): Promise<void> {
  const results = new Map<string, Row[]>(sides.map((s) => [s.name, []]));
  for (let round = 1; round <= rounds; round++) {
    const byName = new Map<string, Row>();
    for (const side of sides) {
      const row = await measure(side, round);
      results.get(side.name)!.push(row);
      byName.set(side.name, row);
    }
    console.log(`\nround ${round}`);
    table(byName, sides[0].name);
  }
  const medians = new Map<string, Row>();
  for (const [name, rows] of results) {
    const m = {} as Row;
    for (const [key] of COLUMNS) m[key] = median(rows.map((r) => r[key]));
    medians.set(name, m);
  }
  console.log(`\nmedians of ${rounds} rounds`);
  table(medians, sides[0].name);
  for (const [name, rows] of results) memoryTable(name, rows);
  console.log(`unpublish calls retried after an error (all sides): ${retries}`);
}
