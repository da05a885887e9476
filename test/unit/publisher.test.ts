// Publisher's branches with in-memory parts (test/helpers/publisher-parts.ts): no root,
// no API server. The integration tests run the same paths on real mounts and a real cluster.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, it } from 'node:test';
import { CancelledError } from '../../src/errors.js';
import { Parts, type FailingStep } from '../helpers/publisher-parts.js';

let parts: Parts;
afterEach(() => parts?.cleanup());

const read = (dir: string, name: string) => readFileSync(join(dir, name), 'utf8');

it('a fresh mount fetches, mounts a sized tmpfs, writes the files, records the SPCPS and syncs', async () => {
  parts = new Parts();
  const req = parts.request();
  await parts.publisher().publish(req);
  assert.deepEqual([read(req.targetPath, 'secret_1'), read(req.targetPath, 'secret_2')], ['one-v2', 'two-v1']);
  assert.ok((parts.mounts.get(req.targetPath) ?? 0) >= 4096, 'a tmpfs with a size bound');
  assert.deepEqual(parts.spcps.get('pod-1111-2222-ns-spc'), ['secret_1@v2', 'secret_2@v1']);
  assert.equal(parts.synced.length, 1);
});

it('an unchanged volume is neither fetched nor written again', async () => {
  parts = new Parts();
  const publisher = parts.publisher();
  const req = parts.request();
  await publisher.publish(req);
  const fetches = parts.fetched.length;
  await publisher.publish(req);
  assert.equal(parts.fetched.length, fetches);
  assert.equal(parts.synced.length, 1);
  assert.ok(parts.logs.includes("object [secret_2]'s version [v1] doesn't change, read from local"));
});

it('an SPC edit updates the files in place; the pinned value is read from the volume, not the store', async () => {
  parts = new Parts();
  const publisher = parts.publisher();
  const req = parts.request();
  await publisher.publish(req);
  parts.store.set('secret_2', ['changed-in-the-store']);
  parts.objects = parts.objects.replace('latest', 'v1');
  parts.fetched.length = 0;
  assert.equal(await publisher.refresh(req.targetPath, { specOnly: true }), 'updated');
  assert.deepEqual(parts.fetched, [{ name: 'secret_1', version: 'v1' }]);
  assert.deepEqual([read(req.targetPath, 'secret_1'), read(req.targetPath, 'secret_2')], ['one-v1', 'two-v1']);
  assert.deepEqual(parts.spcps.get('pod-1111-2222-ns-spc'), ['secret_1@v1', 'secret_2@v1']);
  assert.equal(parts.synced.length, 2);
});

it('a spec-only refresh of an unchanged SPC reads nothing; a rotation reads only `latest`', async () => {
  parts = new Parts();
  const publisher = parts.publisher();
  const req = parts.request();
  await publisher.publish(req);
  parts.fetched.length = 0;
  assert.equal(await publisher.refresh(req.targetPath, { specOnly: true }), 'unchanged');
  assert.equal(parts.fetched.length, 0);
  assert.equal(await publisher.refresh(req.targetPath), 'unchanged');
  assert.deepEqual(parts.fetched, [{ name: 'secret_1', version: 'latest' }]);
  parts.store.get('secret_1')!.push('one-v3');
  assert.equal(await publisher.refresh(req.targetPath), 'updated');
  assert.equal(read(req.targetPath, 'secret_1'), 'one-v3');
  assert.deepEqual(parts.spcps.get('pod-1111-2222-ns-spc'), ['secret_1@v3', 'secret_2@v1']);
});

for (const step of ['fetch', 'mount', 'write', 'record', 'sync'] satisfies FailingStep[]) {
  it(`a fresh mount whose ${step} fails leaves no mount, files or SPCPS`, async () => {
    parts = new Parts();
    const req = parts.request();
    parts.failing = step;
    await assert.rejects(parts.publisher().publish(req), new RegExp(`${step} failed on purpose`));
    assert.equal(parts.mounts.size, 0);
    assert.equal(existsSync(req.targetPath), false);
    assert.equal(parts.spcps.size, 0);
  });
}

it('an update that fails before its files are swapped keeps the last good files', async () => {
  parts = new Parts();
  const publisher = parts.publisher();
  const req = parts.request();
  await publisher.publish(req);
  parts.store.get('secret_1')!.push('one-v3');
  for (const step of ['fetch', 'write'] satisfies FailingStep[]) {
    parts.failing = step;
    await assert.rejects(publisher.refresh(req.targetPath), new RegExp(step));
    assert.equal(read(req.targetPath, 'secret_1'), 'one-v2');
  }
  assert.equal(await publisher.refresh(req.targetPath), 'updated');
  assert.equal(read(req.targetPath, 'secret_1'), 'one-v3');
});

it('a publish cancelled while it fetches leaves nothing behind', async () => {
  parts = new Parts();
  const req = parts.request();
  parts.fetchGate = new Promise(() => undefined);
  const controller = new AbortController();
  const publishing = parts.publisher().publish(req, controller.signal);
  await new Promise((r) => setImmediate(r));
  controller.abort(new CancelledError('kubelet gave up'));
  await assert.rejects(publishing, /kubelet gave up/);
  assert.equal(parts.mounts.size, 0);
  assert.equal(existsSync(req.targetPath), false);
  assert.equal(parts.spcps.size, 0);
});

it('a publish cancelled after its files are written takes them back', async () => {
  parts = new Parts();
  const req = parts.request();
  const controller = new AbortController();
  const publisher = parts.publisher({
    onContent: async () => controller.abort(new CancelledError('the driver is shutting down')),
  });
  await assert.rejects(publisher.publish(req, controller.signal), /shutting down/);
  assert.equal(parts.mounts.size, 0);
  assert.equal(parts.spcps.size, 0);
  assert.equal(publisher.volumes.size, 0);
});

it('an adopted volume keeps its pinned files and is rewritten from its SPC on the first refresh', async () => {
  parts = new Parts();
  const req = parts.request();
  await parts.publisher().publish(req);
  // A new process: it knows the volume only from the SPCPS and the mount.
  const restarted = parts.publisher();
  const versions = [
    { id: 'secret_1', version: 'v2' },
    { id: 'secret_2', version: 'v1' },
  ];
  await restarted.adopt({
    request: req,
    spcpsName: 'pod-1111-2222-ns-spc',
    fingerprint: '',
    versions,
    digests: {},
    sizeBytes: 0,
  });
  parts.store.set('secret_2', ['changed-in-the-store']);
  parts.fetched.length = 0;
  assert.equal(await restarted.refresh(req.targetPath, { specOnly: true }), 'updated');
  assert.deepEqual(
    parts.fetched.map((o) => o.name),
    ['secret_1'],
  );
  assert.equal(read(req.targetPath, 'secret_2'), 'two-v1');
  assert.ok((parts.mounts.get(req.targetPath) ?? 0) > 0, 'the size bound is set again');
});

it('unpublish unmounts, forgets the volume and deletes its SPCPS', async () => {
  parts = new Parts();
  const publisher = parts.publisher();
  const req = parts.request();
  await publisher.publish(req);
  await publisher.unpublish({ volumeId: req.volumeId, targetPath: req.targetPath, podUid: req.podUid });
  assert.equal(parts.mounts.size, 0, 'unmounted before kubelet has its answer');
  assert.equal(publisher.volumes.size, 0);
  await publisher.settled();
  assert.equal(parts.spcps.size, 0, 'the SPCPS follows');
  assert.equal(await publisher.refresh(req.targetPath), 'gone');
});

it('a publish right after an unpublish of the same volume waits for the SPCPS delete, so its own SPCPS stays', async () => {
  parts = new Parts();
  const publisher = parts.publisher();
  const req = parts.request();
  await publisher.publish(req);
  await publisher.unpublish({ volumeId: req.volumeId, targetPath: req.targetPath, podUid: req.podUid });
  await publisher.publish(req);
  await publisher.settled();
  assert.deepEqual(parts.spcps.get('pod-1111-2222-ns-spc'), ['secret_1@v2', 'secret_2@v1']);
});

it('namespace policy enforce: a secret the permit does not cover mounts nothing, records nothing and reads nothing', async () => {
  parts = new Parts();
  parts.namespaceAnnotations = { 'cce.io/dew-resource-permitted': '["secret_1"]' };
  const req = parts.request();
  await assert.rejects(parts.publisher({ namespacePolicy: 'enforce' }).publish(req), (err: Error) =>
    /^Namespace ns does not permit CSMS secret "secret_2"/.test(err.message),
  );
  assert.equal(parts.fetched.length, 0);
  assert.equal(parts.mounts.size, 0);
  assert.equal(parts.spcps.size, 0);
  assert.equal(parts.synced.length, 0);
  assert.equal(existsSync(req.targetPath), false);
});

it('namespace policy audit: the mount goes ahead and is reported once, and again when what is uncovered changes', async () => {
  parts = new Parts();
  parts.namespaceAnnotations = { 'cce.io/dew-resource-permitted': '["secret_1"]' };
  const reports: string[][] = [];
  const publisher = parts.publisher({ namespacePolicy: 'audit', onUnpermitted: (_, __, d) => reports.push(d.denied) });
  const req = parts.request();
  await publisher.publish(req);
  assert.equal(read(req.targetPath, 'secret_2'), 'two-v1');
  await publisher.publish(req);
  assert.equal(await publisher.refresh(req.targetPath), 'unchanged');
  assert.deepEqual(reports, [['secret_2']]);
  assert.deepEqual(publisher.volumes.get(req.targetPath)?.unpermitted, ['secret_2']);
  parts.namespaceAnnotations = {};
  await publisher.refresh(req.targetPath, { specOnly: true });
  assert.deepEqual(reports, [['secret_2'], ['secret_1', 'secret_2']]);
  parts.namespaceAnnotations = { 'cce.io/dew-resource-permitted': '["secret_*"]' };
  await publisher.refresh(req.targetPath, { specOnly: true });
  assert.equal(publisher.volumes.get(req.targetPath)?.unpermitted, undefined);
});

it('namespace policy enforce: a narrowed permit keeps the files, refuses once, then withholds; widened, it resumes', async () => {
  parts = new Parts();
  const publisher = parts.publisher({ namespacePolicy: 'enforce' });
  const req = parts.request();
  await publisher.publish(req);
  parts.namespaceAnnotations = { 'cce.io/dew-resource-permitted': '["secret_2"]' };
  parts.store.set('secret_1', ['one-v1', 'one-v2', 'one-v3']);
  await assert.rejects(publisher.refresh(req.targetPath), /does not permit CSMS secret "secret_1"/);
  assert.equal(await publisher.refresh(req.targetPath), 'withheld');
  assert.equal(read(req.targetPath, 'secret_1'), 'one-v2', 'the last files stay and get no new value');
  assert.ok(parts.mounts.has(req.targetPath));
  parts.namespaceAnnotations = { 'cce.io/dew-resource-permitted': '["secret_*"]' };
  assert.equal(await publisher.refresh(req.targetPath, { specOnly: true }), 'resumed');
  assert.equal(await publisher.refresh(req.targetPath), 'updated');
  assert.equal(read(req.targetPath, 'secret_1'), 'one-v3');
});
