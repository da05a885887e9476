// `npm run demo`: the real product on this machine. A real kube-apiserver + etcd and a
// real kubelet (built from Go modules on first run; the kubelet's containers run in
// Kubernetes' fake CRI server), the CSMS emulator with the documentation's secrets, and
// the driver registered with that kubelet, which mounts the pod's volumes through it.
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { installTools, startControlPlane, type ControlPlane } from '../test/cluster/control-plane.js';
import { startKubeletNode, waitForNode, type KubeletNode } from '../test/cluster/kubelet-node.js';
import { CsmsEmulator } from '../src/emulator/server.js';
import { loadSeed } from '../src/emulator/store.js';

const STEPS = 11;
const seedPath = resolve(import.meta.dirname, '../../demo/seed.yaml');
const say = (s: string) => process.stdout.write(`${s}\n`);
const step = (n: number, s: string) => say(`\n== ${n}/${STEPS} ${s}`);
const indent = (s: string) =>
  s
    .trimEnd()
    .split('\n')
    .map((l) => `   ${l}`)
    .join('\n');

if (process.getuid?.() !== 0) {
  say('The demo mounts a tmpfs as kubelet would, which needs root. Run it as root (e.g. sudo npm run demo).');
  process.exit(1);
}

const started = performance.now();
step(
  1,
  'Kubernetes: kube-apiserver + etcd + kube-controller-manager, and a kubelet node (the first run builds them: minutes)',
);
const plane: ControlPlane = await startControlPlane(installTools());
say(indent(`API server ready at ${plane.server}`));
process.env.CCE_TEST_KUBECONFIG = plane.kubeconfig;
process.env.CCE_TEST_BIN = plane.binDir;
const cluster = await import('../test/helpers/cluster.js');
const { chartDir, core, createNamespace, createPod, createServiceAccount, createSpc, eventually, helm } = cluster;
const { kubectl, patchSpcObjects } = cluster;
const { DriverProcess } = await import('../test/helpers/driver.js');
const { SyncProcess } = await import('../test/helpers/sync-process.js');
const node: KubeletNode = await startKubeletNode(plane.binDir, plane.kubeconfig, 'demo-node');
await waitForNode(node, 'the kubelet node to be Ready', async () =>
  (await core.readNode({ name: 'demo-node' })).status!.conditions!.some(
    (c) => c.type === 'Ready' && c.status === 'True',
  ),
);
say(indent(`$ kubectl get nodes\n${await kubectl('get', 'nodes')}`));
const seed = loadSeed(seedPath);
const emulator = new CsmsEmulator(seed);
let driver: InstanceType<typeof DriverProcess> | undefined;
let sync: InstanceType<typeof SyncProcess> | undefined;

async function writeTemp(name: string, text: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'cce-demo-')), name);
  await writeFile(path, text);
  return path;
}

async function show(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => !n.startsWith('..')).sort();
  return (await Promise.all(names.map(async (f) => `${f}: ${await readFile(join(dir, f), 'utf8')}`))).join('\n');
}

try {
  step(2, "CSMS emulator (every request's signature checked), seeded from demo/seed.yaml");
  const endpoint = await emulator.listen();
  say(indent(`${endpoint}: secret_1 (v1, v2) and secret_2 (JSON with key1, key2)`));

  step(
    3,
    "The driver (cce-secrets-manager serve --rotation-poll-interval=2s --namespace-policy=enforce --plugin-registration-dir=...), registering itself with kubelet; the chart's CSIDriver",
  );
  driver = new DriverProcess({
    nodeId: 'demo-node',
    kubeletRoot: node.root,
    csmsEndpoint: endpoint,
    projectId: seed.projectId,
    extraArgs: [
      '--rotation-poll-interval=2s',
      '--namespace-policy=enforce',
      `--plugin-registration-dir=${node.root}/plugins_registry`,
    ],
    env: { HUAWEICLOUD_SDK_AK: seed.credentials[0].accessKey, HUAWEICLOUD_SDK_SK: seed.credentials[0].secretKey },
  });
  await driver.start();
  const csidriver = (
    await helm('template', 'csm', chartDir, '--kube-version', '1.33.13', '--show-only', 'templates/csidriver.yaml')
  ).out;
  await kubectl('apply', '-f', await writeTemp('csidriver.yaml', csidriver));
  await eventually('kubelet to register the driver', async () =>
    (await kubectl('get', 'csinode', 'demo-node', '-o', 'jsonpath={.spec.drivers[*].name}')) ? true : undefined,
  );
  say(
    indent(
      `listening on ${driver.socket}; kubelet registered it:\n$ kubectl get csinode demo-node -o jsonpath='{.spec.drivers[*].name}'\n${await kubectl('get', 'csinode', 'demo-node', '-o', 'jsonpath={.spec.drivers[*].name}')}`,
    ),
  );

  step(
    4,
    "The cluster admin permits each team's namespace its CSMS secrets (a Namespace annotation no namespace user can edit)",
  );
  const ns = await createNamespace('demo');
  const other = await createNamespace('team-b');
  const permit = [`namespace`, ns, `cce.io/dew-resource-permitted=["secret_*"]`];
  await kubectl('annotate', ...permit);
  await kubectl('annotate', 'namespace', other, 'cce.io/dew-resource-permitted=["team-b-*"]');
  say(indent(`$ kubectl annotate ${permit.slice(0, 2).join(' ')} 'cce.io/dew-resource-permitted=["secret_*"]'`));
  say(indent(`$ kubectl annotate namespace ${other} 'cce.io/dew-resource-permitted=["team-b-*"]'`));

  step(
    5,
    "The user documentation's objects: ServiceAccount nginx-spc-sa, SPCs spc-test and nginx-deployment-spc-k8s-secrets, a Pod using both",
  );
  await createServiceAccount(ns, 'nginx-spc-sa', ['secret_1', 'secret_2']);
  await createSpc(
    ns,
    'spc-test',
    '- objectName: "secret_1"\n  objectAlias: "secret_test"\n  objectVersion: "v1"\n  objectType: "csms"\n',
  );
  await createSpc(
    ns,
    'nginx-deployment-spc-k8s-secrets',
    '- objectName: "secret_2"\n  objectType: "csms"\n  objectVersion: "latest"\n  jmesPath:\n    - path: key1\n      objectAlias: dbusername01\n    - path: key2\n      objectAlias: dbusername02\n',
    {
      secretObjects: [
        {
          secretName: 'my-secret-01',
          type: 'Opaque',
          data: [
            { objectName: 'dbusername01', key: 'db_username_01' },
            { objectName: 'dbusername02', key: 'db_username_02' },
          ],
        },
      ],
    },
  );
  const pod = await createPod(ns, 'nginx-spc', {
    nodeName: 'demo-node',
    serviceAccountName: 'nginx-spc-sa',
    volumes: { 'secrets-store-inline': 'spc-test', 'k8s-secrets': 'nginx-deployment-spc-k8s-secrets' },
  });
  say(indent(`$ kubectl get spc\n${await kubectl('get', 'spc', '-n', ns)}`));

  step(6, "kubelet calls NodePublishVolume for the pod's two secrets-store volumes and starts its container");
  const t5 = performance.now();
  await eventually(
    'the pod to run',
    async () =>
      (await core.readNamespacedPod({ name: 'nginx-spc', namespace: ns })).status?.phase === 'Running'
        ? true
        : undefined,
    60_000,
  );
  say(
    indent(
      `running after ${(performance.now() - t5).toFixed(0)} ms\n$ kubectl get pods\n${await kubectl('get', 'pods', '-n', ns)}`,
    ),
  );
  const described = await kubectl('describe', 'pod', 'nginx-spc', '-n', ns);
  say(indent(`$ kubectl describe pod nginx-spc   (events)\n${described.slice(described.indexOf('Events:'))}`));
  const volumeDir = (volume: string) =>
    join(node.root, 'pods', pod.metadata!.uid!, 'volumes', 'kubernetes.io~csi', volume, 'mount');
  const volume1 = { target_path: volumeDir('secrets-store-inline') };
  for (const volume of ['secrets-store-inline', 'k8s-secrets']) {
    say(indent(`files of volume ${volume} under kubelet's pod folder:\n${indent(await show(volumeDir(volume)))}`));
  }
  const spcpsName = `nginx-spc-${ns}-spc-test`;
  say(indent(`$ kubectl get spcps\n${await kubectl('get', 'spcps', '-n', ns)}`));
  const yaml = await kubectl('get', 'spcps', spcpsName, '-n', ns, '-o', 'yaml');
  say(indent(`$ kubectl get spcps ${spcpsName} -o yaml   (status part)\nstatus:${yaml.split('\nstatus:')[1] ?? ''}`));
  say(
    indent(
      `$ kubectl get secret my-secret-01   (the pod's env vars come from it with secretKeyRef)\n${await kubectl('get', 'secret', 'my-secret-01', '-n', ns)}`,
    ),
  );
  const decoded = await kubectl(
    'get',
    'secret',
    'my-secret-01',
    '-n',
    ns,
    '-o',
    'go-template={{range $k, $v := .data}}{{$k}}={{$v | base64decode}}{{"\\n"}}{{end}}',
  );
  say(indent(decoded));

  step(
    7,
    'Edit spc-test to objectVersion "latest" (the documentation\'s rotation example); the running pod follows within a second',
  );
  let t0 = performance.now();
  await patchSpcObjects(
    ns,
    'spc-test',
    '- objectName: "secret_1"\n  objectAlias: "secret_test"\n  objectVersion: "latest"\n  objectType: "csms"\n',
  );
  await eventually(
    'the edit',
    async () =>
      (await readFile(join(volume1.target_path, 'secret_test'), 'utf8')).endsWith('version-2') ? true : undefined,
    10_000,
  );
  say(indent(`after ${(performance.now() - t0).toFixed(0)} ms: ${await show(volume1.target_path)}`));

  step(8, 'Publish a new version of secret_1 in CSMS; the next rotation cycle brings it in');
  const id = emulator.store.addVersion('secret_1', { secret_string: 'p@ssw0rd-version-3' });
  t0 = performance.now();
  await eventually(
    'rotation',
    async () =>
      (await readFile(join(volume1.target_path, 'secret_test'), 'utf8')).endsWith('version-3') ? true : undefined,
    10_000,
  );
  say(indent(`${id} rotated in after ${(performance.now() - t0).toFixed(0)} ms: ${await show(volume1.target_path)}`));
  say(
    indent(
      `$ kubectl get spcps ${spcpsName} -o jsonpath='{.status.objects}'\n${await kubectl('get', 'spcps', spcpsName, '-n', ns, '-o', 'jsonpath={.status.objects}')}`,
    ),
  );

  step(
    9,
    `Team B lists secret_1 in its own ServiceAccount's allow-list and mounts it: the Namespace permit refuses it`,
  );
  await createServiceAccount(other, 'thief', ['secret_1']);
  await createSpc(other, 'steal', '- objectName: "secret_1"\n  objectVersion: "v1"\n  objectType: "csms"\n');
  await createPod(other, 'thief', { nodeName: 'demo-node', serviceAccountName: 'thief', spc: 'steal' });
  const failed = await eventually('kubelet to report the refused mount', async () => {
    const text = await kubectl('describe', 'pod', 'thief', '-n', other);
    return text.includes('FailedMount') ? text : undefined;
  });
  const events = failed.slice(failed.indexOf('Events:'));
  say(indent(`$ kubectl describe pod thief -n ${other}   (events)\n${events.split('\n').slice(0, 6).join('\n')}`));
  const phase = (await core.readNamespacedPod({ name: 'thief', namespace: other })).status?.phase;
  say(
    indent(
      `pod thief is ${phase}; ${(await kubectl('get', 'spcps', '-n', other, '--ignore-not-found')).trim() || 'no SPCPS'} in ${other}`,
    ),
  );
  await kubectl('delete', 'pod', 'thief', '-n', other, '--wait=true', '--timeout=60s');

  step(
    10,
    'A Secret with no pod: the SecretSync controller (cce-secrets-manager sync) and an upstream SecretSync manifest, applied unchanged',
  );
  const creds = seed.credentials[0];
  sync = new SyncProcess({
    csmsEndpoint: endpoint,
    projectId: seed.projectId,
    extraArgs: ['--rotation-poll-interval=2s', '--namespace-policy=enforce'],
    env: { HUAWEICLOUD_SDK_AK: creds.accessKey, HUAWEICLOUD_SDK_SK: creds.secretKey },
  });
  await sync.start();
  const manifest = [
    'apiVersion: secret-sync.x-k8s.io/v1alpha1',
    'kind: SecretSync',
    'metadata: {name: db-creds}',
    'spec:',
    '  serviceAccountName: nginx-spc-sa',
    '  secretProviderClassName: nginx-deployment-spc-k8s-secrets',
    '  secretObject:',
    '    type: Opaque',
    '    data:',
    '      - {sourcePath: dbusername01, targetKey: username}',
    '',
  ].join('\n');
  say(indent(`$ kubectl apply -f secretsync.yaml\n${manifest}`));
  await kubectl('apply', '-n', ns, '-f', await writeTemp('secretsync.yaml', manifest));
  await eventually('the SecretSync to be ready', async () =>
    (await kubectl(
      'get',
      'secretsync',
      'db-creds',
      '-n',
      ns,
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    )) === 'True'
      ? true
      : undefined,
  );
  say(indent(`$ kubectl get secretsync\n${await kubectl('get', 'secretsync', '-n', ns)}`));
  const syncedKeys = await kubectl(
    ...['get', 'secret', 'db-creds', '-n', ns, '-o'],
    'go-template={{range $k, $v := .data}}{{$k}}={{$v | base64decode}}{{"\\n"}}{{end}}',
  );
  say(indent(`$ kubectl get secret db-creds   (decoded)\n${syncedKeys}`));

  step(11, 'kubectl delete pod: kubelet calls NodeUnpublishVolume and the pod goes');
  await kubectl('delete', 'pod', 'nginx-spc', '-n', ns, '--wait=true', '--timeout=60s');
  say(
    indent(
      `pod gone; targets removed; ${(await kubectl('get', 'spcps', '-n', ns, '--ignore-not-found')).trim() || 'no SPCPS left'}`,
    ),
  );
  say("\nThe driver's log lines for all this:");
  say(
    indent(
      driver.logs
        .split('\n')
        .filter((l) =>
          /Servicing mount request|Get secret successfully|Created synced Secret|Applied SecretProviderClass change|Rotated mounted contents|Unmounted/.test(
            l,
          ),
        )
        .join('\n'),
    ),
  );
  say(`\nDemo finished in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
} finally {
  await sync?.stop();
  await driver?.stop();
  await node.stop();
  await emulator.close();
  await plane.stop();
}
