// 1,000 mounted volumes x 5 objects drawn from 50 distinct `latest` secrets on one
// node: the cost of a rotation cycle when nothing changed and when one secret did.
// The driver runs as its own process, exactly as in production; cycles are observed
// through its /metrics, CSMS calls through the emulator, API writes through the API
// server's own metrics, file rewrites through each volume's ..data link.
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CsmsEmulator } from '../src/emulator/server.js';
import { forEachLimit } from '../src/util/async.js';
import {
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
} from '../test/helpers/cluster.js';
import { apiWritesOf } from './api-writes.js';
import { DriverProcess, publishRequest } from '../test/helpers/driver.js';
import { markdownHeader, markdownRow, rssMiB } from './stats.js';
import { namespacePolicyFlag } from './emulator-process.js';

const VOLUMES = Number(process.env.BENCH_VOLUMES ?? 1000);
const SECRETS = 50;
const SPCS = 50;
const projectId = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';
const creds = { accessKey: 'ROTBENCHAK', secretKey: 'rot-bench-sk' };
const nodeId = 'bench-rotation-node';
const WRITTEN = ['secretproviderclasspodstatuses', 'secrets', 'events'];
const apiWrites = () => apiWritesOf(WRITTEN);

type Request = ReturnType<typeof publishRequest>;

/** SPCS SPCs of 5 `latest` objects each over SECRETS secrets, and VOLUMES pods mounting them. */
async function mountAll(driver: DriverProcess, ns: string, requests: Request[]): Promise<void> {
  await createServiceAccount(
    ns,
    'app',
    Array.from({ length: SECRETS }, (_, i) => `s${i}`),
  );
  for (let i = 0; i < SPCS; i++) {
    const objects = Array.from({ length: 5 }, (_, k) => `s${(i + k * 10) % SECRETS}`);
    await createSpc(
      ns,
      `spc-${i}`,
      objects.map((o) => `- {objectName: ${o}, objectType: csms, objectVersion: latest}`).join('\n'),
    );
  }
  const t0 = performance.now();
  await forEachLimit(
    Array.from({ length: VOLUMES }, (_, i) => i),
    16,
    async (i) => {
      const spc = `spc-${i % SPCS}`;
      const pod = await createPod(ns, `p${i}`, { nodeName: nodeId, serviceAccountName: 'app', spc });
      const req = publishRequest(pod, spc, driver.kubeletRoot);
      await driver.kubelet.call('Node', 'NodePublishVolume', req);
      requests.push(req);
    },
  );
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`setup: ${VOLUMES} volumes x 5 objects (50 distinct latest secrets) mounted in ${secs}s`);
}

async function nextCycle(driver: DriverProcess): Promise<void> {
  const n = await driver.metric('rotation_reconcile_total');
  await eventually(
    'a rotation cycle',
    async () => ((await driver.metric('rotation_reconcile_total')) > n ? true : undefined),
    60_000,
  );
  await new Promise((r) => setTimeout(r, 500)); // events are recorded in the background
}

/** One cycle's time, CSMS calls, rewritten volumes, API writes and memory. */
async function measureCycle(driver: DriverProcess, emulator: CsmsEmulator, requests: Request[], label: string) {
  const links = () => Promise.all(requests.map((r) => readlink(join(r.target_path, '..data'))));
  const before = {
    calls: emulator.store.total,
    writes: await apiWrites(),
    links: await links(),
    secs: await driver.metric('rotation_reconcile_duration_sec_sum'),
  };
  await nextCycle(driver);
  const writes = await apiWrites();
  const rewritten = (await links()).filter((l, i) => l !== before.links[i]).length;
  const ms = ((await driver.metric('rotation_reconcile_duration_sec_sum')) - before.secs) * 1000;
  const delta = WRITTEN.map((k) => `${k} ${writes[k] - before.writes[k]}`).join(', ');
  const mib = async (m: string) => ((await driver.metric(m)) / 1048576).toFixed(0);
  const heap = `${await mib('nodejs_heap_size_used_bytes')} of ${await mib('nodejs_heap_size_total_bytes')}`;
  const calls = emulator.store.total - before.calls;
  console.log(markdownRow([label, ms.toFixed(0), calls, rewritten, delta, rssMiB(driver.pid!).toFixed(1), heap]));
}

export async function run(): Promise<void> {
  const emulator = new CsmsEmulator({
    projectId,
    credentials: [creds],
    secrets: Array.from({ length: SECRETS }, (_, i) => ({ name: `s${i}`, versions: [`value-${i}-1`] })),
  });
  const driver = new DriverProcess({
    nodeId,
    csmsEndpoint: await emulator.listen(),
    projectId,
    env: { HUAWEICLOUD_SDK_AK: creds.accessKey, HUAWEICLOUD_SDK_SK: creds.secretKey },
    extraArgs: ['-v=0', '--rotation-poll-interval=10s', ...namespacePolicyFlag()],
  });
  await driver.start();
  const ns = await createNamespace('bench-rot', ['*']);
  const requests: Request[] = [];
  try {
    await mountAll(driver, ns, requests);
    await nextCycle(driver);
    console.log(
      markdownHeader([
        'cycle',
        'ms',
        'CSMS calls',
        'volumes rewritten',
        'API writes',
        'driver RSS MiB',
        'V8 heap used of total MiB',
      ]),
    );
    await measureCycle(driver, emulator, requests, 'nothing changed');
    emulator.store.addVersion('s7', { secret_string: 'value-7-2' });
    await measureCycle(driver, emulator, requests, 'one secret changed');
  } finally {
    await forEachLimit(requests, 16, (r) =>
      driver.kubelet
        .call('Node', 'NodeUnpublishVolume', { volume_id: r.volume_id, target_path: r.target_path })
        .then(() => undefined),
    );
    await driver.stop();
    await emulator.close();
    await deleteNamespace(ns);
  }
}
