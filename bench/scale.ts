// What one node pays for the rest of the cluster: N driver processes, each its own "node"
// with a few mounted pods in its own namespace, against one API server, while
// ServiceAccounts and SPCs in namespaces none of them use are created and rewritten in
// growing numbers. Per node and per stage: bytes received (rchar), CPU, RSS and the watch
// events it decoded. BENCH_BUNDLE_B=<another build's dist/cce-secrets-manager.mjs> runs a
// second set of nodes from that build beside them, under the same churn.
import { readFileSync } from 'node:fs';
import { CsmsEmulator } from '../src/emulator/server.js';
import { forEachLimit } from '../src/util/async.js';
import {
  core,
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  custom,
  deleteNamespace,
  GROUP,
} from '../test/helpers/cluster.js';
import { DriverProcess, publishRequest, unmountAll } from '../test/helpers/driver.js';
import { cpuMs, markdownHeader, markdownRow, rssMiB } from './stats.js';

const NODES = Number(process.env.BENCH_NODES ?? 3);
const STAGES = (process.env.BENCH_SCALE_STAGES ?? '1000,2000,4000').split(',').map(Number);
const UNRELATED_NAMESPACES = 10;
const projectId = 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0';
const creds = { accessKey: 'SCALEAK', secretKey: 'scale-sk' };
/** What a team's annotations and parameters weigh, typically: a few KB. */
const payload = (i: number, round: number) => `${round}-${i}-`.padEnd(2_000, 'x');

interface Node {
  label: string;
  driver: DriverProcess;
  ns: string;
}

function received(pid: number): number {
  return Number(/^rchar:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
}

async function startNode(label: string, i: number, endpoint: string, executable?: string): Promise<Node> {
  const driver = new DriverProcess({
    nodeId: `scale-${label}-${i}`,
    csmsEndpoint: endpoint,
    projectId,
    env: { HUAWEICLOUD_SDK_AK: creds.accessKey, HUAWEICLOUD_SDK_SK: creds.secretKey },
    extraArgs: ['-v=0', '--enable-secret-rotation=false', '--namespace-policy=off'],
    executable,
  });
  await driver.start();
  const ns = await createNamespace(`scale-${label}-${i}`);
  await createServiceAccount(ns, 'app', ['s']);
  await createSpc(ns, 'spc', '- {objectName: s, objectType: csms, objectVersion: v1}');
  for (let p = 0; p < 5; p++) {
    const pod = await createPod(ns, `p${p}`, { nodeName: driver.opts.nodeId, serviceAccountName: 'app', spc: 'spc' });
    await driver.kubelet.call('Node', 'NodePublishVolume', publishRequest(pod, 'spc', driver.kubeletRoot));
  }
  return { label, driver, ns };
}

/** Creates `count` new ServiceAccounts and SPCs (half each) across the unrelated namespaces, then rewrites every object there once. */
async function churn(namespaces: string[], existing: number, count: number, round: number): Promise<number> {
  const names = Array.from({ length: count / 2 }, (_, k) => existing / 2 + k);
  await forEachLimit(names, 8, async (k) => {
    const ns = namespaces[k % namespaces.length];
    await createServiceAccount(ns, `sa-${k}`, payload(k, round));
    await createSpc(ns, `spc-${k}`, payload(k, round));
  });
  const all = Array.from({ length: existing / 2 + count / 2 }, (_, k) => k);
  await forEachLimit(all, 8, async (k) => {
    const namespace = namespaces[k % namespaces.length];
    const sa = await core.readNamespacedServiceAccount({ namespace, name: `sa-${k}` });
    sa.metadata!.annotations = { 'cce.io/dew-resource': payload(k, round + 1) };
    await core.replaceNamespacedServiceAccount({ namespace, name: `sa-${k}`, body: sa });
    const spcApi = { group: GROUP, version: 'v1', plural: 'secretproviderclasses', namespace, name: `spc-${k}` };
    const spc = (await custom.getNamespacedCustomObject(spcApi)) as { spec: { parameters: { objects: string } } };
    spc.spec.parameters.objects = payload(k, round + 1);
    await custom.replaceNamespacedCustomObject({ ...spcApi, body: spc });
  });
  return count + all.length * 2;
}

async function measure(nodes: Node[], work: () => Promise<void>) {
  const before = await Promise.all(
    nodes.map(async (n) => ({
      bytes: received(n.driver.pid!),
      cpu: cpuMs(n.driver.pid!).own,
      events: await events(n),
    })),
  );
  await work();
  await new Promise((r) => setTimeout(r, 3_000)); // watch events still in flight
  return Promise.all(
    nodes.map(async (n, i) => ({
      label: n.label,
      kib: (received(n.driver.pid!) - before[i].bytes) / 1024,
      cpu: cpuMs(n.driver.pid!).own - before[i].cpu,
      events: (await events(n)) - before[i].events,
      rss: rssMiB(n.driver.pid!),
    })),
  );
}

/** Watch events decoded for the two kinds; NaN from a build without the counter. */
async function events(n: Node): Promise<number> {
  const text = await (await fetch(`${n.driver.opsUrl}/metrics`)).text();
  if (!text.includes('# TYPE kube_watch_events_total')) return NaN;
  return (
    (await n.driver.metric('kube_watch_events_total', { kind: 'ServiceAccount' })) +
    (await n.driver.metric('kube_watch_events_total', { kind: 'SecretProviderClass' }))
  );
}

type Row = Awaited<ReturnType<typeof measure>>[number];

function report(stage: string, writes: number, rows: Row[]): void {
  for (const label of [...new Set(rows.map((r) => r.label))]) {
    const mine = rows.filter((r) => r.label === label);
    const mean = (f: (r: Row) => number) => mine.reduce((s, r) => s + f(r), 0) / mine.length;
    const events = mean((r) => r.events);
    console.log(
      markdownRow([
        stage,
        writes,
        label,
        mean((r) => r.kib).toFixed(0),
        mean((r) => r.cpu).toFixed(0),
        Math.max(...mine.map((r) => r.rss)).toFixed(1),
        Number.isNaN(events) ? '—' : events.toFixed(0),
      ]),
    );
  }
}

export async function run(): Promise<void> {
  const emulator = new CsmsEmulator({ projectId, credentials: [creds], secrets: [{ name: 's', versions: ['v'] }] });
  const endpoint = await emulator.listen();
  const nodes: Node[] = [];
  const unrelated: string[] = [];
  try {
    for (let i = 0; i < NODES; i++) nodes.push(await startNode('this-build', i, endpoint));
    const other = process.env.BENCH_BUNDLE_B;
    if (other) for (let i = 0; i < NODES; i++) nodes.push(await startNode('other-build', i, endpoint, other));
    for (let i = 0; i < UNRELATED_NAMESPACES; i++) unrelated.push(await createNamespace('scale-unrelated'));
    console.log(
      `${NODES} node(s) per build, 5 mounted pods each; churn in ${UNRELATED_NAMESPACES} namespaces no node uses`,
    );
    console.log(
      markdownHeader([
        'stage',
        'API writes',
        'build',
        'received KiB / node',
        'CPU ms / node',
        'max RSS MiB',
        'watch events / node',
      ]),
    );
    report('idle 10 s', 0, await measure(nodes, () => new Promise((r) => setTimeout(r, 10_000))));
    let objects = 0;
    for (const [round, count] of STAGES.entries()) {
      let writes = 0;
      const rows = await measure(nodes, async () => {
        writes = await churn(unrelated, objects, count - objects, round * 2);
      });
      objects = count;
      report(`${count} objects elsewhere`, writes, rows);
    }
  } finally {
    for (const n of nodes) {
      await n.driver.stop();
      unmountAll(n.driver.kubeletRoot);
      await deleteNamespace(n.ns);
    }
    for (const ns of unrelated) await deleteNamespace(ns);
    await emulator.close();
  }
}
