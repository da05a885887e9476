// `npm run demo`: the real product on this machine. A real kube-apiserver + etcd (built
// from Go modules on first run), the CSMS emulator with the documentation's secrets,
// the driver on a temporary socket, and this script playing kubelet for one pod.
import { mkdtempSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { installTools, startControlPlane, type ControlPlane } from '../test/cluster/control-plane.js';
import { CsmsEmulator } from '../src/provider/emulator/server.js';
import { loadSeed } from '../src/provider/emulator/store.js';

const seedPath = resolve(import.meta.dirname, '../../demo/seed.yaml');
const say = (s: string) => process.stdout.write(`${s}\n`);
const step = (n: number, s: string) => say(`\n== ${n}/6 ${s}`);
const indent = (s: string) => s.trimEnd().split('\n').map((l) => `   ${l}`).join('\n');

if (process.getuid?.() !== 0) {
  say('The demo mounts a tmpfs as kubelet would, which needs root. Run it as root: sudo npm run demo');
  process.exit(1);
}

step(1, 'Kubernetes control plane (kube-apiserver + etcd + kube-controller-manager; first run builds them: minutes)');
const plane: ControlPlane = await startControlPlane(installTools());
say(indent(`API server ready at ${plane.server}`));
const emulator = new CsmsEmulator(loadSeed(seedPath));
process.env.CCE_TEST_KUBECONFIG = plane.kubeconfig;
process.env.CCE_TEST_BIN = plane.binDir;
const { createNamespace, createPod, createServiceAccount, createSpc, kubectl } = await import('../test/helpers/cluster.js');
const { DriverProcess, publishRequest } = await import('../test/helpers/driver.js');
let driver: InstanceType<typeof DriverProcess> | undefined;

try {
  step(2, 'CSMS emulator (signatures checked), seeded from demo/seed.yaml');
  const endpoint = await emulator.listen();
  say(indent(`${endpoint}: secret_1 (v1, v2), secret_2 (JSON with key1, key2)`));

  step(3, 'Driver: cce-secrets-manager serve');
  const seed = loadSeed(seedPath);
  driver = new DriverProcess({
    nodeId: 'demo-node', csmsEndpoint: endpoint, projectId: seed.projectId,
    env: { HUAWEICLOUD_SDK_AK: seed.credentials[0].accessKey, HUAWEICLOUD_SDK_SK: seed.credentials[0].secretKey },
  });
  await driver.start();
  say(indent(`listening on ${driver.socket}; Probe says ready`));

  step(4, 'The user\'s objects: ServiceAccount nginx-spc-sa, SecretProviderClass spc-test, Pod nginx-spc');
  const ns = await createNamespace('demo');
  await createServiceAccount(ns, 'nginx-spc-sa', ['secret_1', 'secret_2']);
  await createSpc(ns, 'spc-test', '- objectName: "secret_1"\n  objectAlias: "secret_test"\n  objectVersion: "v1"\n  objectType: "csms"\n');
  const pod = await createPod(ns, 'nginx-spc', { nodeName: 'demo-node', serviceAccountName: 'nginx-spc-sa' });
  say(indent(await kubectl('get', 'spc', '-n', ns)));

  step(5, 'kubelet calls NodePublishVolume for the pod\'s secrets-store volume');
  const root = mkdtempSync(join(tmpdir(), 'cce-demo-kubelet-'));
  const req = publishRequest(pod, 'spc-test', root);
  const t0 = performance.now();
  await driver.kubelet.call('Node', 'NodePublishVolume', req);
  say(indent(`mounted in ${(performance.now() - t0).toFixed(0)} ms at ${req.target_path}`));
  for (const f of (await readdir(req.target_path)).filter((n) => !n.startsWith('..'))) {
    say(indent(`${f}: ${await readFile(join(req.target_path, f), 'utf8')}`));
  }
  const spcpsName = `nginx-spc-${ns}-spc-test`;
  say(indent(`$ kubectl get spcps\n${await kubectl('get', 'spcps', '-n', ns)}`));
  const yaml = await kubectl('get', 'spcps', spcpsName, '-n', ns, '-o', 'yaml');
  say(indent(`$ kubectl get spcps ${spcpsName} -o yaml   (status part)\nstatus:${yaml.split('\nstatus:')[1] ?? ''}`));

  step(6, 'kubelet calls NodeUnpublishVolume when the pod goes away');
  await driver.kubelet.call('Node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path });
  say(indent(`target removed; ${(await kubectl('get', 'spcps', '-n', ns, '--ignore-not-found')).trim() || 'no SPCPS left'}`));
  say('\nDemo finished. The driver\'s log lines:');
  say(indent(driver.logs.split('\n').filter((l) => /Servicing mount request|Get secret successfully|Unmounted/.test(l)).join('\n')));
} finally {
  await driver?.stop();
  await emulator.close();
  await plane.stop();
}
