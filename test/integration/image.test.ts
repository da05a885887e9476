// The image, built from the Dockerfile as it stands with buildah (no engine, no registry) on
// the base test/cluster/base-image.sh assembles (test/cluster/images.ts), then run: what is in it, and the driver
// serving CSI from it to a client on the host through a bind-mounted socket folder.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { before, it } from 'node:test';
import { driverImage, imageTools, type ImageTools } from '../cluster/images.js';
import { kubeconfigPath } from '../helpers/cluster.js';
import { Kubelet } from '../helpers/csi-client.js';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../../..');
let tools: ImageTools;
let IMAGE: string;
let storage: string[];
let entrypoint: string[];

const buildah = (...args: string[]) => tools.buildah(...args);

before(async () => {
  tools = await imageTools();
  storage = tools.storage;
  IMAGE = await driverImage(tools);
  const inspected = JSON.parse(await buildah('inspect', '--type', 'image', IMAGE)) as {
    OCIv1: { config: { Entrypoint: string[] } };
  };
  entrypoint = inspected.OCIv1.config.Entrypoint;
});

/** A working container of the image; removed when `use` is done. */
async function withContainer<T>(use: (name: string) => Promise<T>): Promise<T> {
  const name = (await buildah('from', '--pull=never', IMAGE)).trim();
  try {
    return await use(name);
  } finally {
    await buildah('rm', name);
  }
}

it("holds the project's Node.js, the bundle, its protos, package.json and koffi only, started through tini", async () => {
  const version = readFileSync(join(repo, '.node-version'), 'utf8').trim();
  const bases = [...readFileSync(join(repo, 'Dockerfile'), 'utf8').matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(
    bases,
    [`node:${version}-bookworm-slim`, `node:${version}-bookworm-slim`],
    'the base is pinned to .node-version',
  );
  assert.deepEqual(entrypoint.slice(0, 3), ['tini', '--', 'node']);
  assert.equal(entrypoint.at(-1), '/app/cce-secrets-manager.mjs');
  await withContainer(async (c) => {
    const node = (await buildah('run', c, '--', 'node', '--version')).trim();
    assert.equal(node, `v${version}`);
    assert.deepEqual((await buildah('run', c, '--', 'ls', '/app')).split('\n').filter(Boolean), [
      'cce-secrets-manager.mjs',
      'csi-proto',
      'node_modules',
      'package.json',
    ]);
    assert.deepEqual((await buildah('run', c, '--', 'ls', '/app/node_modules')).split('\n').filter(Boolean), [
      '@koromix',
      'koffi',
    ]);
    const own = await buildah('run', c, '--', ...entrypoint, '--version');
    assert.match(own, /^cce-secrets-manager \d+\.\d+\.\d+/);
  });
});

it('serves CSI from the image: its ENTRYPOINT with serve answers Probe over a socket the host sees, and exits cleanly on SIGTERM to its PID 1', async () => {
  const sockets = mkdtempSync(join(tmpdir(), 'cce-image-sock-'));
  const socket = join(sockets, 'csi.sock');
  await withContainer(async (c) => {
    const child = spawn(
      'buildah',
      [
        ...storage,
        'run',
        '--network',
        'host',
        '--volume',
        `${sockets}:${sockets}`,
        '--volume',
        `${dirname(kubeconfigPath)}:${dirname(kubeconfigPath)}:ro`,
        c,
        '--',
        ...entrypoint,
        'serve',
        `--endpoint=unix://${socket}`,
        '--nodeid=image-node',
        `--kubeconfig=${kubeconfigPath}`,
        '--csms-endpoint=http://127.0.0.1:9',
        '--project-id=p',
        '--metrics-addr=',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let logs = '';
    child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
    const kubelet = new Kubelet(socket);
    try {
      for (let i = 0; ; i++) {
        const probe = await kubelet
          .call<{ ready?: { value: boolean } }>('Identity', 'Probe', {})
          .catch(() => undefined);
        if (probe?.ready?.value) break;
        assert.ok(i < 600 && child.exitCode === null, `the image did not become ready:\n${logs}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const info = await kubelet.call<{ name: string }>('Identity', 'GetPluginInfo', {});
      assert.equal(info.name, 'secrets-store.csi.k8s.io');
    } finally {
      kubelet.close();
      // As kubelet stops a container: SIGTERM to its PID 1 (tini, which hands it on to node).
      // buildah itself would kill the container outright on a signal of its own.
      const tini = (await run('pgrep', ['-f', '^(/usr/bin/)?tini -- node .*--nodeid=image-node'])).stdout
        .trim()
        .split('\n');
      assert.equal(tini.length, 1, `one tini: ${tini.join(',')}`);
      process.kill(Number(tini[0]), 'SIGTERM');
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
    }
    assert.equal(child.exitCode, 0, logs);
    assert.match(logs, /Shutting down/);
    assert.equal(existsSync(socket), false, 'the socket is removed on shutdown');
  });
});
