// 1,000 mounted volumes x 5 objects drawn from 50 distinct `latest` secrets on one
// node: the cost of a rotation cycle when nothing changed and when one secret did.
// The driver runs as its own process, exactly as in production; cycles are observed
// through its /metrics, CSMS calls through the emulator, API writes through the API
// server's own metrics, file rewrites through each volume's ..data link.
import { readlink } from 'node:fs/promises';
import { request } from 'node:https';
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
  kc,
} from '../test/helpers/cluster.js';
import { DriverProcess, publishRequest } from '../test/helpers/driver.js';
import { rssMiB } from './stats.js';

const VOLUMES = Number(process.env.BENCH_VOLUMES ?? 1000);
const SECRETS = 50;
const SPCS = 50;
const projectId = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';
const creds = { accessKey: 'ROTBENCHAK', secretKey: 'rot-bench-sk' };
const nodeId = 'bench-rotation-node';
const WRITTEN = ['secretproviderclasspodstatuses', 'secrets', 'events'];

/** Write requests the API server has served, by resource, from its own metrics. */
async function apiWrites(): Promise<Record<string, number>> {
  const text = await new Promise<string>((res, rej) => {
    request(
      `${kc.getCurrentCluster()!.server}/metrics`,
      { headers: { Authorization: `Bearer ${kc.getCurrentUser()!.token}` }, rejectUnauthorized: false },
      (r) => {
        let body = '';
        r.on('data', (d) => {
          body += d;
        });
        r.on('end', () => res(body));
      },
    )
      .on('error', rej)
      .end();
  });
  const out: Record<string, number> = Object.fromEntries(WRITTEN.map((k) => [k, 0]));
  for (const m of text.matchAll(/^apiserver_request_total\{([^}]*)\} (\d+)/gm)) {
    const l = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(l.verb) && WRITTEN.includes(l.resource))
      out[l.resource] += Number(m[2]);
  }
  return out;
}

export async function run(): Promise<void> {
  const emulator = new CsmsEmulator({
    projectId,
    credentials: [creds],
    secrets: Array.from({ length: SECRETS }, (_, i) => ({ name: `s${i}`, versions: [`value-${i}-1`] })),
  });
  const endpoint = await emulator.listen();
  const driver = new DriverProcess({
    nodeId,
    csmsEndpoint: endpoint,
    projectId,
    env: { HUAWEICLOUD_SDK_AK: creds.accessKey, HUAWEICLOUD_SDK_SK: creds.secretKey },
    extraArgs: ['-v=0', '--rotation-poll-interval=10s'],
  });
  await driver.start();
  const ns = await createNamespace('bench-rot');
  const root = driver.kubeletRoot;
  const requests: ReturnType<typeof publishRequest>[] = [];
  try {
    await createServiceAccount(
      ns,
      'app',
      Array.from({ length: SECRETS }, (_, i) => `s${i}`),
    );
    for (let i = 0; i < SPCS; i++) {
      await createSpc(
        ns,
        `spc-${i}`,
        Array.from(
          { length: 5 },
          (_, k) => `- {objectName: s${(i + k * 10) % SECRETS}, objectType: csms, objectVersion: latest}`,
        ).join('\n'),
      );
    }
    const t0 = performance.now();
    await forEachLimit(
      Array.from({ length: VOLUMES }, (_, i) => i),
      16,
      async (i) => {
        const pod = await createPod(ns, `p${i}`, {
          nodeName: nodeId,
          serviceAccountName: 'app',
          spc: `spc-${i % SPCS}`,
        });
        const req = publishRequest(pod, `spc-${i % SPCS}`, root);
        await driver.kubelet.call('Node', 'NodePublishVolume', req);
        requests.push(req);
      },
    );
    console.log(
      `setup: ${VOLUMES} volumes x 5 objects (50 distinct latest secrets) mounted in ${((performance.now() - t0) / 1000).toFixed(1)}s`,
    );

    const links = () => Promise.all(requests.map((r) => readlink(join(r.target_path, '..data'))));
    const nextCycle = async () => {
      const n = await driver.metric('rotation_reconcile_total');
      await eventually(
        'a rotation cycle',
        async () => ((await driver.metric('rotation_reconcile_total')) > n ? true : undefined),
        60_000,
      );
      await new Promise((r) => setTimeout(r, 500)); // events are recorded in the background
    };
    await nextCycle();
    for (const [label, change] of [
      ['nothing changed', false],
      ['one secret changed', true],
    ] as const) {
      if (change) emulator.store.addVersion('s7', { secret_string: 'value-7-2' });
      const before = {
        calls: emulator.store.total,
        writes: await apiWrites(),
        links: await links(),
        secs: await driver.metric('rotation_reconcile_duration_sec_sum'),
      };
      await nextCycle();
      const writes = await apiWrites();
      const rewritten = (await links()).filter((l, i) => l !== before.links[i]).length;
      const secs = (await driver.metric('rotation_reconcile_duration_sec_sum')) - before.secs;
      console.log(
        `cycle (${label}): ${(secs * 1000).toFixed(0)}ms, CSMS calls ${emulator.store.total - before.calls}, volumes rewritten ${rewritten}, ` +
          `API writes ${JSON.stringify(Object.fromEntries(WRITTEN.map((k) => [k, writes[k] - before.writes[k]])))}, driver RSS ${rssMiB(driver.pid!).toFixed(1)} MiB ` +
          `(V8 heap used ${((await driver.metric('nodejs_heap_size_used_bytes')) / 1048576).toFixed(0)} of ${((await driver.metric('nodejs_heap_size_total_bytes')) / 1048576).toFixed(0)} MiB)`,
      );
    }
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
