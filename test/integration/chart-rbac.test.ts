// The chart's RBAC against the real API server: exactly the verbs the driver uses, and
// enough for the driver to mount, sync a Secret and clean up with only them.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import {
  chartDir,
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  helm,
  serviceAccountKubeconfig,
  kubectl,
  readSecret,
  spcpsGone,
} from '../helpers/cluster.js';
import { publishRequest } from '../helpers/driver.js';
import { withDriver } from '../helpers/with-driver.js';

const chart = chartDir;
const dir = mkdtempSync(join(tmpdir(), 'cce-chart-rbac-'));
const fx = withDriver({ name: 'chart-rbac', secrets: [{ name: 'secret_1', versions: ['{"key1":"x"}'] }] });

let ns: string;
const sa = () => `system:serviceaccount:${ns}:cce-secrets-manager`;
let rbacFile: string;
// One hook each: node:test does not order several top-level hooks of a file.
before(async () => {
  ns = await createNamespace('chart-rbac');
  rbacFile = join(dir, 'rbac.yaml');
  writeFileSync(
    rbacFile,
    (await helm('template', 'csm', chart, '-n', ns, '--kube-version', '1.33.13', '--show-only', 'templates/rbac.yaml'))
      .out,
  );
  await kubectl('apply', '-f', rbacFile);
});
after(async () => {
  await kubectl('delete', '-f', rbacFile, '--ignore-not-found');
  await deleteNamespace(ns);
});

it('grants exactly the verbs the driver uses', async () => {
  const can = async (verb: string, resource: string) =>
    (await kubectl('auth', 'can-i', verb, resource, '--as', sa(), '-A').catch((e: Error) => e.message))
      .trim()
      .endsWith('yes');
  const granted: [string, string][] = [
    ['list', 'pods'],
    ['watch', 'pods'],
    ['get', 'pods'],
    ['list', 'serviceaccounts'],
    ['get', 'namespaces'],
    ['list', 'namespaces'],
    ['watch', 'namespaces'],
    ['watch', 'secretproviderclasses.secrets-store.csi.x-k8s.io'],
    ['create', 'secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io'],
    ['update', 'secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io'],
    ['delete', 'secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io'],
    ['create', 'events'],
    ['get', 'secrets'],
    ['create', 'secrets'],
    ['update', 'secrets'],
  ];
  const denied: [string, string][] = [
    ['list', 'secrets'],
    ['delete', 'secrets'],
    ['watch', 'secrets'],
    ['create', 'pods'],
    ['delete', 'pods'],
    ['update', 'secretproviderclasses.secrets-store.csi.x-k8s.io'],
    ['watch', 'secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io'],
    ['create', 'serviceaccounts'],
    ['update', 'namespaces'],
    ['patch', 'namespaces'],
    ['patch', 'events'],
    ['get', 'nodes'],
    ['create', 'pods/exec'],
  ];
  for (const [verb, res] of granted) assert.ok(await can(verb, res), `should be able to ${verb} ${res}`);
  for (const [verb, res] of denied) assert.ok(!(await can(verb, res)), `should not be able to ${verb} ${res}`);
});

it('is enough for the driver to mount, sync a Secret and clean up', async () => {
  const limitedConfig = await serviceAccountKubeconfig(ns, 'cce-secrets-manager', join(dir, 'driver-kubeconfig'));
  const driver = await fx.start({ nodeId: 'node-rbac', kubeconfig: limitedConfig });
  const root = driver.kubeletRoot;
  try {
    await createServiceAccount(ns, 'app', ['secret_1']);
    await createSpc(
      ns,
      'spc',
      '- {objectName: secret_1, objectType: csms, objectVersion: latest, jmesPath: [{path: key1, objectAlias: k}]}',
      { secretObjects: [{ secretName: 'synced', data: [{ objectName: 'k', key: 'k' }] }] },
    );
    const pod = await createPod(ns, 'app-0', { nodeName: 'node-rbac', serviceAccountName: 'app', spc: 'spc' });
    const req = publishRequest(pod, 'spc', root);
    await driver.kubelet.call('Node', 'NodePublishVolume', req);
    assert.equal(await readFile(join(req.target_path, 'k'), 'utf8'), 'x');
    assert.equal(Buffer.from((await readSecret(ns, 'synced'))?.data?.k ?? '', 'base64').toString(), 'x');
    await driver.kubelet.call('Node', 'NodeUnpublishVolume', {
      volume_id: req.volume_id,
      target_path: req.target_path,
    });
    await spcpsGone(ns, `app-0-${ns}-spc`);
    assert.doesNotMatch(driver.logs, /forbidden/i);
  } finally {
    await driver.stop();
  }
});
