// Our driver with an external provider over the provider API: upstream's own fake
// provider (built from the upstream module) on a socket in the provider folders, the real
// API server, real tmpfs mounts, and kubelet's calls over the CSI socket.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readlinkSync } from 'node:fs';
import { lstat, readFile, readdir, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { isMountPoint } from '../../src/driver/mounter.js';
import {
  core,
  createNamespace,
  createPod,
  createSpc,
  deleteNamespace,
  eventually,
  getSpcps,
  kubectl,
  readSecret,
  spcpsGone,
} from '../helpers/cluster.js';
import { rejectsWith } from '../helpers/csi-client.js';
import { DriverProcess, publishRequest, unmountAll } from '../helpers/driver.js';
import { FakeProvider, type FakeConfig } from '../helpers/fake-provider.js';

const nodeId = 'node-external';
const kubeletRoot = mkdtempSync(join(tmpdir(), 'cce-kubelet-'));
const providerDir = mkdtempSync(join(tmpdir(), 'cce-providers-'));
const additionalDir = mkdtempSync(join(tmpdir(), 'cce-providers-extra-'));
const fake = new FakeProvider(providerDir, 'fake');
const other = new FakeProvider(additionalDir, 'other');
const baseConfig: FakeConfig = {
  files: [
    { path: 'username', mode: 0o644, contents: 'admin' },
    { path: 'password', mode: 0o440, contents: 'pw-one' },
  ],
  objects: { 'secret/db': 'v1' },
};
let silent: Server;
let driver: DriverProcess;
let ns: string;

before(async () => {
  await fake.start(baseConfig);
  await other.start({ files: [{ path: 'token', mode: 0o400, contents: 'tok' }], objects: { token: '7' } });
  silent = createServer(() => undefined).listen(join(providerDir, 'silent.sock'));
  driver = new DriverProcess({
    nodeId,
    csmsEndpoint: 'http://127.0.0.1:9',
    projectId: '5f1e2d3c4b5a69788796a5b4c3d2e1f0',
    kubeletRoot,
    extraArgs: [
      `--provider-volume=${providerDir}`,
      `--additional-provider-volume-paths=${additionalDir}`,
      '--rotation-poll-interval=1s',
      '--provider-timeout=2s',
      '--max-file-bytes=1000000',
      '--max-volume-bytes=1500000',
    ],
  });
  await driver.start();
  ns = await createNamespace('external');
});
after(async () => {
  await driver.stop();
  await fake.stop();
  await other.stop();
  silent.close();
  await deleteNamespace(ns);
  unmountAll(kubeletRoot);
});

async function spc(name: string, provider: string, extra: Record<string, unknown> = {}) {
  await createSpc(ns, name, '', {
    provider,
    parameters: { vaultAddress: 'https://vault.example', roleName: 'db' },
    ...extra,
  });
}

it('mounts what the provider returns, with the modes it sets, and records its versions', async () => {
  await spc('fake-spc', 'fake', {
    secretObjects: [{ secretName: 'db-creds', type: 'Opaque', data: [{ objectName: 'password', key: 'pw' }] }],
  });
  const pod = await createPod(ns, 'app', { nodeName: nodeId, spc: 'fake-spc' });
  const req = publishRequest(pod, 'fake-spc', kubeletRoot, { secrets: { token: 'ref-secret' } });
  await driver.kubelet.call('Node', 'NodePublishVolume', req);

  const target = req.target_path;
  assert.ok(await isMountPoint(target), 'a tmpfs of ours');
  assert.equal(await readFile(join(target, 'username'), 'utf8'), 'admin');
  assert.equal(await readFile(join(target, 'password'), 'utf8'), 'pw-one');
  assert.equal((await stat(join(target, 'password'))).mode & 0o777, 0o440);
  assert.equal((await stat(join(target, 'username'))).mode & 0o777, 0o644);

  const sent = await fake.mountFor(target);
  assert.equal(sent.attributes.vaultAddress, 'https://vault.example', 'the SPC parameters');
  assert.equal(sent.attributes['csi.storage.k8s.io/pod.name'], 'app');
  assert.equal(sent.attributes['csi.storage.k8s.io/pod.namespace'], ns);
  assert.equal(sent.attributes['csi.storage.k8s.io/pod.uid'], pod.metadata!.uid);
  assert.equal(sent.attributes['csi.storage.k8s.io/serviceAccount.name'], 'default');
  assert.equal(sent.attributes.secretProviderClass, 'fake-spc');
  assert.deepEqual(sent.secrets, { token: 'ref-secret' }, 'the nodePublishSecretRef data');
  assert.equal(sent.raw.permission, '420');
  assert.equal(sent.raw.target_path, target);
  assert.deepEqual(sent.raw.current_object_version ?? [], []);

  const spcps = await getSpcps(ns, `app-${ns}-fake-spc`);
  assert.deepEqual(spcps?.status.objects, [{ id: 'secret/db', version: 'v1' }]);
  const secret = await eventually('the synced Secret', () => readSecret(ns, 'db-creds'));
  assert.equal(Buffer.from(secret.data!.pw, 'base64').toString(), 'pw-one');
  assert.ok((await driver.metric('node_publish_total', { provider: 'fake' })) >= 1);
  assert.match(driver.logs, /Connected to provider.*runtime="?fakeprovider/);
  assert.doesNotMatch(driver.logs, /pw-one|ref-secret/, 'no secret in the log');
});

it('rotates through current_object_version: the provider is asked with the versions the volume holds', async () => {
  const pod = await createPod(ns, 'rotating', { nodeName: nodeId, spc: 'fake-spc' });
  const req = publishRequest(pod, 'fake-spc', kubeletRoot);
  fake.configure(baseConfig);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  fake.configure({
    files: [
      { path: 'username', mode: 0o644, contents: 'admin' },
      { path: 'password', mode: 0o440, contents: 'pw-two' },
    ],
    objects: { 'secret/db': 'v2' },
  });
  await eventually('the rotated file', async () =>
    (await readFile(join(req.target_path, 'password'), 'utf8')) === 'pw-two' ? true : undefined,
  );
  await eventually('the SPCPS with v2', async () => {
    const s = await getSpcps(ns, `rotating-${ns}-fake-spc`);
    return s?.status.objects[0].version === 'v2' ? true : undefined;
  });
  // The call after the rotation carried what the volume held then.
  await eventually('a rotation call with v2 as the current version', async () => {
    const versions = fake.lastMount().raw.current_object_version ?? [];
    return versions.some((v) => v.id === 'secret/db' && v.version === 'v2') ? true : undefined;
  });
  fake.configure(baseConfig);
});

it('re-calls Mount when the SPC changes, with the new parameters; kubelet-only keys set by the SPC never reach the provider', async () => {
  await spc('editable', 'fake');
  const pod = await createPod(ns, 'edited', { nodeName: nodeId, spc: 'editable' });
  await driver.kubelet.call('Node', 'NodePublishVolume', publishRequest(pod, 'editable', kubeletRoot));
  const parameters = {
    roleName: 'db-readonly',
    'csi.storage.k8s.io/serviceAccount.tokens': '{"forged":{}}',
    'csi.storage.k8s.io/pod.namespace': 'kube-system',
  };
  await kubectl('patch', 'spc', 'editable', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { parameters } }));
  const sent = await eventually('a Mount with the edited parameters', async () => {
    const m = fake.lastMount();
    return m.attributes.roleName === 'db-readonly' && m.attributes['csi.storage.k8s.io/pod.name'] === 'edited'
      ? m
      : undefined;
  });
  assert.equal(sent.attributes['csi.storage.k8s.io/pod.namespace'], ns);
  assert.equal(sent.attributes['csi.storage.k8s.io/serviceAccount.tokens'], undefined);
});

it('refuses a reply over --max-call-recv-msg-size, saying which flag raises it', async () => {
  fake.configure({ ...baseConfig, files: [{ path: 'huge', mode: 0o644, contents: 'x'.repeat(5 * 1024 * 1024) }] });
  const pod = await createPod(ns, 'huge', { nodeName: nodeId, spc: 'fake-spc' });
  const req = publishRequest(pod, 'fake-spc', kubeletRoot);
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', req),
    status.INTERNAL,
    /failed Mount with RESOURCE_EXHAUSTED: .*raise --max-call-recv-msg-size \(now 4194304 bytes\)/,
  );
  await assertNothingLeft(req.target_path, `huge-${ns}-fake-spc`);
  fake.configure(baseConfig);
});

it("counts a provider's files against --max-file-bytes and --max-volume-bytes, leaving nothing", async () => {
  const file = (path: string, bytes: number) => ({ path, mode: 0o644, contents: 'x'.repeat(bytes) });
  fake.configure({ ...baseConfig, files: [file('one', 1_200_000)] });
  const pod = await createPod(ns, 'too-big', { nodeName: nodeId, spc: 'fake-spc' });
  const req = publishRequest(pod, 'fake-spc', kubeletRoot);
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', req),
    status.RESOURCE_EXHAUSTED,
    /^SecretProviderClass \S+\/fake-spc: file "one" is 1200000 bytes, over the file limit of 1000000 bytes \(--max-file-bytes\)$/,
  );
  await assertNothingLeft(req.target_path, `too-big-${ns}-fake-spc`);
  fake.configure({ ...baseConfig, files: [file('one', 800_000), file('two', 800_000)] });
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', req),
    status.RESOURCE_EXHAUSTED,
    /the volume's 2 files are 1600000 bytes together, over the volume limit of 1500000 bytes/,
  );
  await assertNothingLeft(req.target_path, `too-big-${ns}-fake-spc`);
  fake.configure(baseConfig);
});

it('gives files the pod fsGroup with group read, so a non-root pod can read a 0400 file', async () => {
  await spc('other-spc', 'other');
  const pod = await createPod(ns, 'grouped', { nodeName: nodeId, spc: 'other-spc', fsGroup: 2000 });
  const req = publishRequest(pod, 'other-spc', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  const st = await stat(join(req.target_path, 'token'));
  assert.equal(st.gid, 2000);
  assert.equal(st.mode & 0o777, 0o440, "the provider's 0400 plus group read");
  assert.equal(await readFile(join(req.target_path, 'token'), 'utf8'), 'tok', 'from the additional provider folder');
});

async function assertNothingLeft(target: string, spcps: string) {
  assert.equal(await isMountPoint(target), false, 'no tmpfs left');
  await spcpsGone(ns, spcps);
}

it("refuses the mount with the provider's error code, counts it under that code and leaves nothing", async () => {
  fake.configure({ ...baseConfig, errorCode: 'SecretNotFound' });
  const pod = await createPod(ns, 'refused', { nodeName: nodeId, spc: 'fake-spc' });
  const req = publishRequest(pod, 'fake-spc', kubeletRoot);
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', req),
    status.FAILED_PRECONDITION,
    /provider "fake".*"SecretNotFound"/,
  );
  await assertNothingLeft(req.target_path, `refused-${ns}-fake-spc`);
  assert.equal(await driver.metric('node_publish_error_total', { provider: 'fake', error_type: 'SecretNotFound' }), 1);

  fake.configure({ ...baseConfig, fail: 'PERMISSION_DENIED: role db may not read secret/db' });
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', req),
    status.PERMISSION_DENIED,
    /provider "fake" \(.*fake\.sock\) failed Mount with PERMISSION_DENIED: role db may not read/,
  );
  assert.ok(
    (await driver.metric('node_publish_error_total', { provider: 'fake', error_type: 'GRPCProviderError' })) >= 1,
  );
  fake.configure(baseConfig);
});

it("passes a pod's large volumeAttributes to the provider, though the pod cache does not keep them", async () => {
  const blob = 'v'.repeat(40_000);
  const cached = await driver.metric('kube_cached_objects', { kind: 'Pod' });
  const pod = await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'big-attributes' },
      spec: {
        nodeName: nodeId,
        containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
        volumes: [
          {
            name: 'secrets-store-inline',
            csi: {
              driver: 'secrets-store.csi.k8s.io',
              readOnly: true,
              volumeAttributes: { secretProviderClass: 'fake-spc', blob },
            },
          },
        ],
      },
    },
  });
  // Once the cache has it (trimmed), a publish still sends the provider every attribute.
  await eventually('the pod in the cache', async () =>
    (await driver.metric('kube_cached_objects', { kind: 'Pod' })) > cached ? true : undefined,
  );
  const req = publishRequest(pod, 'fake-spc', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  assert.equal((await fake.mountFor(req.target_path)).attributes.blob, blob);
  await driver.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path });
});

it("writes a provider's files in folders as upstream does (certs/tls.crt), through certs -> ..data/certs, and rewrites them", async () => {
  const files = (v: string) => [
    { path: 'certs/tls.crt', mode: 0o644, contents: `crt-${v}` },
    { path: 'certs/ca/root.pem', mode: 0o400, contents: `ca-${v}` },
    { path: 'top', mode: 0o644, contents: `top-${v}` },
  ];
  await spc('foldered-spc', 'fake');
  fake.configure({ ...baseConfig, files: files('1') });
  const pod = await createPod(ns, 'foldered', { nodeName: nodeId, spc: 'foldered-spc' });
  const req = publishRequest(pod, 'foldered-spc', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  const target = req.target_path;
  assert.equal(await readFile(join(target, 'certs/tls.crt'), 'utf8'), 'crt-1');
  assert.equal(await readFile(join(target, 'certs/ca/root.pem'), 'utf8'), 'ca-1');
  assert.equal((await stat(join(target, 'certs/ca/root.pem'))).mode & 0o777, 0o400);
  assert.equal(readlinkSync(join(target, 'certs')), '..data/certs');
  fake.configure({ ...baseConfig, files: files('2').slice(0, 1) });
  await eventually('the rotation to rewrite the folder', async () =>
    (await readFile(join(target, 'certs/tls.crt'), 'utf8')) === 'crt-2' ? true : undefined,
  );
  assert.equal(existsSync(join(target, 'certs/ca')), false, 'a folder the provider no longer returns is gone');
  assert.equal(existsSync(join(target, 'top')), false);
  await driver.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: target });
  fake.configure(baseConfig);
});

it('refuses a file path that would leave the volume, writing nothing', async () => {
  for (const path of ['../escape', '/etc/passwd', 'a/../../b', '..data', '..data/file', 'dir//file']) {
    fake.configure({ ...baseConfig, files: [{ path, mode: 0o644, contents: 'x' }] });
    const pod = await createPod(ns, `escape-${Math.abs(hash(path))}`, { nodeName: nodeId, spc: 'fake-spc' });
    const req = publishRequest(pod, 'fake-spc', kubeletRoot);
    await rejectsWith(
      driver.kubelet.call('Node', 'NodePublishVolume', req),
      status.INTERNAL,
      /returned file path .*; nothing was written/,
    );
    await assertNothingLeft(req.target_path, `${pod.metadata!.name}-${ns}-fake-spc`);
  }
  assert.equal(existsSync(join(kubeletRoot, 'pods', 'escape')), false);
  fake.configure(baseConfig);
});

it('answers UNAVAILABLE, naming the provider and the folders searched, when no provider answers', async () => {
  await spc('absent-spc', 'absent');
  const pod = await createPod(ns, 'absent', { nodeName: nodeId, spc: 'absent-spc' });
  const req = publishRequest(pod, 'absent-spc', kubeletRoot);
  const where = new RegExp(
    `provider "absent" is not running on this node: no socket at ${providerDir}/absent.sock, ${additionalDir}/absent.sock`,
  );
  await rejectsWith(driver.kubelet.call('Node', 'NodePublishVolume', req), status.UNAVAILABLE, where);
  await assertNothingLeft(req.target_path, `absent-${ns}-absent-spc`);

  await spc('silent-spc', 'silent');
  const quiet = await createPod(ns, 'quiet', { nodeName: nodeId, spc: 'silent-spc' });
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', publishRequest(quiet, 'silent-spc', kubeletRoot)),
    status.UNAVAILABLE,
    /provider "silent" \(.*silent\.sock\) failed Version .*did not answer within 2000 ms/,
  );
});

it('refuses a provider name that is not a plain socket name', async () => {
  await spc('sneaky-spc', '../../run/other');
  const pod = await createPod(ns, 'sneaky', { nodeName: nodeId, spc: 'sneaky-spc' });
  await rejectsWith(
    driver.kubelet.call('Node', 'NodePublishVolume', publishRequest(pod, 'sneaky-spc', kubeletRoot)),
    status.INVALID_ARGUMENT,
    /SecretProviderClass .*\/sneaky-spc: spec.provider "\.\.\/\.\.\/run\/other" is not a provider name/,
  );
  assert.equal(await driver.metric('node_publish_error_total', { provider: '../../run/other' }), 0, 'never a label');
});

it('unpublishes: the tmpfs and the SPCPS go', async () => {
  const pod = await createPod(ns, 'leaving', { nodeName: nodeId, spc: 'fake-spc' });
  const req = publishRequest(pod, 'fake-spc', kubeletRoot);
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  await driver.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path });
  await assertNothingLeft(req.target_path, `leaving-${ns}-fake-spc`);
  assert.deepEqual(await readdir(join(req.target_path, '..')).then((e) => e.filter((x) => x === 'mount')), []);
  await lstat(providerDir);
});

function hash(s: string): number {
  let h = 0;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) | 0;
  return h;
}
