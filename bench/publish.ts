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
import { startEmulatorProcess } from './emulator-process.js';
import { rssMiB, summary } from './stats.js';

const projectId = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
const creds = { accessKey: 'BENCHAK', secretKey: 'bench-sk' };
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

export async function run(): Promise<void> {
  const emulator = await startEmulatorProcess({
    projectId,
    credentials: [creds],
    secrets: ['db', 'api', 'tls'].map((name) => ({ name, versions: [`${name}-value-1`, `${name}-value-2`] })),
  });
  const endpoint = emulator.url;
  const driver = new DriverProcess({
    nodeId,
    csmsEndpoint: endpoint,
    projectId,
    env: { HUAWEICLOUD_SDK_AK: creds.accessKey, HUAWEICLOUD_SDK_SK: creds.secretKey },
    extraArgs: [`-v=${process.env.BENCH_V ?? 0}`],
  });
  await driver.start();
  await new Promise((r) => setTimeout(r, 2000));
  console.log(`driver RSS at start (caches synced, no volume): ${rssMiB(driver.pid!).toFixed(1)} MiB`);
  const ns = await createNamespace('bench');
  const root = driver.kubeletRoot;
  try {
    await createServiceAccount(ns, 'app', ['db', 'api', 'tls']);
    await createSpc(
      ns,
      'three',
      '- {objectName: db, objectType: csms, objectVersion: latest}\n- {objectName: api, objectType: csms, objectVersion: v1}\n- {objectName: tls, objectType: csms, objectVersion: latest}\n',
    );
    const makePods = (prefix: string, n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) =>
          createPod(ns, `${prefix}-${i}`, { nodeName: nodeId, serviceAccountName: 'app', spc: 'three' }),
        ),
      );
    const publish = async (req: ReturnType<typeof publishRequest>) => {
      const t0 = performance.now();
      await driver.kubelet.call('Node', 'NodePublishVolume', req);
      return performance.now() - t0;
    };

    // Warm-up: JIT, connections, caches.
    const warm = await makePods('warm', 5);
    for (const p of warm) await publish(publishRequest(p, 'three', root));

    const singles = await makePods('single', 40);
    const single: number[] = [];
    for (const p of singles) single.push(await publish(publishRequest(p, 'three', root)));
    console.log(`single mount (sequential, 3 objects): ${summary(single)}`);
    console.log(
      `  floor, same run: SPCPS create alone (driver's client, same API server): ${summary(await spcpsCreates(ns, singles))}`,
    );
    if (process.env.BENCH_V)
      console.log(
        driver.logs
          .split('\n')
          .filter((l) => l.includes('Publish phases'))
          .slice(-8)
          .join('\n'),
      );

    const burst = await makePods('burst', 110);
    await emulator.resetCounts();
    const t0 = performance.now();
    const each = await Promise.all(burst.map((p) => publish(publishRequest(p, 'three', root))));
    const wall = performance.now() - t0;
    console.log(`110 concurrent mounts (3 objects each): all done in ${wall.toFixed(0)}ms; per call ${summary(each)}`);
    console.log(`CSMS requests for the 110 concurrent mounts: ${await emulator.total()} (330 objects)`);
    console.log(
      `driver RSS after ${5 + 40 + 110} mounted volumes: ${rssMiB(driver.pid!).toFixed(1)} MiB right after the burst`,
    );
    await new Promise((r) => setTimeout(r, 10_000)); // V8's memory reducer runs once the process is idle
    const mib = async (m: string) => ((await driver.metric(m)) / 1048576).toFixed(0);
    console.log(
      `driver RSS after ${5 + 40 + 110} mounted volumes: ${rssMiB(driver.pid!).toFixed(1)} MiB after 10 s idle ` +
        `(V8 heap used ${await mib('nodejs_heap_size_used_bytes')} of ${await mib('nodejs_heap_size_total_bytes')} MiB, external ${await mib('nodejs_external_memory_bytes')} MiB)`,
    );

    for (const p of [...warm, ...singles, ...burst]) {
      const req = publishRequest(p, 'three', root);
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
