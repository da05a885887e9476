// `npm run demo`: the real product on this machine. A real kube-apiserver + etcd (built
// from Go modules on first run), the CSMS emulator with the documentation's secrets,
// the driver on a temporary socket, and this script playing kubelet for one pod.
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { installTools, startControlPlane, type ControlPlane } from '../test/cluster/control-plane.js';
import { CsmsEmulator } from '../src/emulator/server.js';
import { loadSeed } from '../src/emulator/store.js';

const STEPS = 8;
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
  'Kubernetes control plane (kube-apiserver + etcd + kube-controller-manager; the first run builds them: minutes)',
);
const plane: ControlPlane = await startControlPlane(installTools());
say(indent(`API server ready at ${plane.server}`));
process.env.CCE_TEST_KUBECONFIG = plane.kubeconfig;
process.env.CCE_TEST_BIN = plane.binDir;
const { createNamespace, createPod, createServiceAccount, createSpc, eventually, kubectl, patchSpcObjects } =
  await import('../test/helpers/cluster.js');
const { DriverProcess, publishRequest } = await import('../test/helpers/driver.js');
const seed = loadSeed(seedPath);
const emulator = new CsmsEmulator(seed);
let driver: InstanceType<typeof DriverProcess> | undefined;

async function show(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => !n.startsWith('..')).sort();
  return (await Promise.all(names.map(async (f) => `${f}: ${await readFile(join(dir, f), 'utf8')}`))).join('\n');
}

try {
  step(2, "CSMS emulator (every request's signature checked), seeded from demo/seed.yaml");
  const endpoint = await emulator.listen();
  say(indent(`${endpoint}: secret_1 (v1, v2) and secret_2 (JSON with key1, key2)`));

  step(3, 'The driver: cce-secrets-manager serve --rotation-poll-interval=2s');
  driver = new DriverProcess({
    nodeId: 'demo-node',
    csmsEndpoint: endpoint,
    projectId: seed.projectId,
    extraArgs: ['--rotation-poll-interval=2s'],
    env: { HUAWEICLOUD_SDK_AK: seed.credentials[0].accessKey, HUAWEICLOUD_SDK_SK: seed.credentials[0].secretKey },
  });
  await driver.start();
  say(indent(`listening on ${driver.socket}; Probe says ready`));

  step(
    4,
    "The user documentation's objects: ServiceAccount nginx-spc-sa, SPCs spc-test and nginx-deployment-spc-k8s-secrets, a Pod using both",
  );
  const ns = await createNamespace('demo');
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

  step(5, "kubelet calls NodePublishVolume for the pod's two secrets-store volumes");
  const root = driver.kubeletRoot;
  const volume1 = publishRequest(pod, 'spc-test', root, { volume: 'secrets-store-inline' });
  const volume2 = publishRequest(pod, 'nginx-deployment-spc-k8s-secrets', root, { volume: 'k8s-secrets' });
  for (const req of [volume1, volume2]) {
    const t0 = performance.now();
    await driver.kubelet.call('Node', 'NodePublishVolume', req);
    say(
      indent(
        `mounted ${req.volume_context.secretProviderClass} in ${(performance.now() - t0).toFixed(0)} ms; files:\n${indent(await show(req.target_path))}`,
      ),
    );
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
    6,
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

  step(7, 'Publish a new version of secret_1 in CSMS; the next rotation cycle brings it in');
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

  step(8, 'kubelet calls NodeUnpublishVolume when the pod goes away');
  for (const req of [volume1, volume2])
    await driver.kubelet.call('Node', 'NodeUnpublishVolume', {
      volume_id: req.volume_id,
      target_path: req.target_path,
    });
  say(
    indent(
      `targets removed; ${(await kubectl('get', 'spcps', '-n', ns, '--ignore-not-found')).trim() || 'no SPCPS left'}`,
    ),
  );
  say("\nThe driver's log lines for all this:");
  say(
    indent(
      driver.logs
        .split('\n')
        .filter((l) =>
          /Servicing mount request|Get secret successfully|Created synced Secret|Applied SecretProviderClass change|Unmounted/.test(
            l,
          ),
        )
        .join('\n'),
    ),
  );
  say(`\nDemo finished in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
} finally {
  await driver?.stop();
  await emulator.close();
  await plane.stop();
}
