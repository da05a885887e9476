// The install path as an admin runs it, on a real node: a control plane of its own (the chart
// owns the CRDs here), kubelet on containerd, the driver image built from the Dockerfile, and
// `helm install` of the chart with it. Then the seed's workflow with containers that really
// run: a file read from the mount, a synced Secret as an environment variable, rotation, a
// `helm upgrade` under the running pod, unmount on delete, and `helm uninstall`. The steps
// run in order, as the README's install section lists them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get, type ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { CsmsEmulator } from '../../src/emulator/server.js';
import { startContainerd, type Containerd } from '../cluster/containerd.js';
import { installTools, startControlPlane, type ControlPlane } from '../cluster/control-plane.js';
import { driverImage, imageTools } from '../cluster/images.js';
import { makeCa, signLeaf } from '../cluster/pki.js';
import { nodeIp, startKubeletNode, waitForNode, type KubeletNode } from '../cluster/kubelet-node.js';
import { everyStep, waitFor } from '../cluster/processes.js';

const run = promisify(execFile);
const chart = resolve(import.meta.dirname, '../../../charts/cce-secrets-manager');
const NODE = 'real-node';
const DRIVER = 'secrets-store.csi.k8s.io';
const RELEASE_NS = 'kube-system';
const APP_NS = 'shop';
const projectId = 'e5e5e5e5f6f6f6f6a7a7a7a7b8b8b8b8';
const creds = { accessKey: 'REALNODEAK', secretKey: 'real-node-sk' };
const emulator = new CsmsEmulator({
  projectId,
  credentials: [creds],
  secrets: [{ name: 'db_password', versions: ['first-password'] }],
});
const dir = mkdtempSync(join(tmpdir(), 'cce-real-node-test-'));
const address = nodeIp();
let plane: ControlPlane;
let containerd: Containerd;
let node: KubeletNode;
let busybox: string;
let csmsEndpoint: string;
const values = join(dir, 'values.yaml');

async function kubectl(...args: string[]): Promise<string> {
  return (await run(join(plane.binDir, 'kubectl'), ['--kubeconfig', plane.kubeconfig, ...args])).stdout;
}

async function helm(...args: string[]): Promise<string> {
  const homes = { HELM_CACHE_HOME: 'cache', HELM_CONFIG_HOME: 'config', HELM_DATA_HOME: 'data' };
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: plane.kubeconfig };
  for (const [name, sub] of Object.entries(homes)) env[name] = join(dir, 'helm', sub);
  return (await run(join(plane.binDir, 'helm'), args, { env, maxBuffer: 16 << 20 })).stdout;
}

async function apply(manifest: string): Promise<string> {
  const file = join(dir, 'manifest.yaml');
  writeFileSync(file, manifest);
  return kubectl('apply', '-f', file);
}

/** Whatever the check throws (kubectl failing, a missing field) counts as "not yet". */
const until = (what: string, check: () => Promise<boolean>, timeoutMs = 120_000) =>
  waitFor(what, check, timeoutMs, () => `kubelet:\n${node.logs()}\ncontainerd:\n${containerd.logs()}`);

interface PodJson {
  metadata: { name: string; uid: string; ownerReferences?: { kind: string }[] };
  status: {
    phase: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number }[];
  };
}

async function driverPods(): Promise<PodJson[]> {
  const list = JSON.parse(
    await kubectl('get', 'pods', '-n', RELEASE_NS, '-l', 'app.kubernetes.io/name=cce-secrets-manager', '-o', 'json'),
  ) as { items: PodJson[] };
  return list.items.filter((p) => p.metadata.ownerReferences?.[0]?.kind === 'DaemonSet');
}

const ready = (p: PodJson) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { timeout: 10_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('timeout', function (this: ClientRequest) {
        this.destroy(new Error(`no answer from ${url} in 10 s`));
      })
      .on('error', reject);
  });
}

/** The host's CSI volume mounts (the tmpfs the driver's container made, propagated to the host). */
function volumeMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(join(node.root, 'pods')) && p.includes('/volumes/kubernetes.io~csi/'));
}

/**
 * A private CA and the emulator's certificate by it, as a VPC endpoint might have: the driver
 * (which refuses plain http to another machine) trusts it through the chart's csms.caBundle.
 */
function emulatorTls(): { key: string; cert: string; ca: string } {
  const ca = makeCa(dir, 'csms-ca');
  const leaf = signLeaf(dir, ca, 'csms', 'csms', [`IP:${address}`]);
  return {
    key: readFileSync(leaf.key, 'utf8'),
    cert: readFileSync(leaf.cert, 'utf8'),
    ca: readFileSync(ca.cert, 'utf8'),
  };
}
let csmsCa: string;

before(async () => {
  const binDir = process.env.CCE_TEST_BIN ?? installTools();
  plane = await startControlPlane(binDir, { address });
  const tools = await imageTools();
  busybox = tools.busybox;
  const image = await driverImage(tools);
  const apiPort = Number(new URL(plane.server).port);
  containerd = await startContainerd({
    binDir,
    images: tools,
    load: [busybox, image],
    apiService: { clusterIp: plane.serviceIp, port: 443, target: `${address}:${apiPort}` },
  });
  node = await startKubeletNode(binDir, plane.kubeconfig, NODE, {
    endpoint: containerd.endpoint,
    clientCa: plane.kubeletClientCa!,
    stop: () => containerd.stop(),
  });
  await waitForNode(
    node,
    'the containerd node to be Ready',
    async () =>
      (await kubectl('get', 'node', NODE, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')) === 'True',
  );
  const tls = emulatorTls();
  csmsCa = tls.ca;
  csmsEndpoint = await emulator.listen(0, address, tls);
});

after(async () => {
  // What a failed step left: the pods go through kubelet first, as on any node; then kubelet
  // (which stops containerd, then unmounts its folder), the control plane and the emulator.
  const leftToDelete = plane && node ? ['namespace', APP_NS, '--ignore-not-found', '--timeout=60s'] : undefined;
  await everyStep([
    () => leftToDelete && kubectl('delete', ...leftToDelete),
    () => leftToDelete && helm('uninstall', 'cce-secrets-manager', '-n', RELEASE_NS, '--ignore-not-found', '--wait'),
    () => (node ? node.stop() : containerd?.stop()),
    () => plane?.stop(),
    () => emulator.close(),
    async () => rmSync(dir, { recursive: true, force: true }),
  ]);
});

it('helm install: the DaemonSet pod runs the image, registers itself with kubelet (CSINode) and its /healthz answers', async () => {
  await kubectl(
    'create',
    'secret',
    'generic',
    'csms-credentials',
    '-n',
    RELEASE_NS,
    `--from-literal=HUAWEICLOUD_SDK_AK=${creds.accessKey}`,
    `--from-literal=HUAWEICLOUD_SDK_SK=${creds.secretKey}`,
  );
  writeFileSync(
    values,
    JSON.stringify({
      image: { repository: 'localhost/cce-secrets-manager', tag: 'test', pullPolicy: 'Never' },
      kubeletRootDir: node.root,
      csms: { endpoint: csmsEndpoint, projectId, caBundle: csmsCa },
      credentials: { existingSecret: 'csms-credentials' },
      // Nothing of the test node outside its own folders.
      providers: { volume: join(dir, 'providers'), additionalVolumePaths: [] },
      rotation_poll_interval: '1m',
      namespacePolicy: 'enforce',
      webhook: { replicas: 1 },
      sync: { enabled: true, replicas: 1 },
    }),
  );
  await helm('install', 'cce-secrets-manager', chart, '-n', RELEASE_NS, '-f', values, '--wait', '--timeout', '4m');
  // helm's --wait counts a DaemonSet with maxUnavailable 1 as ready with none ready.
  await until('the driver pod to be Ready', async () => (await driverPods()).some(ready));
  const [pod] = await driverPods();
  await until('kubelet to list the driver in its CSINode', async () =>
    (await kubectl('get', 'csinode', NODE, '-o', 'jsonpath={.spec.drivers[*].name}')).includes(DRIVER),
  );
  assert.equal(await httpStatus(`http://${pod.status.podIP}:8095/healthz`), 200);
  assert.equal(pod.status.containerStatuses?.[0]?.restartCount, 0);
});

it('the webhook Deployment refuses an invalid SPC at kubectl apply', async () => {
  await kubectl('create', 'namespace', APP_NS);
  // As a cluster admin of a shared cluster does: which secrets the namespace's pods may mount.
  await kubectl('annotate', 'namespace', APP_NS, 'cce.io/dew-resource-permitted=["db_password"]');
  // failurePolicy is Ignore: until the Service has the webhook's address, an SPC would pass.
  await until('the webhook Service to list its pod', async () =>
    /\d/.test(
      await kubectl(
        'get',
        'endpoints',
        '-n',
        RELEASE_NS,
        'cce-secrets-manager-webhook',
        '-o',
        'jsonpath={.subsets[*].addresses[*].ip}',
      ),
    ),
  );
  const bad = `
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: bad, namespace: ${APP_NS}}
spec:
  provider: cce
  parameters:
    objects: '- {objectName: db_password, objectAlias: "../../etc/x", objectType: csms, objectVersion: v1}'
`;
  await assert.rejects(apply(bad), /denied the request[\s\S]*objectAlias/);
});

const appManifest = () => `
apiVersion: v1
kind: ServiceAccount
metadata: {name: shop, namespace: ${APP_NS}, annotations: {cce.io/dew-resource: '["db_password"]'}}
---
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: shop, namespace: ${APP_NS}}
spec:
  provider: cce
  parameters:
    objects: |
      - objectName: db_password
        objectType: csms
        objectVersion: latest
  secretObjects:
    - secretName: shop-db
      type: Opaque
      data: [{objectName: db_password, key: password}]
---
apiVersion: v1
kind: Pod
metadata: {name: shop, namespace: ${APP_NS}}
spec:
  serviceAccountName: shop
  terminationGracePeriodSeconds: 1
  containers:
    - name: reader
      image: ${busybox}
      imagePullPolicy: Never
      command: [sh, -c, 'last=; while :; do v="$(cat /mnt/secrets-store/db_password)"; if [ "$v" != "$last" ]; then echo "file: $v"; last="$v"; fi; sleep 1; done']
      volumeMounts: [{name: secrets, mountPath: /mnt/secrets-store, readOnly: true}]
    - name: env
      image: ${busybox}
      imagePullPolicy: Never
      command: [sh, -c, 'echo "env: $DB_PASSWORD"; exec sleep 2147483647']
      env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: shop-db, key: password}}}]
  volumes:
    - name: secrets
      csi: {driver: ${DRIVER}, readOnly: true, volumeAttributes: {secretProviderClass: shop}}
`;

const logsOf = (container: string) => kubectl('logs', '-n', APP_NS, 'shop', '-c', container);
const shows = (container: string, line: string, timeoutMs = 120_000) =>
  until(
    `"${line}" in the ${container} container's log`,
    async () => (await logsOf(container)).includes(line),
    timeoutMs,
  );

it("an app pod's container reads the mounted file, and another takes the synced Secret as an environment variable", async () => {
  await apply(appManifest());
  await shows('reader', 'file: first-password');
  await shows('env', 'env: first-password');
  assert.equal(volumeMounts().length, 1, 'one tmpfs on the host, propagated from the driver container');
  assert.match(await kubectl('get', 'secretproviderclasspodstatuses', '-n', APP_NS, '-o', 'name'), /shop/);
});

it('rotation reaches the file as the container sees it', async () => {
  emulator.store.addVersion('db_password', { secret_string: 'second-password' });
  // rotation_poll_interval is 1m, the chart's shortest.
  await shows('reader', 'file: second-password', 150_000);
});

it('the SecretSync Deployment runs the image and keeps a Secret in step with no pod mounting it', async () => {
  await apply(`
apiVersion: secret-sync.x-k8s.io/v1alpha1
kind: SecretSync
metadata: {name: shop-sync, namespace: ${APP_NS}}
spec:
  serviceAccountName: shop
  secretProviderClassName: shop
  secretObject:
    data: [{sourcePath: db_password, targetKey: password}]
`);
  await until('the synced Secret', async () => {
    const out = await kubectl('get', 'secret', 'shop-sync', '-n', APP_NS, '-o', 'jsonpath={.data.password}');
    return Buffer.from(out, 'base64').toString() === 'second-password';
  });
  const pods = JSON.parse(
    await kubectl('get', 'pods', '-n', RELEASE_NS, '-l', 'app.kubernetes.io/component=sync', '-o', 'json'),
  ) as { items: PodJson[] };
  assert.equal(pods.items.length, 1);
  assert.ok(ready(pods.items[0]), 'the sync pod is Ready');
  assert.equal(pods.items[0].status.containerStatuses?.[0]?.restartCount, 0);
  const lease = await kubectl(
    'get',
    'lease',
    'cce-secrets-manager-sync',
    '-n',
    RELEASE_NS,
    '-o',
    'jsonpath={.spec.holderIdentity}',
  );
  assert.equal(lease, pods.items[0].metadata.name);
});

it('helm upgrade rolls the driver pod; the app pod keeps its files and keeps rotating, and nothing is left behind', async () => {
  const [before] = await driverPods();
  // Up for over a minute by now: its liveness probe (30 s delay, every 15 s) has passed.
  assert.equal(before.status.containerStatuses?.[0]?.restartCount, 0, 'liveness never restarted the driver');
  await helm('upgrade', 'cce-secrets-manager', chart, '-n', RELEASE_NS, '--reuse-values', '--set', 'log.verbosity=1');
  await until('the DaemonSet to roll its pod', async () => {
    const pods = await driverPods();
    return pods.length === 1 && pods[0].metadata.uid !== before.metadata.uid && ready(pods[0]);
  });
  const app = JSON.parse(await kubectl('get', 'pod', '-n', APP_NS, 'shop', '-o', 'json')) as PodJson;
  assert.deepEqual(
    app.status.containerStatuses?.map((c) => [c.name, c.ready, c.restartCount]),
    [
      ['env', true, 0],
      ['reader', true, 0],
    ],
  );
  assert.equal(volumeMounts().length, 1, 'the volume is still mounted, once');
  emulator.store.addVersion('db_password', { secret_string: 'third-password' });
  await shows('reader', 'file: third-password', 150_000);
  assert.equal(volumeMounts().length, 1);
});

it('kubectl delete pod unmounts: the host shows no leftover mount', async () => {
  const { uid } = (JSON.parse(await kubectl('get', 'pod', '-n', APP_NS, 'shop', '-o', 'json')) as PodJson).metadata;
  await kubectl('delete', 'pod', '-n', APP_NS, 'shop', '--wait=true', '--timeout=90s');
  await until('the volume to be unmounted', async () => !volumeMounts().some((m) => m.includes(uid)));
  assert.deepEqual(volumeMounts(), []);
  await until(
    'its SPCPS to go with it',
    async () => (await kubectl('get', 'secretproviderclasspodstatuses', '-n', APP_NS, '-o', 'name')).trim() === '',
  );
});

it('helm uninstall removes the CRDs, unless crds.keep is set', async () => {
  const crd = 'crd/secretproviderclasses.secrets-store.csi.x-k8s.io';
  await helm('uninstall', 'cce-secrets-manager', '-n', RELEASE_NS, '--wait', '--timeout', '2m');
  await until('the CRDs to go', () =>
    kubectl('get', crd).then(
      () => false,
      (err: Error) => /NotFound/.test(err.message),
    ),
  );
  // Another release that keeps them: installed, uninstalled, and the CRDs stay.
  await helm('install', 'keep', chart, '-n', RELEASE_NS, '-f', values, '--set', 'crds.keep=true');
  await helm('uninstall', 'keep', '-n', RELEASE_NS, '--wait', '--timeout', '2m');
  assert.match(await kubectl('get', crd, '-o', 'name'), /secretproviderclasses/);
});
