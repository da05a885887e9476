// The CSI server's cancellation over real gRPC on a unix socket, with in-memory parts
// behind the publisher: a call past its deadline, and a shutdown with a call under way,
// both leave nothing behind. No root and no API server needed.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CsiServer } from '../../src/driver/csi-server.js';
import type { PublishRequest } from '../../src/driver/volume-request.js';
import { createMetrics } from '../../src/metrics.js';
import { Kubelet, rejectsWith } from '../helpers/csi-client.js';
import { Parts } from '../helpers/publisher-parts.js';

let parts: Parts;
let kubelet: Kubelet | undefined;
afterEach(() => {
  kubelet?.close();
  parts?.cleanup();
});

function rawRequest(req: PublishRequest) {
  return {
    volume_id: req.volumeId,
    target_path: req.targetPath,
    volume_capability: { mount: {}, access_mode: { mode: 'SINGLE_NODE_READER_ONLY' } },
    readonly: true,
    secrets: req.secrets,
    volume_context: {
      secretProviderClass: req.spcName,
      'csi.storage.k8s.io/pod.name': req.podName,
      'csi.storage.k8s.io/pod.namespace': req.podNamespace,
      'csi.storage.k8s.io/pod.uid': req.podUid,
      'csi.storage.k8s.io/serviceAccount.name': req.serviceAccount,
      'csi.storage.k8s.io/ephemeral': 'true',
    },
  };
}

async function serve() {
  parts = new Parts();
  const metrics = createMetrics();
  const socket = join(parts.root, 'csi.sock');
  const server = new CsiServer({
    socket,
    nodeId: 'node-1',
    publisher: parts.publisher(),
    kubeletRoot: parts.root,
    ready: () => true,
    log: { info: () => undefined, warn: () => undefined, error: () => undefined, v: () => ({ info: () => undefined }) },
    metrics,
  });
  await server.start();
  kubelet = new Kubelet(socket);
  return { server, metrics };
}

function nothingBehind(req: PublishRequest): boolean {
  return parts.mounts.size === 0 && parts.spcps.size === 0 && !existsSync(req.targetPath);
}

async function until(what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(await ok(), what);
}

it('a publish past its deadline is cancelled and leaves nothing behind', async () => {
  const { server, metrics } = await serve();
  const req = parts.request();
  parts.fetchGate = new Promise(() => undefined);
  await rejectsWith(
    kubelet!.call('Node', 'NodePublishVolume', rawRequest(req), 200),
    grpc.status.DEADLINE_EXCEEDED,
    /./,
  );
  await until('the publish took everything back', () => nothingBehind(req));
  const errorTypes = async () => (await metrics.nodePublishError.get()).values.map((v) => v.labels.error_type);
  await until('the failure was counted', async () => (await errorTypes()).length > 0);
  // The client gives up at its deadline, which the server may see first as a cancellation.
  assert.match((await errorTypes()).join(), /^(DEADLINE_EXCEEDED|CANCELLED)$/);
  await server.stop(100);
});

it('a shutdown lets a short call finish and cancels a stuck one, which takes back what it made', async () => {
  const { server } = await serve();
  const quick = parts.request('aaaa-1111');
  await kubelet!.call('Node', 'NodePublishVolume', rawRequest(quick));
  const stuck = parts.request('bbbb-2222');
  parts.fetchGate = new Promise(() => undefined);
  const asked = parts.fetched.length;
  const publishing = kubelet!.call('Node', 'NodePublishVolume', rawRequest(stuck));
  await until('the stuck call reached the store', () => parts.fetched.length > asked);
  const stopping = server.stop(100);
  await rejectsWith(publishing, grpc.status.CANCELLED, /NodePublishVolume was cancelled: the driver is shutting down/);
  await stopping;
  assert.equal(existsSync(stuck.targetPath), false);
  assert.deepEqual([...parts.spcps.keys()], ['pod-aaaa-1111-ns-spc']);
  assert.ok(parts.mounts.has(quick.targetPath), 'the finished volume stays mounted');
});
