// After the pod runs: rotation of `latest`, SPC edits, JMESPath, Secret sync and
// its lifetime, store outages, a driver restart, and readers during rotation.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  core,
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
  getSpcps,
  kubectl,
  patchSpcObjects,
  podEvents,
  readSecret,
} from '../helpers/cluster.js';
import { publishRequest, type DriverProcess } from '../helpers/driver.js';
import { withDriver } from '../helpers/with-driver.js';

const json = (k1: string, k2: string) => JSON.stringify({ key1: k1, key2: k2 });
const files = async (dir: string) =>
  Object.fromEntries(
    await Promise.all(
      (await readdir(dir))
        .filter((f) => !f.startsWith('..'))
        .sort()
        .map(async (f) => [f, await readFile(join(dir, f), 'utf8')]),
    ),
  );
const run = promisify(execFile);
const isTmpfs = async (dir: string) =>
  (await run('findmnt', ['-n', '-o', 'FSTYPE', '--mountpoint', dir]).then(
    (r) => r.stdout.trim(),
    () => '',
  )) === 'tmpfs';
const cycles = (d: DriverProcess) => (d.logs.match(/"Rotation cycle finished"/g) ?? []).length;

const fx = withDriver({
  name: 'rotation',
  secrets: [
    { name: 'secret_1', versions: [json('alice', 'bob')] },
    { name: 'plain', versions: ['plain-v1'] },
    { name: 'pinned', versions: ['pinned-v1', 'pinned-v2'] },
    { name: 'flaky', versions: ['flaky-v1'] },
    { name: 'restart', versions: ['restart-v1'] },
    { name: 'pair', versions: [json('a-1', 'b-1')] },
  ],
});
const { emulator, kubeletRoot: root } = fx;
let rotating: DriverProcess; // rotation every second
let watching: DriverProcess; // rotation off: only SPC edits move its volumes
let ns: string;

before(async () => {
  await fx.ready;
  [rotating, watching] = await Promise.all([
    fx.start({ nodeId: 'node-rotate', extraArgs: ['--rotation-poll-interval=1s'] }),
    fx.start({ nodeId: 'node-watch', extraArgs: ['--enable-secret-rotation=false'] }),
  ]);
  ns = await createNamespace('rotation');
  await createServiceAccount(ns, 'nginx-spc-sa', ['secret_1', 'plain', 'pinned', 'flaky', 'restart', 'pair']);
});
after(async () => {
  await deleteNamespace(ns);
});

async function mount(driver: DriverProcess, podName: string, spc: string) {
  const pod = await createPod(ns, podName, { nodeName: driver.opts.nodeId, serviceAccountName: 'nginx-spc-sa', spc });
  const req = publishRequest(pod, spc, root);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  return { pod, req, dir: req.target_path };
}

it('syncs the seed JMESPath example into Secret my-secret-01 for secretKeyRef', async () => {
  await createSpc(
    ns,
    'nginx-deployment-spc-k8s-secrets',
    '- objectName: "secret_1"\n  objectType: "csms"\n  objectVersion: "latest"\n  jmesPath:\n    - path: key1\n      objectAlias: dbusername01\n    - path: key2\n      objectAlias: dbusername02\n',
    {
      secretObjects: [
        {
          secretName: 'my-secret-01',
          type: 'Opaque',
          labels: { team: 'db' },
          annotations: { note: 'from DEW' },
          data: [
            { objectName: 'dbusername01', key: 'db_username_01' },
            { objectName: 'dbusername02', key: 'db_username_02' },
          ],
        },
      ],
    },
  );
  const { dir } = await mount(watching, 'nginx-jmes', 'nginx-deployment-spc-k8s-secrets');
  assert.deepEqual(await files(dir), { dbusername01: 'alice', dbusername02: 'bob', secret_1: json('alice', 'bob') });
  const secret = await readSecret(ns, 'my-secret-01');
  assert.equal(secret?.type, 'Opaque');
  assert.deepEqual(secret?.metadata?.labels, { team: 'db', 'secrets-store.csi.k8s.io/managed': 'true' });
  assert.equal(secret?.metadata?.annotations?.note, 'from DEW');
  assert.deepEqual(
    Object.fromEntries(Object.entries(secret?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])),
    { db_username_01: 'alice', db_username_02: 'bob' },
  );
  assert.match(await kubectl('get', 'secrets', '-n', ns), /my-secret-01\s+Opaque\s+2\s/);
});

it('rotates a latest object into the file, the SPCPS and the synced Secret', async () => {
  await createSpc(ns, 'spc-plain', '- {objectName: plain, objectType: csms, objectVersion: latest}', {
    secretObjects: [{ secretName: 'plain-secret', data: [{ objectName: 'plain', key: 'value' }] }],
  });
  const { dir } = await mount(rotating, 'nginx-rotate', 'spc-plain');
  assert.equal(await readFile(join(dir, 'plain'), 'utf8'), 'plain-v1');
  emulator.store.addVersion('plain', { secret_string: 'plain-v2' });
  await eventually(
    'the file to rotate',
    async () => ((await readFile(join(dir, 'plain'), 'utf8')) === 'plain-v2' ? true : undefined),
    10_000,
  );
  await eventually(
    'the SPCPS version',
    async () =>
      (await getSpcps(ns, `nginx-rotate-${ns}-spc-plain`))?.status.objects[0].version === 'v2' ? true : undefined,
    10_000,
  );
  await eventually(
    'the synced Secret',
    async () =>
      Buffer.from((await readSecret(ns, 'plain-secret'))?.data?.value ?? '', 'base64').toString() === 'plain-v2'
        ? true
        : undefined,
    10_000,
  );
  await eventually(
    'a SecretRotationComplete event',
    async () =>
      (await podEvents(ns, 'nginx-rotate')).some((e) => e.reason === 'SecretRotationComplete') ? true : undefined,
    10_000,
  );
});

it('never refetches a pinned version, and writes nothing when nothing changed', async () => {
  await createSpc(ns, 'spc-pinned', '- {objectName: pinned, objectType: csms, objectVersion: v1}');
  const { dir } = await mount(rotating, 'nginx-pinned', 'spc-pinned');
  const spcps = await getSpcps(ns, `nginx-pinned-${ns}-spc-pinned`);
  const dataDir = (await readdir(dir)).find((f) => f.startsWith('..2'));
  const reads = () => emulator.store.counts.get('GET pinned/v1') ?? 0;
  const before = reads();
  const start = cycles(rotating);
  await eventually('two rotation cycles', async () => (cycles(rotating) >= start + 2 ? true : undefined), 10_000);
  assert.equal(reads(), before, 'pinned v1 was fetched again');
  assert.equal(
    (await readdir(dir)).find((f) => f.startsWith('..2')),
    dataDir,
    'files were rewritten',
  );
  assert.equal(
    (await getSpcps(ns, `nginx-pinned-${ns}-spc-pinned`))?.metadata.resourceVersion,
    spcps?.metadata.resourceVersion,
  );
});

it('mounts the tmpfs again before writing when it was unmounted under a running pod', async () => {
  await createSpc(ns, 'spc-unmounted', '- {objectName: pinned, objectType: csms, objectVersion: v1}');
  const { dir } = await mount(watching, 'nginx-unmounted', 'spc-unmounted');
  await run('umount', [dir]);
  assert.equal(await isTmpfs(dir), false);
  await patchSpcObjects(ns, 'spc-unmounted', '- {objectName: pinned, objectType: csms, objectVersion: v2}');
  await eventually(
    'the edit to reach the files',
    async () => ((await files(dir)).pinned === 'pinned-v2' ? true : undefined),
    5_000,
  );
  assert.equal(await isTmpfs(dir), true, 'the secret was written to the node disk');
  await run('umount', [dir]);
  assert.deepEqual(await readdir(dir), [], 'something was written under the mount point');
});

it('applies SPC edits to a running volume within seconds: add, change version, remove', async () => {
  await createSpc(ns, 'spc-edit', '- {objectName: pinned, objectType: csms, objectVersion: v1}');
  const { dir } = await mount(watching, 'nginx-edit', 'spc-edit');
  const spcpsName = `nginx-edit-${ns}-spc-edit`;
  const t0 = Date.now();
  await patchSpcObjects(
    ns,
    'spc-edit',
    '- {objectName: pinned, objectType: csms, objectVersion: v2}\n- {objectName: plain, objectAlias: added, objectType: csms, objectVersion: latest}',
  );
  await eventually(
    'the edit to reach the files',
    async () => {
      const f = await files(dir);
      return f.pinned === 'pinned-v2' && f.added?.startsWith('plain-') ? true : undefined;
    },
    5_000,
  );
  const elapsed = Date.now() - t0;
  await eventually(
    'the SPCPS to follow',
    async () =>
      (await getSpcps(ns, spcpsName))?.status.objects
        .map((o: { id: string; version: string }) => `${o.id}@${o.version}`)
        .join() === 'pinned@v2,plain@v2'
        ? true
        : undefined,
    5_000,
  );
  await patchSpcObjects(ns, 'spc-edit', '- {objectName: pinned, objectType: csms, objectVersion: v2}');
  assert.equal(await watching.metric('rotation_reconcile_total'), 0, 'rotation is off on this driver');
  await eventually(
    'the removed object to disappear',
    async () => (JSON.stringify(Object.keys(await files(dir))) === '["pinned"]' ? true : undefined),
    5_000,
  );
  assert.ok(elapsed < 5_000, `edit took ${elapsed} ms`);
});

it('keeps the files of running pods when an SPC is edited into an invalid state, and says why', async () => {
  await createSpc(ns, 'spc-break', '- {objectName: pinned, objectType: csms, objectVersion: v1}');
  const { dir } = await mount(watching, 'nginx-break', 'spc-break');
  await patchSpcObjects(ns, 'spc-break', '- {objectName: pinned, objectType: kms, objectVersion: v1}');
  const event = await eventually(
    'a warning event',
    async () => (await podEvents(ns, 'nginx-break')).find((e) => e.reason === 'SecretProviderClassUpdateFailed'),
    5_000,
  );
  assert.match(event.message ?? '', /objectType must be "csms"/);
  assert.equal(event.type, 'Warning');
  assert.deepEqual(await files(dir), { pinned: 'pinned-v1' });
  assert.ok((await watching.metric('spc_update_error_total')) >= 1);
});

it('keeps the last good files while CSMS fails during rotation, then catches up', async () => {
  await createSpc(ns, 'spc-flaky', '- {objectName: flaky, objectType: csms, objectVersion: latest}');
  const { dir } = await mount(rotating, 'nginx-flaky', 'spc-flaky');
  emulator.store.addFault({ status: 503, secret: 'flaky' });
  emulator.store.addVersion('flaky', { secret_string: 'flaky-v2' });
  try {
    await eventually(
      'a SecretRotationFailed event',
      async () =>
        (await podEvents(ns, 'nginx-flaky')).some((e) => e.reason === 'SecretRotationFailed') ? true : undefined,
      15_000,
    );
    const failedBefore = await rotating.metric('rotation_reconcile_error_total');
    await eventually(
      'two more failed cycles',
      async () => ((await rotating.metric('rotation_reconcile_error_total')) >= failedBefore + 2 ? true : undefined),
      15_000,
    );
    const failures = (await podEvents(ns, 'nginx-flaky')).filter((e) => e.reason === 'SecretRotationFailed');
    assert.equal(failures.length, 1, 'events are rate-limited per pod and reason');
    assert.ok((await rotating.metric('events_suppressed_total')) >= 1);
    assert.match(failures[0].message ?? '', /did not serve secret "flaky" version "latest"/);
    assert.equal(await readFile(join(dir, 'flaky'), 'utf8'), 'flaky-v1');
    assert.equal(rotating.exitCode, null);
  } finally {
    emulator.store.clearFaults();
  }
  await eventually(
    'rotation after the outage',
    async () => ((await readFile(join(dir, 'flaky'), 'utf8')) === 'flaky-v2' ? true : undefined),
    15_000,
  );
  assert.ok((await rotating.metric('rotation_reconcile_error_total', { error_type: 'UNAVAILABLE' })) >= 1);
  assert.ok((await rotating.metric('rotation_reconcile_total')) >= 2);
  assert.ok((await rotating.metric('rotation_reconcile_duration_sec_count')) >= 2);
});

it('refuses to overwrite a Secret it does not manage', async () => {
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'hand-made' }, stringData: { value: 'keep me' } },
  });
  await createSpc(ns, 'spc-clash', '- {objectName: pinned, objectType: csms, objectVersion: v1}', {
    secretObjects: [{ secretName: 'hand-made', data: [{ objectName: 'pinned', key: 'value' }] }],
  });
  const pod = await createPod(ns, 'nginx-clash', {
    nodeName: 'node-watch',
    serviceAccountName: 'nginx-spc-sa',
    spc: 'spc-clash',
  });
  await assert.rejects(
    watching.kubelet.call('Node', 'NodePublishVolume', publishRequest(pod, 'spc-clash', root)),
    (e: { code: number; details: string }) =>
      e.code === Number(status.FAILED_PRECONDITION) &&
      /Secret .*\/hand-made already exists and is not managed by the driver/.test(e.details),
  );
  assert.equal(Buffer.from((await readSecret(ns, 'hand-made'))?.data?.value ?? '', 'base64').toString(), 'keep me');
});

it('keeps a synced Secret while any pod uses it and lets GC delete it after the last', async () => {
  await createSpc(ns, 'spc-shared', '- {objectName: pinned, objectType: csms, objectVersion: v1}', {
    secretObjects: [{ secretName: 'shared', data: [{ objectName: 'pinned', key: 'v' }] }],
  });
  const a = await mount(watching, 'shared-a', 'spc-shared');
  const b = await mount(watching, 'shared-b', 'spc-shared');
  assert.deepEqual(
    (await readSecret(ns, 'shared'))?.metadata?.ownerReferences?.map((o) => o.uid).sort(),
    [a.pod.metadata!.uid, b.pod.metadata!.uid].sort(),
  );
  await kubectl('delete', 'pod', 'shared-a', '-n', ns, '--grace-period=0', '--force', '--wait=false');
  await eventually(
    'the deleted pod to leave the owners',
    async () => ((await readSecret(ns, 'shared'))?.metadata?.ownerReferences?.length === 1 ? true : undefined),
    30_000,
  );
  await kubectl('delete', 'pod', 'shared-b', '-n', ns, '--grace-period=0', '--force', '--wait=false');
  await eventually(
    'the Secret to be garbage-collected',
    async () => ((await readSecret(ns, 'shared')) === undefined ? true : undefined),
    30_000,
  );
});

it('carries on rotating volumes mounted before a driver restart', async () => {
  await createSpc(ns, 'spc-restart', '- {objectName: restart, objectType: csms, objectVersion: latest}');
  const options = { nodeId: 'node-restart', extraArgs: ['--rotation-poll-interval=1s'] };
  const first = await fx.start(options);
  const { dir } = await mount(first, 'nginx-restart', 'spc-restart');
  assert.equal(await first.stop(), 0);
  const second = await fx.start(options);
  try {
    emulator.store.addVersion('restart', { secret_string: 'restart-v2' });
    await eventually(
      'rotation by the new process',
      async () => ((await readFile(join(dir, 'restart'), 'utf8')) === 'restart-v2' ? true : undefined),
      10_000,
    );
    assert.match(second.logs, /Took over volumes mounted before a restart/);
  } finally {
    await second.stop();
  }
});

it('never shows a reader a torn or mixed set of files during rotation', async () => {
  await createSpc(
    ns,
    'spc-pair',
    '- objectName: pair\n  objectType: csms\n  objectVersion: latest\n  jmesPath:\n    - {path: key1, objectAlias: a}\n    - {path: key2, objectAlias: b}\n',
  );
  const { dir } = await mount(rotating, 'nginx-pair', 'spc-pair');
  // A separate process reads in a tight loop: each file must be whole, and a and b
  // read from one resolved ..data folder must come from the same version.
  const reader = spawn(process.execPath, [
    '-e',
    `
      const fs = require('fs'); const dir = process.argv[1];
      const stats = { reads: 0, pairs: 0, torn: 0, mixed: 0, versions: new Set() };
      const end = Date.now() + 4000;
      while (Date.now() < end) {
        try { const a = fs.readFileSync(dir + '/a', 'utf8'); stats.reads++; if (!/^a-\\d+$/.test(a)) stats.torn++; else stats.versions.add(a); } catch { stats.torn++; }
        try {
          const data = dir + '/' + fs.readlinkSync(dir + '/..data');
          const a = fs.readFileSync(data + '/a', 'utf8'), b = fs.readFileSync(data + '/b', 'utf8');
          stats.pairs++; if (a.slice(2) !== b.slice(2)) stats.mixed++;
        } catch {}
      }
      console.log(JSON.stringify({ ...stats, versions: stats.versions.size }));
    `,
    dir,
  ]);
  let out = '';
  reader.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const done = new Promise((r) => reader.on('exit', r));
  for (let v = 2; v <= 4; v++) {
    await new Promise((r) => setTimeout(r, 1000));
    emulator.store.addVersion('pair', { secret_string: json(`a-${v}`, `b-${v}`) });
  }
  await done;
  const stats = JSON.parse(out);
  assert.equal(stats.torn, 0, `torn reads: ${out}`);
  assert.equal(stats.mixed, 0, `mixed pairs: ${out}`);
  assert.ok(stats.versions >= 2, `the reader saw rotations happen: ${out}`);
  assert.ok(stats.pairs > 100);
});
