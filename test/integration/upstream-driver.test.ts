// Our CSMS provider behind the upstream Secrets Store CSI driver v1.6.0 (built from its
// Go module): the seed's workflow through upstream's own publish path, against the real
// API server, real tmpfs mounts and the CSMS emulator with signatures checked.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { isMountPoint } from '../../src/driver/mounter.js';
import { CsmsEmulator } from '../../src/emulator/server.js';
import {
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
  getSpcps,
} from '../helpers/cluster.js';
import { executable, publishRequest, unmountAll } from '../helpers/driver.js';
import { ProviderProcess, UpstreamDriver } from '../helpers/upstream-driver.js';

const projectId = '0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const creds = { accessKey: 'UPSTREAMAK', secretKey: 'upstream-sk' };
const nodeId = 'node-upstream';
const password = `pw-${randomBytes(6).toString('hex')}`;
const emulator = new CsmsEmulator({
  projectId,
  credentials: [creds],
  secrets: [
    { name: 'db', versions: [JSON.stringify({ username: 'admin', password })] },
    { name: 'api_key', versions: ['key-v1', 'key-v2'] },
    { name: 'forbidden', versions: ['nope'] },
  ],
});
const kubeletRoot = mkdtempSync(join(tmpdir(), 'cce-kubelet-'));
const providerDir = mkdtempSync(join(tmpdir(), 'cce-providers-'));
const upstream = new UpstreamDriver(nodeId, providerDir);
let provider: ProviderProcess;
let ns: string;

const objects = `
- objectName: db
  objectType: csms
  objectVersion: v1
  filePermission: "0440"
  jmesPath:
    - path: username
      objectAlias: db_user
      filePermission: "0444"
    - path: password
      objectAlias: db_password
- objectName: api_key
  objectType: csms
  objectVersion: latest
`;

before(async () => {
  const endpoint = await emulator.listen();
  provider = new ProviderProcess(providerDir, [`--csms-endpoint=${endpoint}`, `--project-id=${projectId}`, '-v=2'], {
    HUAWEICLOUD_SDK_AK: creds.accessKey,
    HUAWEICLOUD_SDK_SK: creds.secretKey,
  });
  await provider.start();
  await upstream.start();
  ns = await createNamespace('upstream');
  await createServiceAccount(ns, 'app-sa', ['db', 'api_key']);
  await createSpc(ns, 'dew', objects);
});
after(async () => {
  await upstream.stop();
  await provider.stop();
  await emulator.close();
  await deleteNamespace(ns);
  unmountAll(kubeletRoot);
});

it('mounts a provider: cce SPC through the upstream driver: jmesPath files, file modes, versions in its SPCPS', async () => {
  const pod = await createPod(ns, 'app', { nodeName: nodeId, serviceAccountName: 'app-sa', spc: 'dew' });
  const req = publishRequest(pod, 'dew', kubeletRoot);
  await upstream.kubelet.call('Node', 'NodePublishVolume', req);

  const target = req.target_path;
  assert.ok(await isMountPoint(target), "upstream's tmpfs");
  assert.equal(await readFile(join(target, 'db_user'), 'utf8'), 'admin');
  assert.equal(await readFile(join(target, 'db_password'), 'utf8'), password);
  assert.equal(await readFile(join(target, 'api_key'), 'utf8'), 'key-v2', 'latest');
  assert.equal((await stat(join(target, 'db'))).mode & 0o777, 0o440, 'the object filePermission');
  assert.equal((await stat(join(target, 'db_user'))).mode & 0o777, 0o444, 'the jmesPath entry filePermission');
  assert.equal((await stat(join(target, 'db_password'))).mode & 0o777, 0o440, "the object's, inherited");
  assert.equal((await stat(join(target, 'api_key'))).mode & 0o777, 0o644, "the driver's permission");

  const spcps = await eventually('the SPCPS upstream writes', () => getSpcps(ns, `app-${ns}-dew`));
  assert.deepEqual(
    [...spcps.status.objects].sort((a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id)),
    [
      { id: 'api_key', version: 'v2' },
      { id: 'db', version: 'v1' },
    ],
  );
  assert.equal(spcps.status.mounted, true);
  assert.doesNotMatch(provider.logs + upstream.logs, new RegExp(password), 'no secret in either log');

  await upstream.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: target });
  assert.equal(await isMountPoint(target), false);
});

it("refuses a secret outside the ServiceAccount's allow-list, with our message through upstream's error", async () => {
  await createSpc(ns, 'greedy', '- objectName: forbidden\n  objectType: csms\n  objectVersion: v1\n');
  const pod = await createPod(ns, 'greedy', { nodeName: nodeId, serviceAccountName: 'app-sa', spc: 'greedy' });
  const req = publishRequest(pod, 'greedy', kubeletRoot);
  await assert.rejects(upstream.kubelet.call('Node', 'NodePublishVolume', req), (err: { details: string }) => {
    assert.match(err.details, /code = PermissionDenied desc = secret "forbidden" is not allowed for ServiceAccount/);
    assert.match(err.details, /add it to the cce\.io\/dew-resource annotation/);
    return true;
  });
  assert.equal(await isMountPoint(req.target_path), false, 'upstream took its mount back');
  const asked = [...emulator.store.counts.keys()].filter((k) => k.includes('forbidden'));
  assert.deepEqual(asked, [], 'CSMS was never asked');
});

it('refuses a broken SPC with the mount-time message of our own driver', async () => {
  await createSpc(ns, 'broken', '- objectName: db\n  objectType: kms\n  objectVersion: v1\n');
  const pod = await createPod(ns, 'broken', { nodeName: nodeId, serviceAccountName: 'app-sa', spc: 'broken' });
  await assert.rejects(
    upstream.kubelet.call('Node', 'NodePublishVolume', publishRequest(pod, 'broken', kubeletRoot)),
    (err: { details: string }) => {
      assert.match(
        err.details,
        /code = InvalidArgument desc = SecretProviderClass .*\/broken: object "db": objectType must be "csms"/,
      );
      return true;
    },
  );
});

it('provider refuses a socket path that is not <folder>/<name>.sock and lists its flags', () => {
  const bad = spawnSync(executable, ['provider', '--endpoint', 'unix:///tmp/x/cce', '--region', 'cn-north-4'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 2);
  assert.match(
    bad.stderr,
    /--endpoint "unix:\/\/\/tmp\/x\/cce" must look like unix:\/\/\/var\/run\/secrets-store-csi-providers\/cce\.sock/,
  );
  const help = spawnSync(executable, ['provider', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  for (const flag of ['--endpoint', '--kubeconfig', '--region', '--csms-endpoint', '--project-id', '--log-format-json'])
    assert.ok(help.stdout.includes(flag), `${flag} in the help`);
});
