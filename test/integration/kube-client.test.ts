// The driver's Kubernetes client keeps its connection to the API server: every SPCPS,
// Secret and Event write used to pay a new TCP + TLS handshake (see src/kube/client.ts).
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/kube/client.js';
import { kubeconfigPath } from '../helpers/cluster.js';

async function connectionsFor(kc: k8s.KubeConfig, calls: number): Promise<number> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const sockets = new Set<unknown>();
  const seen = (message: unknown) => { sockets.add((message as { request: { socket: unknown } }).request.socket); };
  subscribe('http.client.response.finish', seen);
  try {
    for (let i = 0; i < calls; i++) await core.readNamespace({ name: 'default' });
  } finally {
    unsubscribe('http.client.response.finish', seen);
  }
  return sockets.size;
}

it('sequential API calls share one keep-alive connection', async () => {
  assert.equal(await connectionsFor(loadKubeConfig(kubeconfigPath), 5), 1);
});

it('the plain client-node KubeConfig opens a connection per call (why src/kube/client.ts pools)', async () => {
  const plain = new k8s.KubeConfig();
  plain.loadFromFile(kubeconfigPath);
  assert.equal(await connectionsFor(plain, 5), 5);
});
