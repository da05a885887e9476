// NodePublishVolume latency for one volume at a time and for one node's worth of
// pods (110) at once, 3 objects each, against the real API server and the CSMS
// emulator (its own process); then the driver's RSS.
import * as k8s from '@kubernetes/client-node';
import { GROUP, SPCPS_PLURAL, VERSION } from '../src/crds/types.js';
import { desiredSpcps } from '../src/driver/spcps.js';
import type { PublishRequest } from '../src/driver/volume-request.js';
import { loadKubeConfig } from '../src/kube/client.js';
import {
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  kubeconfigPath,
} from '../test/helpers/cluster.js';
import { DriverProcess, publishRequest } from '../test/helpers/driver.js';
import {
  BENCH_CREDS,
  BENCH_CREDS_ENV,
  BENCH_PROJECT_ID,
  namespacePolicyFlag,
  startEmulatorProcess,
} from './emulator-process.js';
import { median, printTable, rssMiB, summary } from './stats.js';

const nodeId = 'bench-node';

/** One SPCPS create per pod, as a publish makes it, timed alone: the API server's share of a mount. */
async function spcpsCreates(ns: string, pods: k8s.V1Pod[]): Promise<number[]> {
  const custom = loadKubeConfig(kubeconfigPath).makeApiClient(k8s.CustomObjectsApi);
  const times: number[] = [];
  for (const pod of pods) {
    const req = {
      podName: pod.metadata!.name!,
      podNamespace: ns,
      spcName: 'floor',
      targetPath: '/floor',
    } as PublishRequest;
    const body = desiredSpcps(req, pod.metadata!.uid!, nodeId, [
      { id: 'db', version: 'v2' },
      { id: 'api', version: 'v1' },
      { id: 'tls', version: 'v2' },
    ]);
    const t0 = performance.now();
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SPCPS_PLURAL,
      namespace: ns,
      body,
    });
    times.push(performance.now() - t0);
  }
  return times;
}

interface Bench {
  driver: DriverProcess;
  emulator: Awaited<ReturnType<typeof startEmulatorProcess>>;
  ns: string;
  root: string;
  /** The result table, in the order measured. */
  rows: (string | number)[][];
}

const makePods = (ns: string, prefix: string, n: number) =>
  Promise.all(
    Array.from({ length: n }, (_, i) =>
      createPod(ns, `${prefix}-${i}`, { nodeName: nodeId, serviceAccountName: 'app', spc: 'three' }),
    ),
  );

async function timedPublish(b: Bench, pod: k8s.V1Pod): Promise<number> {
  const t0 = performance.now();
  await b.driver.kubelet.call('Node', 'NodePublishVolume', publishRequest(pod, 'three', b.root));
  return performance.now() - t0;
}

/** One mount at a time, after a warm-up (JIT, connections, caches). */
async function measureSingles(b: Bench): Promise<k8s.V1Pod[]> {
  const warm = await makePods(b.ns, 'warm', 5);
  for (const p of warm) await timedPublish(b, p);
  const singles = await makePods(b.ns, 'single', 40);
  const single: number[] = [];
  for (const p of singles) single.push(await timedPublish(b, p));
  b.rows.push(['single mount, one at a time (3 objects)', summary(single)]);
  const floor = summary(await spcpsCreates(b.ns, singles));
  b.rows.push(["its floor: an SPCPS create alone (the driver's client, same API server)", floor]);
  if (Number(process.env.BENCH_V) >= 4) printCriticalPath(b.driver.logs, singles.length, single);
  return [...warm, ...singles];
}

/**
 * A single mount's sequential steps, medians over the last `n` mounts, from the driver's -v=4
 * `Publish phases` lines: what kubelet waits for, in order. The tmpfs (mount, then files) and the
 * SPCPS create run side by side; what the client saw beyond the handler is gRPC and the wake-ups.
 */
function printCriticalPath(logs: string, n: number, seen: number[]): void {
  const lines = logs
    .split('\n')
    .filter((l) => l.includes('"Publish phases (ms)"'))
    .slice(-n);
  const field = (name: string) =>
    median(lines.map((l) => Number(new RegExp(`${name}="([0-9.]+)"`).exec(l)?.[1] ?? NaN)));
  const [plan, fetch, mount, files, status, sync] = ['plan', 'fetch', 'mount', 'files', 'status', 'sync'].map(field);
  const handler = plan + fetch + Math.max(mount + files, status) + sync;
  const total = median(seen);
  printTable(
    ['step of one mount (medians of ' + String(lines.length) + ')', 'ms', 'share'],
    [
      ['plan: the pod, SPC, ServiceAccount and Namespace (kept in memory), the checks', plan],
      ['fetch: 3 signed CSMS reads, side by side', fetch],
      ['tmpfs mount (mount(2) through koffi)', mount],
      ['the files written (..data swap)', files],
      ['SPCPS create (side by side with the tmpfs and files)', status],
      ['Secret sync and the answer', sync],
      ['outside the handler: the volume folder the bench makes as kubelet does, gRPC, wake-ups', total - handler],
      ['total, as the client saw it (p50)', total],
    ].map(([what, v]) => [what as string, (v as number).toFixed(2), `${((100 * (v as number)) / total).toFixed(0)}%`]),
  );
}

async function measureBurst(b: Bench): Promise<k8s.V1Pod[]> {
  const burst = await makePods(b.ns, 'burst', 110);
  await b.emulator.resetCounts();
  const t0 = performance.now();
  const each = await Promise.all(burst.map((p) => timedPublish(b, p)));
  const wall = performance.now() - t0;
  b.rows.push(['110 mounts at once (3 objects each), all done', `${wall.toFixed(0)} ms`]);
  b.rows.push(['110 mounts at once, each call', summary(each)]);
  b.rows.push(['CSMS requests for those 110 (330 objects)', await b.emulator.total()]);
  return burst;
}

async function reportMemory(b: Bench, volumes: number): Promise<void> {
  const rss = () => rssMiB(b.driver.pid!).toFixed(1);
  b.rows.push([`driver RSS with ${volumes} volumes, right after the burst`, `${rss()} MiB`]);
  await new Promise((r) => setTimeout(r, 10_000)); // V8's memory reducer runs once the process is idle
  const mib = async (m: string) => ((await b.driver.metric(m)) / 1048576).toFixed(0);
  b.rows.push([`driver RSS with ${volumes} volumes, after 10 s idle`, `${rss()} MiB`]);
  const heap = `${await mib('nodejs_heap_size_used_bytes')} of ${await mib('nodejs_heap_size_total_bytes')} MiB`;
  b.rows.push(['its V8 heap used, and external memory', `${heap}; ${await mib('nodejs_external_memory_bytes')} MiB`]);
}

export async function run(): Promise<void> {
  const emulator = await startEmulatorProcess({
    projectId: BENCH_PROJECT_ID,
    credentials: [BENCH_CREDS],
    secrets: ['db', 'api', 'tls'].map((name) => ({ name, versions: [`${name}-value-1`, `${name}-value-2`] })),
  });
  const driver = new DriverProcess({
    nodeId,
    csmsEndpoint: emulator.url,
    projectId: BENCH_PROJECT_ID,
    env: BENCH_CREDS_ENV,
    extraArgs: [`-v=${process.env.BENCH_V ?? 0}`, ...namespacePolicyFlag()],
  });
  await driver.start();
  await new Promise((r) => setTimeout(r, 2000));
  const ns = await createNamespace('bench', ['*']);
  const b: Bench = { driver, emulator, ns, root: driver.kubeletRoot, rows: [] };
  b.rows.push(['driver RSS at start (caches synced, no volume)', `${rssMiB(driver.pid!).toFixed(1)} MiB`]);
  try {
    await createServiceAccount(ns, 'app', ['db', 'api', 'tls']);
    const objects = ['db:latest', 'api:v1', 'tls:latest'].map((o) => {
      const [name, version] = o.split(':');
      return `- {objectName: ${name}, objectType: csms, objectVersion: ${version}}\n`;
    });
    await createSpc(ns, 'three', objects.join(''));
    const pods = [...(await measureSingles(b)), ...(await measureBurst(b))];
    await reportMemory(b, pods.length);
    printTable(['publish', 'value'], b.rows);
    for (const p of pods) {
      const req = publishRequest(p, 'three', b.root);
      await driver.kubelet.call('Node', 'NodeUnpublishVolume', {
        volume_id: req.volume_id,
        target_path: req.target_path,
      });
    }
  } finally {
    await driver.stop();
    emulator.stop();
    await deleteNamespace(ns);
  }
}
