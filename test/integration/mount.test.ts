// The mount path end to end: kubelet's gRPC calls over the socket, the real API
// server, real tmpfs mounts, and the CSMS emulator with signatures checked.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, readFile, readdir, stat } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import { after, before, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { isMountPoint } from '../../src/driver/mounter.js';
import {
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  getSpcps,
  kubectl,
  spcpsGone,
} from '../helpers/cluster.js';
import { rejectsWith } from '../helpers/csi-client.js';
import { publishRequest, type DriverProcess } from '../helpers/driver.js';
import { mounts } from '../helpers/proc.js';
import { TEST_CREDS, withDriver } from '../helpers/with-driver.js';

const run = promisify(execFile);
const nodeId = 'node-mount';
// Values that must never show up in a log line.
const values = {
  v1: `s1-v1-${randomBytes(6).toString('hex')}`,
  v2: `s1-v2-${randomBytes(6).toString('hex')}`,
  s2: `s2-${randomBytes(6).toString('hex')}`,
  bin: randomBytes(32),
};
const seedSa = ['secret_1', 'secret_2'];
const spcTest = '- objectName: "secret_1"\n  objectAlias: "secret_test"\n  objectVersion: "v1"\n  objectType: "csms"\n';

const fx = withDriver({
  name: 'mount',
  secrets: [
    { name: 'secret_1', versions: [values.v1, values.v2] },
    { name: 'secret_2', versions: [values.s2] },
    { name: 'bin_secret', versions: [{ binary: values.bin.toString('base64') }] },
  ],
  driver: { nodeId },
});
const { emulator, kubeletRoot } = fx;
let driver: DriverProcess;
let ns: string;

before(async () => {
  await fx.ready;
  driver = fx.driver;
  ns = await createNamespace('mount');
  await createServiceAccount(ns, 'nginx-spc-sa', seedSa);
  await createSpc(ns, 'spc-test', spcTest);
});
after(async () => {
  await deleteNamespace(ns);
});

async function pod(name: string, spc: string | Record<string, string>, sa = 'nginx-spc-sa') {
  return createPod(ns, name, {
    nodeName: nodeId,
    serviceAccountName: sa,
    ...(typeof spc === 'string' ? { spc } : { volumes: spc }),
  });
}

it('answers identity and node info calls as a CSI node plugin', async () => {
  const info = await driver.kubelet.call<{ name: string; vendor_version: string }>('Identity', 'GetPluginInfo', {});
  assert.equal(info.name, 'secrets-store.csi.k8s.io');
  assert.match(info.vendor_version, /^\d+\.\d+\.\d+/);
  assert.deepEqual(await driver.kubelet.call('Node', 'NodeGetInfo', {}), {
    node_id: nodeId,
    max_volumes_per_node: '0',
    accessible_topology: null,
  });
  await rejectsWith(driver.kubelet.call('Node', 'NodeStageVolume', {}), status.UNIMPLEMENTED, /not implemented/);
  assert.equal((await stat(driver.socket)).mode & 0o777, 0o600);
});

it("gives a 0400 file the pod's fsGroup with group read: a non-root pod reads it, another user does not", async () => {
  await createSpc(
    ns,
    'spc-private',
    spcTest.replace('objectType: "csms"\n', 'objectType: "csms"\n  filePermission: "0400"\n'),
  );
  const p = await createPod(ns, 'private-reader', {
    nodeName: nodeId,
    serviceAccountName: 'nginx-spc-sa',
    spc: 'spc-private',
    fsGroup: 3000,
  });
  const req = publishRequest(p, 'spc-private', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  const file = join(req.target_path, 'secret_test');
  const st = await stat(file);
  assert.equal(st.mode & 0o777, 0o440);
  assert.equal(st.gid, 3000);
  for (let d = dirname(req.target_path); d.startsWith(kubeletRoot); d = dirname(d)) await chmod(d, 0o755);
  const as = (groups: string) => run('setpriv', ['--reuid=65534', '--regid=65534', groups, 'cat', file]);
  assert.equal((await as('--groups=3000')).stdout, values.v1, 'the pod, in its fsGroup');
  await assert.rejects(as('--clear-groups'), /Permission denied/, 'anyone else');
});

it('mounts the seed example: the aliased file on tmpfs and the SPCPS', async () => {
  const p = await pod('nginx-spc-1', 'spc-test');
  const req = publishRequest(p, 'spc-test', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  assert.ok(await isMountPoint(req.target_path));
  const mountTable = await readFile('/proc/self/mounts', 'utf8');
  assert.match(mountTable, new RegExp(`^cce-secrets-manager ${req.target_path.replace(/[.~]/g, '\\$&')} tmpfs `, 'm'));
  assert.deepEqual(
    (await readdir(req.target_path)).filter((f) => !f.startsWith('..')),
    ['secret_test'],
  );
  assert.equal(await readFile(join(req.target_path, 'secret_test'), 'utf8'), values.v1);
  assert.equal((await stat(join(req.target_path, 'secret_test'))).mode & 0o777, 0o644);
  // An application running as non-root reads it (kubelet exposes only the mount to the container).
  for (let d = dirname(req.target_path); d.startsWith(kubeletRoot); d = dirname(d)) await chmod(d, 0o755);
  const { stdout } = await run('setpriv', [
    '--reuid=65534',
    '--regid=65534',
    '--clear-groups',
    'cat',
    join(req.target_path, 'secret_test'),
  ]);
  assert.equal(stdout, values.v1);

  const spcps = await getSpcps(ns, `nginx-spc-1-${ns}-spc-test`);
  assert.deepEqual(spcps?.status, {
    mounted: true,
    objects: [{ id: 'secret_1', version: 'v1' }],
    podName: 'nginx-spc-1',
    secretProviderClassName: 'spc-test',
    targetPath: req.target_path,
  });
  assert.equal(spcps?.metadata.labels['internal.secrets-store.csi.k8s.io/node-name'], nodeId);
  assert.deepEqual(
    spcps?.metadata.ownerReferences.map((o: { kind: string; uid: string }) => [o.kind, o.uid]),
    [['Pod', p.metadata!.uid]],
  );
  assert.match(
    await kubectl('get', 'spcps', '-n', ns),
    new RegExp(`nginx-spc-1-${ns}-spc-test\\s+nginx-spc-1\\s+spc-test\\s+true`),
  );
});

it('refuses a secret the ServiceAccount does not list, leaving nothing mounted', async () => {
  await createSpc(ns, 'spc-undeclared', '- {objectName: secret_3, objectType: csms, objectVersion: v1}');
  const req = publishRequest(await pod('nginx-undeclared', 'spc-undeclared'), 'spc-undeclared', kubeletRoot);
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', req),
    status.PERMISSION_DENIED,
    new RegExp(
      `secret "secret_3" is not allowed for ServiceAccount ${ns}/nginx-spc-sa: add it to the cce.io/dew-resource annotation`,
    ),
  );
  assert.equal(existsSync(req.target_path), false);
});

it('refuses a ServiceAccount without a valid allow-list annotation', async () => {
  await createServiceAccount(ns, 'no-annotation');
  await createServiceAccount(ns, 'bad-annotation', 'secret_1,secret_2');
  for (const sa of ['no-annotation', 'bad-annotation']) {
    const req = publishRequest(await pod(`pod-${sa}`, 'spc-test', sa), 'spc-test', kubeletRoot);
    await rejectsWith(
      driver.kubelet.call('Node', 'NodePublishVolume', req),
      status.PERMISSION_DENIED,
      new RegExp(`ServiceAccount ${ns}/${sa}.*cce.io/dew-resource`),
    );
  }
});

it('validates the request fields, naming each', async () => {
  const good = publishRequest(await pod('nginx-validate', 'spc-test'), 'spc-test', kubeletRoot);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ target_path: '' }, /target_path is required/],
    [{ volume_id: '' }, /volume_id is required/],
    [{ volume_capability: null }, /volume_capability is required/],
    [{ readonly: false }, /readonly must be true/],
    [
      { volume_context: { ...good.volume_context, secretProviderClass: '' } },
      /volume_context\["secretProviderClass"\] is required/,
    ],
    [
      { volume_context: { ...good.volume_context, 'csi.storage.k8s.io/pod.uid': '' } },
      /pod\.uid"\] is required; set podInfoOnMount: true/,
    ],
  ];
  for (const [patch, pattern] of cases) {
    await rejectsWith(
      driver.kubelet.call('Node', 'NodePublishVolume', { ...good, ...patch }),
      status.INVALID_ARGUMENT,
      pattern,
    );
  }
  await rejectsWith(
    driver.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: 'x' }),
    status.INVALID_ARGUMENT,
    /NodeUnpublishVolume: target_path is required/,
  );
});

it('refuses SPC mistakes with the SPC, the object and the rule', async () => {
  await createSpc(ns, 'spc-bad-type', '- {objectName: secret_1, objectType: kms, objectVersion: v1}');
  await createSpc(
    ns,
    'spc-dup',
    '- {objectName: secret_1, objectType: csms, objectVersion: v1}\n- {objectName: secret_1, objectType: csms, objectVersion: v2}',
  );
  await createSpc(
    ns,
    'spc-escape',
    '- {objectName: secret_1, objectAlias: ../../etc/x, objectType: csms, objectVersion: v1}',
  );
  await createSpc(ns, 'spc-vault', '- {objectName: secret_1, objectType: csms, objectVersion: v1}', {
    provider: 'vault',
  });
  const p = await pod('nginx-badspc', {
    'bad-type': 'spc-bad-type',
    dup: 'spc-dup',
    escape: 'spc-escape',
    vault: 'spc-vault',
    missing: 'spc-missing',
  });
  const cases: [string, status, RegExp][] = [
    [
      'spc-bad-type',
      status.INVALID_ARGUMENT,
      new RegExp(`SecretProviderClass ${ns}/spc-bad-type: object "secret_1": objectType must be "csms"`),
    ],
    ['spc-dup', status.INVALID_ARGUMENT, /objectName "secret_1" appears twice/],
    ['spc-escape', status.INVALID_ARGUMENT, /objectAlias "..\/..\/etc\/x" is not a plain file name/],
    // Another provider goes to its socket (external-provider.test.ts); none runs here.
    ['spc-vault', status.UNAVAILABLE, /provider "vault" is not running on this node: no socket at /],
    ['spc-missing', status.NOT_FOUND, new RegExp(`SecretProviderClass ${ns}/spc-missing not found`)],
  ];
  for (const [spc, code, pattern] of cases) {
    const req = publishRequest(p, spc, kubeletRoot);
    await rejectsWith(driver.kubelet.call('Node', 'NodePublishVolume', req), code, pattern);
    assert.equal(existsSync(req.target_path), false);
  }
});

it('refuses a request for a pod uid that is not the pod in the API', async () => {
  const p = await pod('nginx-uid', 'spc-test');
  const req = publishRequest(
    { ...p, metadata: { ...p.metadata, uid: '00000000-0000-0000-0000-000000000000' } },
    'spc-test',
    kubeletRoot,
  );
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', req),
    status.FAILED_PRECONDITION,
    /has uid .* not 00000000-/,
  );
  assert.equal(existsSync(req.target_path), false);
});

it('is idempotent: a repeated publish fetches nothing and writes nothing', async () => {
  const req = publishRequest(await pod('nginx-idem', 'spc-test'), 'spc-test', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  const spcps = await getSpcps(ns, `nginx-idem-${ns}-spc-test`);
  const fetches = emulator.store.total;
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  assert.equal(emulator.store.total, fetches);
  assert.equal(
    (await getSpcps(ns, `nginx-idem-${ns}-spc-test`))?.metadata.resourceVersion,
    spcps?.metadata.resourceVersion,
  );
  assert.match(driver.logs, /object \[secret_1\]'s version \[v1\] doesn't change, read from local/);
});

it('serializes concurrent publishes of one target into one mount', async () => {
  const req = publishRequest(await pod('nginx-concurrent', 'spc-test'), 'spc-test', kubeletRoot);
  await Promise.all(Array.from({ length: 8 }, () => driver.kubelet.call('Node', 'NodePublishVolume', req)));
  assert.equal(mounts().filter((m) => m.point === req.target_path).length, 1);
  assert.equal(await readFile(join(req.target_path, 'secret_test'), 'utf8'), values.v1);
});

it('takes a burst of different pods at once without a warning from Node in its log', async () => {
  const pods = await Promise.all(Array.from({ length: 16 }, (_, i) => pod(`nginx-burst-${i}`, 'spc-test')));
  const reqs = pods.map((p) => publishRequest(p, 'spc-test', kubeletRoot));
  await Promise.all(reqs.map((req) => driver.kubelet.call('Node', 'NodePublishVolume', req)));
  for (const req of reqs) assert.equal(await readFile(join(req.target_path, 'secret_test'), 'utf8'), values.v1);
  // Every call in flight listens to the driver's shutdown: 16 of them are not a leak.
  assert.doesNotMatch(driver.logs, /Warning/);
  await Promise.all(
    reqs.map((req) =>
      driver.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path }),
    ),
  );
});

it('unpublishes: unmounts, removes the target and the SPCPS, and is idempotent', async () => {
  const req = publishRequest(await pod('nginx-unpub', 'spc-test'), 'spc-test', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  assert.ok(await getSpcps(ns, `nginx-unpub-${ns}-spc-test`));
  await driver.kubelet.call('Node', 'NodeUnpublishVolume', {
    volume_id: req.volume_id,
    target_path: req.target_path,
  });
  assert.equal(await isMountPoint(req.target_path), false);
  assert.equal(existsSync(req.target_path), false);
  await spcpsGone(ns, `nginx-unpub-${ns}-spc-test`);
  await driver.kubelet.call('Node', 'NodeUnpublishVolume', {
    volume_id: req.volume_id,
    target_path: req.target_path,
  });
});

it('fails with NOT_FOUND for a secret missing in CSMS and leaves nothing behind', async () => {
  await createServiceAccount(ns, 'wide-sa', ['secret_1', 'secret_2', 'ghost', 'bin_secret']);
  await createSpc(
    ns,
    'spc-ghost',
    '- {objectName: secret_2, objectType: csms, objectVersion: v1}\n- {objectName: ghost, objectType: csms, objectVersion: v1}',
  );
  const req = publishRequest(await pod('nginx-ghost', 'spc-ghost', 'wide-sa'), 'spc-ghost', kubeletRoot);
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', req),
    status.NOT_FOUND,
    /secret "ghost" version "v1" does not exist in CSMS/,
  );
  assert.equal(existsSync(req.target_path), false);
  assert.equal(await getSpcps(ns, `nginx-ghost-${ns}-spc-ghost`), undefined);
});

it('fails with UNAVAILABLE while CSMS is down, then mounts once it is back', async () => {
  await createSpc(ns, 'spc-s2', '- {objectName: secret_2, objectType: csms, objectVersion: latest}');
  const req = publishRequest(await pod('nginx-down', 'spc-s2', 'wide-sa'), 'spc-s2', kubeletRoot);
  emulator.store.addFault({ status: 503, errorCode: 'CSMS.0001' });
  try {
    await rejectsWith(
      driver.kubelet.call('Node', 'NodePublishVolume', req),
      status.UNAVAILABLE,
      /did not serve secret "secret_2" version "latest" after \d+ attempts: HTTP 503/,
    );
    assert.equal(existsSync(req.target_path), false);
  } finally {
    emulator.store.clearFaults();
  }
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  assert.equal(await readFile(join(req.target_path, 'secret_2'), 'utf8'), values.s2);
});

it('writes a binary secret byte for byte', async () => {
  await createSpc(
    ns,
    'spc-bin',
    '- {objectName: bin_secret, objectAlias: key.bin, objectType: csms, objectVersion: v1}',
  );
  const req = publishRequest(await pod('nginx-bin', 'spc-bin', 'wide-sa'), 'spc-bin', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  assert.ok((await readFile(join(req.target_path, 'key.bin'))).equals(values.bin));
});

it('refuses SecretProviderClasses beyond the configured limit, oldest first', async () => {
  const existing = (await kubectl('get', 'spc', '-A', '-o', 'name')).trim().split('\n').filter(Boolean).length;
  const limited = await fx.start({ nodeId, extraArgs: [`--max-secret-provider-classes=${existing + 1}`] });
  try {
    await createSpc(ns, 'spc-within', '- {objectName: secret_1, objectType: csms, objectVersion: v1}');
    await new Promise((r) => setTimeout(r, 1100)); // creation timestamps have one-second resolution
    await createSpc(ns, 'spc-beyond', '- {objectName: secret_1, objectType: csms, objectVersion: v1}');
    const p = await pod('nginx-limit', { within: 'spc-within', beyond: 'spc-beyond' });
    await limited.kubelet.call(
      'Node',
      'NodePublishVolume',
      publishRequest(p, 'spc-within', kubeletRoot, { volume: 'within' }),
    );
    await rejectsWith(
      limited.kubelet.call(
        'Node',
        'NodePublishVolume',
        publishRequest(p, 'spc-beyond', kubeletRoot, { volume: 'beyond' }),
      ),
      status.FAILED_PRECONDITION,
      new RegExp(
        `SecretProviderClass ${ns}/spc-beyond exceeds the limit of ${existing + 1} SecretProviderClasses in the cluster \\(there are ${existing + 2}\\)`,
      ),
    );
  } finally {
    await limited.stop();
  }
});

it('counts publishes, failures and CSMS requests on /metrics, and answers health checks', async () => {
  assert.ok((await driver.metric('node_publish_total', { provider: 'cce' })) >= 5);
  assert.ok((await driver.metric('node_publish_error_total', { error_type: 'PERMISSION_DENIED' })) >= 1);
  assert.ok((await driver.metric('node_publish_error_total', { error_type: 'INVALID_ARGUMENT' })) >= 6);
  assert.ok((await driver.metric('node_unpublish_total')) >= 1);
  assert.ok((await driver.metric('csms_requests_total', { outcome: 'ok' })) >= 3);
  assert.ok((await driver.metric('csms_requests_total', { outcome: 'server_error' })) >= 1);
  assert.ok((await driver.metric('mounted_volumes')) >= 4);
  const before = await driver.metric('node_publish_total', { provider: 'cce' });
  const req = publishRequest(await pod('nginx-metrics', 'spc-test'), 'spc-test', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  assert.equal(await driver.metric('node_publish_total', { provider: 'cce' }), before + 1);
  assert.ok((await driver.metric('process_resident_memory_bytes')) > 10e6);
  assert.equal((await fetch(`${driver.opsUrl}/healthz`)).status, 200);
  assert.equal((await fetch(`${driver.opsUrl}/readyz`)).status, 200);
});

it('never logs a secret value', async () => {
  const logs = driver.logs;
  assert.match(logs, /Servicing mount request/);
  assert.match(logs, /"Get secret successfully" name="secret_1" version="v1"/);
  for (const v of [values.v1, values.v2, values.s2, values.bin.toString('base64'), TEST_CREDS.secretKey])
    assert.ok(!logs.includes(v), 'a secret value reached the log');
});
