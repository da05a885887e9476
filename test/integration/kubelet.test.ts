// The seed's workflow through a real kubelet: kubectl apply of a ServiceAccount, an SPC
// and a Pod on a kubelet node; kubelet's own CSI volume plugin calls the driver, reports
// its errors as FailedMount events, retries, and unpublishes when the pod goes. The
// CSIDriver is the chart's. The driver registers itself with kubelet (--plugin-registration-dir),
// as the chart runs it, with no registrar sidecar.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { isMountPoint } from '../../src/driver/mounter.js';
import { startKubeletNode, waitForNode, type KubeletNode } from '../cluster/kubelet-node.js';
import {
  binDir,
  chartDir,
  core,
  createNamespace,
  deleteNamespace,
  eventually,
  getSpcps,
  spcpsGone,
  helm,
  kubeconfigPath,
  kubectl,
  podEvents,
  readSecret,
} from '../helpers/cluster.js';
import { unmountAll, type DriverProcess } from '../helpers/driver.js';
import { withDriver } from '../helpers/with-driver.js';

const NODE = 'node-kubelet';
const DRIVER = 'secrets-store.csi.k8s.io';
const dir = mkdtempSync(join(tmpdir(), 'cce-kubelet-test-'));
const fx = withDriver({
  name: 'kubelet',
  secrets: [
    { name: 'secret_1', versions: ['{"user":"alice"}'] },
    { name: 'own', versions: ['own-value'] },
  ],
});
const CLUSTER = 'kubelet-cluster';
const { emulator } = fx;
let ns: string;
let node: KubeletNode;
let driver: DriverProcess;
const socketDir = mkdtempSync(join(tmpdir(), 'cce-kubelet-csi-'));

// On the kubelet node's own root, not the fixture's.
const startDriver = () =>
  fx.start({
    nodeId: NODE,
    socketDir,
    kubeletRoot: node.root,
    extraArgs: [
      '--rotation-poll-interval=2s',
      `--plugin-registration-dir=${node.root}/plugins_registry`,
      `--cluster-id=${CLUSTER}`,
      `--cce-endpoint=${fx.endpoint}`,
    ],
  });

before(async () => {
  ns = await createNamespace('kubelet');
  await fx.ready;
  node = await startKubeletNode(binDir, kubeconfigPath, NODE);
  await waitForNode(node, 'the kubelet node to be Ready', async () =>
    (await core.readNode({ name: NODE })).status!.conditions!.some((c) => c.type === 'Ready' && c.status === 'True'),
  );
  // The chart's CSIDriver with pod identity on, and one more token request, so kubelet passes
  // ServiceAccount tokens (and calls again with fresh ones: requiresRepublish).
  const csidriver = join(dir, 'csidriver.yaml');
  const args = [
    ...['--kube-version', '1.33.13', '--show-only', 'templates/csidriver.yaml'],
    ...['--set', 'tokenRequests[0].audience=dew.test', '--set', 'podIdentity.enabled=true'],
    ...['--set', `podIdentity.clusterID=${CLUSTER}`],
  ];
  // CCE Pod Identity trusts the cluster's own token keys.
  emulator.store.setPodIdentity({
    clusterId: CLUSTER,
    jwks: JSON.parse(await kubectl('get', '--raw', '/openid/v1/jwks')) as { keys: [] },
    associations: [{ namespace: ns, serviceAccount: 'own', agency: 'own-reader' }],
    agencies: [{ name: 'own-reader', secrets: ['own'] }],
  });
  writeFileSync(csidriver, (await helm('template', 'csm', chartDir, ...args)).out);
  await kubectl('apply', '-f', csidriver);
  driver = await startDriver();
  await waitForNode(node, 'kubelet to register the driver in its CSINode', async () =>
    (await kubectl('get', 'csinode', NODE, '-o', 'jsonpath={.spec.drivers[*].name}')).includes(DRIVER),
  );
});

after(async () => {
  await deleteNamespace(ns);
  await driver?.stop();
  if (node) unmountAll(node.root);
  await node?.stop();
});

/** kubectl apply, as an app team would, of a ServiceAccount, an SPC and a Pod on the node. */
async function applyWorkload(pod: string, allowed: string[], secret = 'secret_1', podIdentity = false): Promise<void> {
  const manifest = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: ${pod}, namespace: ${ns}, annotations: {cce.io/dew-resource: '${JSON.stringify(allowed)}'}}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: ${pod}, namespace: ${ns}}
spec:
  provider: cce
  parameters:
    usePodIdentity: "${podIdentity}"
    objects: |
      - objectName: ${secret}
        objectType: csms
        objectVersion: latest
  secretObjects:
    - secretName: ${pod}-synced
      type: Opaque
      data: [{objectName: ${secret}, key: value}]
---
apiVersion: v1
kind: Pod
metadata: {name: ${pod}, namespace: ${ns}}
spec:
  nodeName: ${NODE}
  serviceAccountName: ${pod}
  containers:
    - name: app
      image: registry.invalid/app:1
      volumeMounts: [{name: secrets, mountPath: /mnt/secrets, readOnly: true}]
  volumes:
    - name: secrets
      csi: {driver: ${DRIVER}, readOnly: true, volumeAttributes: {secretProviderClass: ${pod}}}
`;
  const file = join(dir, `${pod}.yaml`);
  writeFileSync(file, manifest);
  await kubectl('apply', '-f', file);
}

async function runningPod(name: string) {
  try {
    return await eventually(
      `pod ${name} to run`,
      async () => {
        const pod = await core.readNamespacedPod({ name, namespace: ns });
        return pod.status?.phase === 'Running' ? pod : undefined;
      },
      60_000,
    );
  } catch (err) {
    const events = (await podEvents(ns, name)).map((e) => `${e.reason}: ${e.message}`).join('\n');
    throw new Error(
      `${String(err)}\nevents:\n${events}\nkubelet:\n${node.logs()}\ndriver:\n${driver.logs.slice(-3000)}`,
      {
        cause: err,
      },
    );
  }
}

const volumeDir = (uid: string) => join(node.root, 'pods', uid, 'volumes', 'kubernetes.io~csi', 'secrets', 'mount');

it('registers itself with kubelet, no registrar sidecar: kubelet calls its registration socket and reports success', async () => {
  assert.equal(existsSync(join(node.root, 'plugins_registry', `${DRIVER}-reg.sock`)), true);
  assert.match(driver.logs, /Registered with kubelet/);
  assert.equal(await driver.metric('kubelet_plugin_registered'), 1);
});

it('mounts through kubelet: files in its pod folder, containers running, SPCPS and Secret recorded', async () => {
  await applyWorkload('app', ['secret_1']);
  const pod = await runningPod('app');
  const mount = volumeDir(pod.metadata!.uid!);
  assert.equal(readFileSync(join(mount, 'secret_1'), 'utf8'), '{"user":"alice"}');
  assert.ok(await isMountPoint(mount), 'a tmpfs of the driver');
  assert.ok(
    pod.status?.containerStatuses?.every((c) => c.state?.running),
    'the containers started in the runtime',
  );
  const spcps = await getSpcps(ns, `app-${ns}-app`);
  assert.deepEqual(spcps?.status.objects, [{ id: 'secret_1', version: 'v1' }]);
  const secret = await readSecret(ns, 'app-synced');
  assert.equal(Buffer.from(secret!.data!.value, 'base64').toString(), '{"user":"alice"}');
  // The chart's tokenRequests made kubelet pass a token; the driver took it and logged none.
  assert.match(driver.logs, /tokenAudiences="dew\.test,service\.cce\.pods"/);
  assert.doesNotMatch(driver.logs, /eyJ/);
});

it('reports a secret outside the allow-list as FailedMount, and mounts once the annotation is fixed', async () => {
  await applyWorkload('denied', []);
  const event = await eventually(
    'a FailedMount event',
    async () => (await podEvents(ns, 'denied')).find((e) => e.reason === 'FailedMount'),
    60_000,
  );
  assert.match(event.message ?? '', /code = PermissionDenied desc = .*secret_1/);
  const pending = await core.readNamespacedPod({ name: 'denied', namespace: ns });
  assert.equal(pending.status?.phase, 'Pending');
  assert.equal(pending.status?.containerStatuses?.[0]?.state?.waiting?.reason, 'ContainerCreating');
  const patch = JSON.stringify({ metadata: { annotations: { 'cce.io/dew-resource': '["secret_1"]' } } });
  await kubectl('patch', 'serviceaccount', 'denied', '-n', ns, '--type=merge', '-p', patch);
  await runningPod('denied');
});

it("pod identity through kubelet: kubelet requests the pod's token, the driver trades it for the agency's keys", async () => {
  await applyWorkload('own', ['own'], 'own', true);
  const pod = await runningPod('own');
  assert.equal(readFileSync(join(volumeDir(pod.metadata!.uid!), 'own'), 'utf8'), 'own-value');
  const read = emulator.store.requestLog.filter((r) => r.what === 'GET own/latest');
  assert.ok(
    read.length > 0 && read.every((r) => r.agency === 'own-reader'),
    "read as the pod's agency, never the node",
  );
  // requiresRepublish: kubelet calls again for the mounted volume, with its token.
  const calls = () =>
    (driver.logs.match(new RegExp(`"Servicing mount request" Pod="own" Namespace="${ns}"`, 'g')) ?? []).length;
  const before = calls();
  await eventually('kubelet to republish the volume', async () => (calls() > before ? true : undefined), 30_000);
  assert.doesNotMatch(driver.logs, /eyJ/, 'no token in the log');
  // A ServiceAccount without an association: kubelet shows the admin's next step.
  await applyWorkload('stranger', ['own'], 'own', true);
  const event = await eventually(
    'a FailedMount event',
    async () => (await podEvents(ns, 'stranger')).find((e) => e.reason === 'FailedMount'),
    60_000,
  );
  assert.match(
    event.message ?? '',
    new RegExp(
      `code = PermissionDenied desc = ServiceAccount ${ns}/stranger has no pod identity association in cluster ${CLUSTER}`,
    ),
  );
});

it('keeps the files across a driver restart, and rotation goes on', async () => {
  const pod = await runningPod('app');
  const file = join(volumeDir(pod.metadata!.uid!), 'secret_1');
  await driver.stop();
  assert.equal(existsSync(join(node.root, 'plugins_registry', `${DRIVER}-reg.sock`)), false, 'unregistered on stop');
  driver = await startDriver();
  assert.equal(readFileSync(file, 'utf8'), '{"user":"alice"}');
  await eventually('kubelet to register the restarted driver', async () =>
    (await driver.metric('kubelet_plugin_registered')) === 1 ? true : undefined,
  );
  emulator.store.addVersion('secret_1', { secret_string: '{"user":"bob"}' });
  await eventually('the rotated value', async () => (readFileSync(file, 'utf8').includes('bob') ? true : undefined));
});

it('unpublishes when the pod is deleted: the tmpfs, the SPCPS and the pod go, without forcing', async () => {
  const pod = await runningPod('app');
  const mount = volumeDir(pod.metadata!.uid!);
  await kubectl('delete', 'pod', 'app', '-n', ns, '--wait=false');
  await eventually(
    'the pod to be gone',
    async () => ((await kubectl('get', 'pod', 'app', '-n', ns, '--ignore-not-found', '-o', 'name')) ? undefined : true),
    60_000,
  );
  assert.equal(existsSync(mount), false);
  await spcpsGone(ns, `app-${ns}-app`);
  assert.match(driver.logs, /NodeUnpublishVolume|Unmounted volume/);
});
