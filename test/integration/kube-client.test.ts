// The driver's Kubernetes client keeps one connection to the API server: every SPCPS, Secret
// and Event write used to pay a new TCP + TLS handshake (see src/kube/client.ts). API calls
// share one HTTP/2 connection, multiplexed; a cut connection is replaced by the next call.
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import * as https from 'node:https';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/kube/client.js';
import { Http2Library } from '../../src/kube/http2-library.js';
import { BudgetedHttpLibrary } from '../../src/kube/object-budget.js';
import { makeCa, signLeaf } from '../cluster/pki.js';
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

/** A kubeconfig like the suite's, for the API server behind `port`. */
function kubeconfigThrough(port: number): string {
  const file = join(mkdtempSync(join(tmpdir(), 'cce-relay-')), 'kubeconfig');
  writeFileSync(file, readFileSync(kubeconfigPath, 'utf8').replace(`127.0.0.1:${apiPort()}`, `127.0.0.1:${port}`));
  return file;
}

/** A TCP relay to the API server whose traffic the test can silence or cut, and a kubeconfig through it. */
async function relayToApiServer() {
  const upstream = apiPort();
  const state = { silent: false, connections: 0 };
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    state.connections++;
    const server = connect(upstream, '127.0.0.1');
    sockets.add(client).add(server);
    client.on('data', (d) => state.silent || server.write(d));
    server.on('data', (d) => state.silent || client.write(d));
    const drop = () => (client.destroy(), server.destroy());
    client.on('error', drop).on('close', drop);
    server.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const file = kubeconfigThrough((relay.address() as AddressInfo).port);
  const cut = () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  const close = () => {
    cut();
    relay.close();
  };
  return { state, file, cut, close };
}

it('after its connection is cut (an API server restart, a load balancer), the next call opens a new one', async () => {
  const relay = await relayToApiServer();
  try {
    const core = loadKubeConfig(relay.file).makeApiClient(k8s.CoreV1Api);
    assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
    relay.cut();
    await new Promise((r) => setTimeout(r, 50)); // the client sees its connection close
    assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
    assert.equal(relay.state.connections, 2, 'a new connection was opened');
  } finally {
    relay.close();
  }
});

it('a call on a connection gone silent fails within its timeout, and the next call opens a new connection', async () => {
  const relay = await relayToApiServer();
  try {
    const kc = loadKubeConfig(relay.file);
    const httpApi = new Http2Library(2 * 1024 * 1024, new BudgetedHttpLibrary(2 * 1024 * 1024), { callTimeoutMs: 500 });
    const config = k8s.createConfiguration({
      baseServer: new k8s.ServerConfiguration(kc.getCurrentCluster()!.server, {}),
      authMethods: { default: kc },
      httpApi,
    });
    const core = new k8s.CoreV1Api(config);
    assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
    relay.state.silent = true;
    const t0 = Date.now();
    await assert.rejects(core.readNamespace({ name: 'default' }), /did not answer within 500 ms/);
    assert.ok(Date.now() - t0 < 5_000, 'failed in time, not after the kernel gave up');
    relay.state.silent = false;
    assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
    assert.equal(relay.state.connections, 2, 'the silent connection was replaced');
  } finally {
    relay.close();
  }
});

it('behind a TLS proxy that speaks only HTTP/1.1, calls go over HTTP/1.1', async () => {
  const upstream = apiPort();
  const dir = mkdtempSync(join(tmpdir(), 'cce-h1-proxy-'));
  const ca = makeCa(dir, 'proxy-ca');
  const leaf = signLeaf(dir, ca, 'proxy', '127.0.0.1', ['IP:127.0.0.1']);
  let proxied = 0;
  const proxy = https.createServer(
    { key: readFileSync(leaf.key), cert: readFileSync(leaf.cert), ALPNProtocols: ['http/1.1'] },
    (req, res) => {
      proxied++;
      const out = https.request(
        {
          host: '127.0.0.1',
          port: upstream,
          method: req.method,
          path: req.url,
          headers: req.headers,
          rejectUnauthorized: false,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(out);
    },
  );
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const file = kubeconfigThrough((proxy.address() as AddressInfo).port);
    const core = loadKubeConfig(file).makeApiClient(k8s.CoreV1Api);
    for (let i = 0; i < 3; i++) assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
    assert.equal(proxied, 3, 'every call went through the HTTP/1.1 proxy and was answered');
  } finally {
    proxy.close();
  }
});
