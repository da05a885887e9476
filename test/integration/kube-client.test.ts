// The driver's Kubernetes client keeps its connection to the API server: every SPCPS,
// Secret and Event write used to pay a new TCP + TLS handshake (see src/kube/client.ts).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/kube/client.js';
import { kubeconfigPath } from '../helpers/cluster.js';
import { connectionsUsed } from '../helpers/connections.js';

function connectionsFor(kc: k8s.KubeConfig, calls: number): Promise<number> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  return connectionsUsed(async () => {
    for (let i = 0; i < calls; i++) await core.readNamespace({ name: 'default' });
  });
}

it('sequential API calls share one keep-alive connection', async () => {
  assert.equal(await connectionsFor(loadKubeConfig(kubeconfigPath), 5), 1);
});

it('the plain client-node KubeConfig opens a connection per call (why src/kube/client.ts pools)', async () => {
  const plain = new k8s.KubeConfig();
  plain.loadFromFile(kubeconfigPath);
  assert.equal(await connectionsFor(plain, 5), 5);
});
