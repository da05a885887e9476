// Start-up, readiness and shutdown of the driver process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { it } from 'node:test';
import { readFile } from 'node:fs/promises';
import {
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
} from '../helpers/cluster.js';
import { DriverProcess, executable, publishRequest } from '../helpers/driver.js';
import { withDriver } from '../helpers/with-driver.js';

const run = promisify(execFile);
const common = { csmsEndpoint: 'http://127.0.0.1:9', projectId: 'p1', nodeId: 'node-lifecycle' };
const fx = withDriver({ name: 'lifecycle', secrets: [{ name: 'slow', versions: ['slow-value'] }] });
const { emulator } = fx;

it('replaces a stale socket file left by a crashed run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cce-stale-'));
  writeFileSync(join(dir, 'csi.sock'), 'left over');
  const driver = new DriverProcess({ ...common, socketDir: dir });
  await driver.start();
  const info = await driver.kubelet.call<{ name: string }>('Identity', 'GetPluginInfo', {});
  assert.equal(info.name, 'secrets-store.csi.k8s.io');
  assert.equal(await driver.stop(), 0, 'SIGTERM ends the process cleanly');
  assert.equal(existsSync(join(dir, 'csi.sock')), false, 'the socket is removed on shutdown');
});

it('refuses to start over the socket of a running driver', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cce-twice-'));
  const first = new DriverProcess({ ...common, socketDir: dir });
  await first.start();
  try {
    const second = await run(executable, [
      'serve',
      `--endpoint=unix://${join(dir, 'csi.sock')}`,
      '--nodeid=n',
      '--csms-endpoint=http://127.0.0.1:9',
      '--project-id=p1',
      `--kubeconfig=${process.env.CCE_TEST_KUBECONFIG}`,
    ]).then(
      () => 'started',
      (e: { code: number; stderr: string }) => `${e.code}: ${e.stderr}`,
    );
    assert.match(second, /^2: [\s\S]*another process is serving .*csi\.sock; stop it first/);
  } finally {
    await first.stop();
  }
});

it('is live (/healthz) only while its CSI socket answers a Probe', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cce-live-'));
  const driver = new DriverProcess({ ...common, socketDir: dir });
  await driver.start();
  try {
    const health = async () => {
      const r = await fetch(`${driver.opsUrl}/healthz`);
      return `${r.status} ${await r.text()}`;
    };
    assert.equal(await health(), '200 ok');
    // What a broken node folder (or a stuck server) looks like to kubelet: no socket to call.
    rmSync(join(dir, 'csi.sock'));
    // Answers are kept a second (a pod hammering the port does not make the driver dial at will).
    const answer = await eventually('/healthz to see the socket gone', async () => {
      const h = await health();
      return h === '200 ok' ? undefined : h;
    });
    assert.equal(answer, '503 the CSI socket does not answer, or kubelet refused the registration');
  } finally {
    await driver.stop();
  }
});

it('answers Probe with not-ready until its Kubernetes caches have synced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cce-unready-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
  );
  const driver = new DriverProcess({ ...common, kubeconfig });
  await driver.start({ ready: false });
  try {
    const probe = await driver.kubelet.call<{ ready: { value: boolean } }>('Identity', 'Probe', {});
    assert.equal(probe.ready.value, false);
    assert.equal(driver.exitCode, null, 'an unreachable API server does not crash the driver');
  } finally {
    await driver.stop();
  }
});

it('finishes an in-flight mount on SIGTERM before it exits', async () => {
  const driver = await fx.start({ nodeId: common.nodeId });
  const ns = await createNamespace('term');
  const root = driver.kubeletRoot;
  try {
    await createServiceAccount(ns, 'app', ['slow']);
    await createSpc(ns, 'spc', '- {objectName: slow, objectType: csms, objectVersion: v1}');
    const req = publishRequest(
      await createPod(ns, 'app-0', { nodeName: common.nodeId, serviceAccountName: 'app', spc: 'spc' }),
      'spc',
      root,
    );
    emulator.store.addFault({ status: 0, latencyMs: 1500, times: 1 });
    const before = emulator.store.total;
    const publishing = driver.kubelet.call('Node', 'NodePublishVolume', req);
    // Stopped while the publish waits on CSMS: the emulator has its request.
    await eventually('the publish to reach CSMS', async () => (emulator.store.total > before ? true : undefined));
    const exiting = driver.stop();
    await publishing;
    assert.equal(await exiting, 0);
    assert.equal(await readFile(join(req.target_path, 'slow'), 'utf8'), 'slow-value');
    assert.match(driver.logs, /"Shutting down" signal="SIGTERM"/);
  } finally {
    await driver.stop();
    await deleteNamespace(ns);
  }
});

it('stops at start-up on an invalid flag, naming it', async () => {
  const out = await run(executable, [
    'serve',
    '--nodeid=n',
    '--region=cn-north-4',
    '--rotation-poll-intervall=2m',
  ]).then(
    () => 'started',
    (e: { code: number; stderr: string }) => `${e.code}: ${e.stderr}`,
  );
  assert.match(out, /^2: cce-secrets-manager: Unknown option '--rotation-poll-intervall'/);
});
