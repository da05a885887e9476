// The trust boundary (SECURITY.md): what a user with only namespaced rights (Pods, SPCs,
// SPCPS, ServiceAccounts, Secrets in their namespace) tries, against the real driver and
// API server. Each test is an attack that worked before the driver was hardened.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type * as k8s from '@kubernetes/client-node';
import { isMountPoint } from '../../src/driver/mounter.js';
import { CsmsEmulator } from '../../src/emulator/server.js';
import {
  core,
  createNamespace,
  createPod,
  createSpcps,
  createServiceAccount,
  createSpc,
  custom,
  deleteNamespace,
  eventually,
  getSpcps,
  spcpsGone,
  GROUP,
  kubectl,
  podEvents,
  readSecret,
} from '../helpers/cluster.js';
import { rejectsWith } from '../helpers/csi-client.js';
import { DriverProcess, publishRequest } from '../helpers/driver.js';
import { mounts } from '../helpers/proc.js';
import { TEST_PROJECT_ID, withDriver } from '../helpers/with-driver.js';

const nodeId = 'node-security';
const driverToken = 'eyJhbGciOiJSUzI1NiJ9.the-driver-service-account-token';

/** A tmpfs that this driver did not make, holding `files` in the ..data layout. */
function foreignTmpfs(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', dir]);
  mkdirSync(join(dir, '..2026_01_01'));
  for (const [name, value] of Object.entries(files)) {
    writeFileSync(join(dir, '..2026_01_01', name), value);
    symlinkSync(join('..data', name), join(dir, name));
  }
  symlinkSync('..2026_01_01', join(dir, '..data'));
}

const fx = withDriver({
  name: 'security',
  secrets: [
    { name: 'token', versions: ['csms-value'] },
    { name: 'big', versions: ['x'.repeat(2 * 1024 * 1024)] },
    { name: 'small', versions: ['small-value'] },
  ],
});
const root = fx.kubeletRoot;
let driver: DriverProcess;
let ns: string;

const start = (extraArgs: string[] = []) =>
  fx.start({ nodeId, extraArgs: ['--rotation-poll-interval=1s', ...extraArgs] });
const pod = (name: string, volumes: Record<string, string>, sa = 'app') =>
  createPod(ns, name, { nodeName: nodeId, serviceAccountName: sa, volumes });
const publish = (req: object) => driver.kubelet.call('Node', 'NodePublishVolume', req);

before(async () => {
  await fx.ready;
  driver = await start();
  ns = await createNamespace('sec');
  await createServiceAccount(ns, 'app', ['token', 'big', 'small']);
  await createSpc(ns, 'spc', '- {objectName: small, objectType: csms, objectVersion: v1}');
});
after(async () => {
  await deleteNamespace(ns);
});

it('refuses a target path outside the kubelet root, creating nothing there', async () => {
  const p = await pod('outside', { vol: 'spc' });
  const elsewhere = join(
    mkdtempSync(join(tmpdir(), 'cce-elsewhere-')),
    'pods',
    p.metadata!.uid!,
    'volumes',
    'kubernetes.io~csi',
    'vol',
    'mount',
  );
  await rejectsWith(
    publish({ ...publishRequest(p, 'spc', root), target_path: elsewhere }),
    status.INVALID_ARGUMENT,
    new RegExp(
      `is outside the kubelet root ${root}; it must be ${root}/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount`,
    ),
  );
  assert.equal(existsSync(elsewhere), false);
});

it("refuses another pod's uid, a non-CSI folder and a volume the pod does not have", async () => {
  const mine = await pod('mine', { vol: 'spc' });
  const other = await pod('other', { vol: 'spc' });
  const good = publishRequest(mine, 'spc', root);
  const otherPath = good.target_path.replace(mine.metadata!.uid!, other.metadata!.uid!);
  await rejectsWith(
    publish({ ...good, target_path: otherPath }),
    status.INVALID_ARGUMENT,
    /belongs to pod uid .* not to .* named in volume_context/,
  );
  const emptyDir = good.target_path.replace('kubernetes.io~csi', 'kubernetes.io~empty-dir');
  await rejectsWith(
    publish({ ...good, target_path: emptyDir }),
    status.INVALID_ARGUMENT,
    /is not the mount folder of a CSI volume/,
  );
  const undeclared = publishRequest(mine, 'spc', root, { volume: 'not-in-spec' });
  await rejectsWith(
    publish(undeclared),
    status.INVALID_ARGUMENT,
    new RegExp(`Pod ${ns}/mine has no csi volume "not-in-spec" of driver secrets-store.csi.k8s.io`),
  );
  // The SPC in the request must be the one the pod's volume names.
  await createSpc(ns, 'spc-other', '- {objectName: token, objectType: csms, objectVersion: v1}');
  await rejectsWith(
    publish({ ...good, volume_context: { ...good.volume_context, secretProviderClass: 'spc-other' } }),
    status.INVALID_ARGUMENT,
    /volume "vol" names SecretProviderClass "spc", not "spc-other"/,
  );
  for (const path of [otherPath, emptyDir, undeclared.target_path]) assert.equal(existsSync(path), false, path);
  assert.equal(await isMountPoint(good.target_path), false);
});

it('refuses a pod on another node', async () => {
  const p = await createPod(ns, 'elsewhere', {
    nodeName: 'another-node',
    serviceAccountName: 'app',
    volumes: { vol: 'spc' },
  });
  const req = publishRequest(p, 'spc', root);
  await rejectsWith(
    publish(req),
    status.INVALID_ARGUMENT,
    /runs on node "another-node", not on this node node-security/,
  );
  assert.equal(existsSync(req.target_path), false);
});

it('follows no symlink in the volume path', async () => {
  const p = await pod('linked', { vol: 'spc' });
  const req = publishRequest(p, 'spc', root);
  const victim = mkdtempSync(join(tmpdir(), 'cce-victim-'));
  execFileSync('rm', ['-rf', join(req.target_path, '..')]);
  symlinkSync(victim, join(req.target_path, '..'));
  await rejectsWith(publish(req), status.INVALID_ARGUMENT, /is a symbolic link; the driver follows no link out of/);
  assert.deepEqual(readdirSync(victim), []);
  assert.equal(await isMountPoint(join(victim, 'mount')), false);
});

it('unmounts nothing outside a CSI volume folder', async () => {
  const victim = mkdtempSync(join(tmpdir(), 'cce-victim-mount-'));
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', victim]);
  try {
    await rejectsWith(
      driver.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: 'x', target_path: victim }),
      status.INVALID_ARGUMENT,
      /is outside the kubelet root/,
    );
    assert.ok(await isMountPoint(victim));
  } finally {
    execFileSync('umount', [victim]);
  }
});

it('refuses writer-reserved names and counts bytes, not characters', async () => {
  await createSpc(ns, 'spc-data', '- {objectName: "..data", objectType: csms, objectVersion: v1}');
  await createSpc(
    ns,
    'spc-long',
    `- {objectName: small, objectAlias: "${'é'.repeat(128)}", objectType: csms, objectVersion: v1}`,
  );
  await createSpc(
    ns,
    'spc-255',
    `- {objectName: small, objectAlias: "${'é'.repeat(127)}x", objectType: csms, objectVersion: v1}`,
  );
  const p = await pod('names', { data: 'spc-data', long: 'spc-long', ok: 'spc-255' });
  await rejectsWith(
    publish(publishRequest(p, 'spc-data', root)),
    status.INVALID_ARGUMENT,
    /objectName \(the file name when there is no objectAlias\) "\.\.data" is not a plain file name/,
  );
  await rejectsWith(
    publish(publishRequest(p, 'spc-long', root)),
    status.INVALID_ARGUMENT,
    /is 256 bytes in UTF-8, over the limit of 255/,
  );
  const ok = publishRequest(p, 'spc-255', root);
  await publish(ok);
  assert.equal(readFileSync(join(ok.target_path, `${'é'.repeat(127)}x`), 'utf8'), 'small-value');
  assert.deepEqual(
    readdirSync(ok.target_path).filter((e) => e.startsWith('..')).length,
    2,
    'only ..data and its folder',
  );
});

it('refuses a CSMS reply over the limit, mounting nothing', async () => {
  await createSpc(ns, 'spc-big', '- {objectName: big, objectType: csms, objectVersion: v1}');
  const req = publishRequest(await pod('big', { vol: 'spc-big' }), 'spc-big', root);
  await rejectsWith(
    publish(req),
    status.UNAVAILABLE,
    /CSMS answered secret "big" version "v1" with more than 1048576 bytes, over the limit set by --csms-max-response-bytes/,
  );
  assert.equal(existsSync(req.target_path), false);
});

it('bounds each tmpfs by its content', async () => {
  const req = publishRequest(await pod('sized', { vol: 'spc' }), 'spc', root);
  await publish(req);
  const { line } = mounts().find((m) => m.point === req.target_path)!;
  const size = Number(/size=(\d+)k/.exec(line)![1]);
  assert.ok(size > 0 && size <= 128, `tmpfs size ${size}k for one small file: ${line}`);
});

it('keeps no ServiceAccount or SPC of namespaces this node does not use', async () => {
  const elsewhere = await createNamespace('sec-elsewhere');
  try {
    const blob = 'x'.repeat(100_000);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        core.createNamespacedServiceAccount({
          namespace: elsewhere,
          body: { metadata: { name: `sa-${i}`, annotations: { blob } } },
        }),
      ),
    );
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        createSpc(elsewhere, `spc-${i}`, `- {objectName: small, objectType: csms, objectVersion: v1}\n# ${blob}`),
      ),
    );
    // A mount after they exist shows the driver is running and watching.
    await publish(publishRequest(await pod('after-noise', { vol: 'spc' }), 'spc', root));
    assert.ok((await driver.metric('kube_cached_objects', { kind: 'ServiceAccount' })) <= 2);
    assert.ok((await driver.metric('kube_cached_objects', { kind: 'SecretProviderClass' })) <= 8);
  } finally {
    await deleteNamespace(elsewhere);
  }
});

it('gives two pods whose SPCPS names collide two objects, and unpublishing one keeps the other', async () => {
  // <pod>-<namespace>-<spc>: pod "p" with SPC "<ns>-s" and pod "p-<ns>" with SPC "s" both make p-<ns>-<ns>-s.
  await createSpc(ns, `${ns}-s`, '- {objectName: small, objectType: csms, objectVersion: v1}');
  await createSpc(ns, 's', '- {objectName: small, objectType: csms, objectVersion: v1}');
  const a = await pod('p', { vol: `${ns}-s` });
  const b = await pod(`p-${ns}`, { vol: 's' });
  const reqA = publishRequest(a, `${ns}-s`, root);
  await publish(reqA);
  await publish(publishRequest(b, 's', root));
  const list = (await custom.listNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace: ns,
    plural: 'secretproviderclasspodstatuses',
  })) as { items: { metadata: { name: string; ownerReferences: { uid: string }[] } }[] };
  const byOwner = (uid: string) => list.items.find((o) => o.metadata.ownerReferences[0].uid === uid)?.metadata.name;
  assert.equal(byOwner(a.metadata!.uid!), `p-${ns}-${ns}-s`);
  assert.match(byOwner(b.metadata!.uid!) ?? '', new RegExp(`^p-${ns}-${ns}-s-[0-9a-f]{10}$`));
  await driver.kubelet.call('Node', 'NodeUnpublishVolume', {
    volume_id: reqA.volume_id,
    target_path: reqA.target_path,
  });
  await spcpsGone(ns, `p-${ns}-${ns}-s`);
  assert.ok(await getSpcps(ns, byOwner(b.metadata!.uid!)!), 'the other pod keeps its status');
});

it('refuses a second SPC syncing a Secret that another SPC owns, with an event', async () => {
  const synced = (name: string) => ({
    secretObjects: [{ secretName: 'shared-name', data: [{ objectName: 'small', key: name }] }],
  });
  await createSpc(ns, 'spc-owner', '- {objectName: small, objectType: csms, objectVersion: v1}', synced('first'));
  await createSpc(ns, 'spc-thief', '- {objectName: small, objectType: csms, objectVersion: v1}', synced('second'));
  const p = await pod('sync-owner', { a: 'spc-owner', b: 'spc-thief' });
  await publish(publishRequest(p, 'spc-owner', root));
  await rejectsWith(
    publish(publishRequest(p, 'spc-thief', root)),
    status.FAILED_PRECONDITION,
    new RegExp(
      `Secret ${ns}/shared-name is synced from SecretProviderClass ${ns}/spc-owner; SecretProviderClass ${ns}/spc-thief declares it too`,
    ),
  );
  const secret = await readSecret(ns, 'shared-name');
  assert.deepEqual(Object.keys(secret?.data ?? {}), ['first']);
  assert.equal(secret?.metadata?.annotations?.['cce.io/secret-provider-class'], `${ns}/spc-owner`);
  await eventually(
    'a SecretSyncConflict event',
    async () => ((await podEvents(ns, 'sync-owner')).some((e) => e.reason === 'SecretSyncConflict') ? true : undefined),
    10_000,
  );
});

it('refuses to create a Secret type that Kubernetes fills with a token', async () => {
  await createSpc(ns, 'spc-sa-token', '- {objectName: small, objectType: csms, objectVersion: v1}', {
    secretObjects: [
      {
        secretName: 'minted',
        type: 'kubernetes.io/service-account-token',
        annotations: { 'kubernetes.io/service-account.name': 'default' },
        data: [{ objectName: 'small', key: 'x' }],
      },
    ],
  });
  await rejectsWith(
    publish(publishRequest(await pod('sa-token', { vol: 'spc-sa-token' }), 'spc-sa-token', root)),
    status.INVALID_ARGUMENT,
    /has type kubernetes.io\/service-account-token, which Kubernetes acts on/,
  );
  assert.equal(await readSecret(ns, 'minted'), undefined);
});

/** A hand-made SPCPS claiming that `targetPath` is a volume of `victim` on this node. */
async function decoySpcps(name: string, victim: k8s.V1Pod, targetPath: string): Promise<void> {
  await createSpcps(
    ns,
    {
      name,
      labels: { 'internal.secrets-store.csi.k8s.io/node-name': nodeId },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: victim.metadata!.name!, uid: victim.metadata!.uid! }],
    },
    {
      podName: victim.metadata!.name!,
      secretProviderClassName: 'spc-steal',
      mounted: true,
      targetPath,
      objects: [{ id: 'token', version: 'v1' }],
    },
  );
}

it('adopts only its own volumes: a hand-made SPCPS pointing at any tmpfs reads nothing from it', async () => {
  await createSpc(ns, 'spc-steal', '- {objectName: token, objectType: csms, objectVersion: v1}', {
    secretObjects: [{ secretName: 'stolen', data: [{ objectName: 'token', key: 'token' }] }],
  });
  const honest = await pod('honest', { vol: 'spc-steal' });
  await publish(publishRequest(honest, 'spc-steal', root));
  const victim = await pod('victim', { vol: 'spc-steal' });
  // Two decoys with the driver's own ServiceAccount token in them: a projected-token
  // folder of the pod, and the pod's own CSI volume path with a tmpfs someone else made.
  const projected = join(
    root,
    'pods',
    victim.metadata!.uid!,
    'volumes',
    'kubernetes.io~projected',
    'kube-api-access',
    'mount',
  );
  const csiPath = publishRequest(victim, 'spc-steal', root).target_path;
  foreignTmpfs(projected, { token: driverToken });
  foreignTmpfs(csiPath, { token: driverToken });
  for (const [i, targetPath] of [projected, csiPath].entries()) await decoySpcps(`decoy-${i}`, victim, targetPath);
  await driver.stop();
  driver = await start();
  await eventually(
    'the decoys to be reported',
    async () =>
      (await podEvents(ns, 'victim')).some((e) => e.reason === 'SecretProviderClassPodStatusIgnored')
        ? true
        : undefined,
    15_000,
  );
  assert.equal((driver.logs.match(/"Volume not taken over after a restart; left alone"/g) ?? []).length, 2);
  assert.match(driver.logs, /Took over volumes mounted before a restart" volumes=\d+/);
  // An SPC edit refreshes every adopted volume, reading pinned values "from local".
  const edited = { secretName: 'stolen', labels: { edited: 'yes' }, data: [{ objectName: 'token', key: 'token' }] };
  const patch = JSON.stringify({ spec: { secretObjects: [edited] } });
  await kubectl('patch', 'spc', 'spc-steal', '-n', ns, '--type=merge', '-p', patch);
  await eventually(
    'the honest volume to apply the edit',
    async () => ((await readSecret(ns, 'stolen'))?.metadata?.labels?.edited === 'yes' ? true : undefined),
    10_000,
  );
  const stolen = await readSecret(ns, 'stolen');
  assert.equal(Buffer.from(stolen!.data!.token, 'base64').toString(), 'csms-value');
  assert.ok(!driver.logs.includes(driverToken));
  for (const dir of [projected, csiPath])
    assert.equal(readFileSync(join(dir, 'token'), 'utf8'), driverToken, 'the decoy is left alone');
  execFileSync('umount', [projected]);
  execFileSync('umount', [csiPath]);
});

it('serves the socket and unpublish with the metadata service down, and recovers on its own', async () => {
  const port = await freePort();
  const metadata = new CsmsEmulator({
    projectId: TEST_PROJECT_ID,
    credentials: [],
    secrets: [],
    agency: { accessKey: 'AGENCYAK', secretKey: 'agency-sk', securityToken: 'agency-token' },
  });
  const csms = new CsmsEmulator({
    projectId: TEST_PROJECT_ID,
    credentials: [],
    agency: { accessKey: 'AGENCYAK', secretKey: 'agency-sk', securityToken: 'agency-token' },
    secrets: [{ name: 'small', versions: ['from-agency'] }],
  });
  const d = new DriverProcess({
    nodeId,
    csmsEndpoint: await csms.listen(),
    projectId: '',
    kubeletRoot: root,
    extraArgs: [`--metadata-endpoint=http://127.0.0.1:${port}`],
  });
  try {
    await d.start();
    const p = await pod('cloudless', { vol: 'spc' });
    const req = publishRequest(p, 'spc', root);
    await rejectsWith(
      d.kubelet.call('Node', 'NodePublishVolume', req),
      status.UNAVAILABLE,
      /no CSMS credentials are configured \(nodePublishSecretRef, HUAWEICLOUD_SDK_AK\/HUAWEICLOUD_SDK_SK\) and the ECS metadata service at http:\/\/127\.0\.0\.1:\d+ is unreachable/,
    );
    assert.equal(existsSync(req.target_path), false);
    await d.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path });
    await metadata.listen(port);
    await d.kubelet.call('Node', 'NodePublishVolume', req);
    assert.equal(readFileSync(join(req.target_path, 'small'), 'utf8'), 'from-agency');
  } finally {
    await d.stop();
    await metadata.close();
    await csms.close();
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
