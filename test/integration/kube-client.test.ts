// The driver's Kubernetes client keeps one connection to the API server: every SPCPS, Secret
// and Event write used to pay a new TCP + TLS handshake (see src/kube/client.ts). API calls
// share one HTTP/2 connection, multiplexed; a cut connection is replaced by the next call.
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/kube/client.js';
import { kubeconfigPath } from '../helpers/cluster.js';
import { connectionsUsed } from '../helpers/connections.js';
import { tcpConnectionsTo } from '../helpers/proc.js';

const apiPort = () => Number(new URL(loadKubeConfig(kubeconfigPath).getCurrentCluster()!.server).port);

it('sequential and concurrent API calls share one connection (HTTP/2)', async () => {
  const port = apiPort();
  const before = tcpConnectionsTo(port);
  const core = loadKubeConfig(kubeconfigPath).makeApiClient(k8s.CoreV1Api);
  for (let i = 0; i < 5; i++) await core.readNamespace({ name: 'default' });
  await Promise.all(Array.from({ length: 25 }, () => core.readNamespace({ name: 'default' })));
  assert.equal(tcpConnectionsTo(port) - before, 1, 'one connection for 30 calls, 25 of them at once');
});

it('CCE_KUBE_TRANSPORT=http1 goes back to one pooled keep-alive HTTP/1.1 connection', async () => {
  process.env.CCE_KUBE_TRANSPORT = 'http1';
  const core = loadKubeConfig(kubeconfigPath).makeApiClient(k8s.CoreV1Api);
  delete process.env.CCE_KUBE_TRANSPORT;
  const used = await connectionsUsed(async () => {
    for (let i = 0; i < 5; i++) await core.readNamespace({ name: 'default' });
  });
  assert.equal(used, 1);
});

it('the plain client-node KubeConfig opens a connection per call (why src/kube/client.ts pools)', async () => {
  const plain = new k8s.KubeConfig();
  plain.loadFromFile(kubeconfigPath);
  const core = plain.makeApiClient(k8s.CoreV1Api);
  const used = await connectionsUsed(async () => {
    for (let i = 0; i < 5; i++) await core.readNamespace({ name: 'default' });
  });
  assert.equal(used, 5);
});

it('after its connection is cut (an API server restart, a load balancer), the next call opens a new one', async () => {
  // A TCP relay in front of the API server, whose connections the test can cut.
  const upstream = apiPort();
  const relayed = new Set<Socket>();
  const relay = createServer((client) => {
    const server = connect(upstream, '127.0.0.1');
    relayed.add(client).add(server);
    client.pipe(server).pipe(client);
    const drop = () => (client.destroy(), server.destroy());
    client.on('error', drop).on('close', drop);
    server.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'cce-relay-'));
  const config = readFileSync(kubeconfigPath, 'utf8').replace(
    `127.0.0.1:${upstream}`,
    `127.0.0.1:${(relay.address() as AddressInfo).port}`,
  );
  writeFileSync(join(dir, 'kubeconfig'), config);
  try {
    const core = loadKubeConfig(join(dir, 'kubeconfig')).makeApiClient(k8s.CoreV1Api);
    assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
    for (const s of relayed) s.destroy();
    relayed.clear();
    await new Promise((r) => setTimeout(r, 50)); // the client sees its connection close
    assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
    assert.ok(relayed.size >= 2, 'a new connection was opened');
  } finally {
    for (const s of relayed) s.destroy();
    relay.close();
  }
});
