// The chart's SecretSync controller, installed with `helm install` into the test API server:
// its RBAC is exactly what the controller uses and enough for it to sync, and the
// ValidatingAdmissionPolicies refuse what the controller must never write, whoever asks it.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import {
  chartDir,
  core,
  createNamespace,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
  helm,
  serviceAccountKubeconfig,
  secretValue,
  kubeconfigPath,
  kubectl,
  readSecret,
} from '../helpers/cluster.js';
import { createSecretSync, secretSyncManifest } from '../helpers/secret-syncs.js';
import { SyncProcess } from '../helpers/sync-process.js';
import { withDriver } from '../helpers/with-driver.js';

const fx = withDriver({ name: 'chart-sync', secrets: [{ name: 'db', versions: ['db-value'] }] });
const dir = mkdtempSync(join(tmpdir(), 'cce-chart-sync-'));
const CLUSTER_ID = '0123456789abcdef0123456789abcdef';
let ns: string;
let apps: string;
let limitedConfig: string;
const controllerUser = () => `system:serviceaccount:${ns}:cce-secrets-manager-sync`;

before(async () => {
  await fx.ready;
  ns = await createNamespace('chart-sync');
  apps = await createNamespace('chart-sync-apps');
  const r = await helm(
    ...['install', 'csm-sync', chartDir, '-n', ns, '--kubeconfig', kubeconfigPath],
    ...['--set', 'driver.enabled=false', '--set', 'webhook.enabled=false', '--set', 'crds.install=false'],
    ...['--set', 'sync.enabled=true', '--set', 'namespacePolicy=off'],
    ...['--set', 'podIdentity.enabled=true', '--set', `podIdentity.clusterID=${CLUSTER_ID}`],
  );
  assert.equal(r.code, 0, r.err);
  await createServiceAccount(apps, 'app', ['db']);
  // The controller's own credentials: its ServiceAccount's token.
  limitedConfig = await serviceAccountKubeconfig(ns, 'cce-secrets-manager-sync', join(dir, 'sync-kubeconfig'));
  // A policy takes effect a moment after it is created.
  const probe = secretFile('probe', { metadata: { name: 'probe', namespace: apps, labels: LABEL } });
  await eventually('the admission policies to take effect', async () => {
    const refused = await asController('create', '-f', probe, '--dry-run=server');
    return !refused.ok && /SecretSync/.test(refused.out) ? true : undefined;
  });
});
after(async () => {
  await helm('uninstall', 'csm-sync', '-n', ns, '--kubeconfig', kubeconfigPath);
  await deleteNamespace(apps);
  await deleteNamespace(ns);
});

/** The API as the controller's ServiceAccount (its token). */
function limitedCore(): k8s.CoreV1Api {
  const limited = new k8s.KubeConfig();
  limited.loadFromFile(limitedConfig);
  return limited.makeApiClient(k8s.CoreV1Api);
}

/** kubectl as the controller's ServiceAccount: what it may do, and what the policies let through. */
async function asController(...args: string[]): Promise<{ ok: boolean; out: string }> {
  return kubectl('--as', controllerUser(), ...args).then(
    (out) => ({ ok: true, out }),
    (err: Error) => ({ ok: false, out: err.message }),
  );
}

function secretFile(name: string, body: Record<string, unknown>): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: apps }, ...body }),
  );
  return file;
}

const owner = (name: string) => ({
  apiVersion: 'secret-sync.x-k8s.io/v1alpha1',
  kind: 'SecretSync',
  name,
  uid: '6a3c1d2e-0000-4000-8000-000000000001',
});
const LABEL = { 'secrets-store.sync.x-k8s.io': '' };

it('renders nothing of the controller by default, and refuses its policies where the cluster lacks them', async () => {
  const render = (...set: string[]) =>
    helm('template', 'csm', chartDir, '-n', ns, '--kube-version', '1.33.13', ...set.flatMap((v) => ['--set', v]));
  const plain = await render();
  assert.equal(plain.code, 0, plain.err);
  assert.doesNotMatch(
    plain.out,
    /secretsyncs\.secret-sync\.x-k8s\.io|cce-secrets-manager-sync|ValidatingAdmissionPolicy/,
  );
  const current = await render('sync.enabled=true');
  const older = await helm('template', 'csm', chartDir, '--kube-version', '1.29.0', '--set', 'sync.enabled=true');
  assert.equal(current.code, 0, current.err);
  assert.equal(current.out.match(/kind: ValidatingAdmissionPolicy\n/g)?.length, 3);
  // The webhook reviews SecretSyncs too.
  assert.match(
    current.out,
    /apiGroups: \[secret-sync\.x-k8s\.io\], apiVersions: \[v1alpha1\], operations: \[CREATE, UPDATE\], resources: \[secretsyncs\]/,
  );
  assert.doesNotMatch(plain.out, /resources: \[secretsyncs\]/);
  assert.notEqual(older.code, 0);
  assert.match(older.err, /sync\.admissionPolicies needs ValidatingAdmissionPolicy \(Kubernetes 1\.30\+\)/);
  const opted = await helm(
    ...['template', 'csm', chartDir, '--kube-version', '1.29.0'],
    ...['--set', 'sync.enabled=true', '--set', 'sync.admissionPolicies=false'],
  );
  assert.equal(opted.code, 0, opted.err);
  assert.doesNotMatch(opted.out, /kind: ValidatingAdmissionPolicy/);
  assert.match(opted.out, /name: secretsyncs\.secret-sync\.x-k8s\.io/);
});

it('grants the controller exactly the verbs it uses', async () => {
  const can = async (verb: string, what: string, namespace = '-A') => {
    const [resource, subresource] = what.split('/');
    return (
      await kubectl(
        'auth',
        'can-i',
        verb,
        resource,
        ...(subresource ? [`--subresource=${subresource}`] : []),
        '--as',
        controllerUser(),
        ...(namespace === '-A' ? ['-A'] : ['-n', namespace]),
      ).catch((e: Error) => e.message)
    )
      .trim()
      .endsWith('yes');
  };
  for (const [verb, res] of [
    ['list', 'secretsyncs.secret-sync.x-k8s.io'],
    ['watch', 'secretsyncs.secret-sync.x-k8s.io'],
    ['patch', 'secretsyncs.secret-sync.x-k8s.io/status'],
    ['get', 'secretproviderclasses.secrets-store.csi.x-k8s.io'],
    ['watch', 'serviceaccounts'],
    ['create', 'secrets'],
    ['patch', 'secrets'],
    ['create', 'events'],
    ['create', 'serviceaccounts/token'],
  ])
    assert.ok(await can(verb, res), `should be able to ${verb} ${res}`);
  for (const [verb, res] of [
    ['get', 'secrets'],
    ['list', 'secrets'],
    ['watch', 'secrets'],
    ['delete', 'secrets'],
    ['update', 'secrets'],
    ['update', 'secretsyncs.secret-sync.x-k8s.io'],
    ['patch', 'secretsyncs.secret-sync.x-k8s.io'],
    ['update', 'secretproviderclasses.secrets-store.csi.x-k8s.io'],
    ['create', 'pods'],
    ['get', 'namespaces'],
  ])
    assert.ok(!(await can(verb, res)), `should not be able to ${verb} ${res}`);
  // Leases only in its own namespace.
  assert.ok(await can('create', 'leases.coordination.k8s.io', ns));
  assert.ok(!(await can('create', 'leases.coordination.k8s.io', apps)));
});

it('refuses, through its admission policies, the Secrets the controller must never write', async () => {
  const refused = async (file: string, why: RegExp) => {
    const r = await asController('create', '-f', file);
    assert.ok(!r.ok, `created ${file}`);
    assert.match(r.out, why);
  };
  await refused(
    secretFile('sa-token', {
      type: 'kubernetes.io/service-account-token',
      metadata: {
        name: 'sa-token',
        namespace: apps,
        labels: LABEL,
        ownerReferences: [owner('sa-token')],
        annotations: { 'kubernetes.io/service-account.name': 'default' },
      },
    }),
    /may not write a Secret of type kubernetes.io\/service-account-token/,
  );
  await refused(
    secretFile('no-owner', { metadata: { name: 'no-owner', namespace: apps, labels: LABEL } }),
    /exactly one SecretSync of the same name owns/,
  );
  await refused(
    secretFile('other-name', {
      metadata: { name: 'other-name', namespace: apps, labels: LABEL, ownerReferences: [owner('x')] },
    }),
    /exactly one SecretSync of the same name owns/,
  );
  await refused(
    secretFile('two-owners', {
      metadata: {
        name: 'two-owners',
        namespace: apps,
        labels: LABEL,
        ownerReferences: [owner('two-owners'), { ...owner('two-owners'), uid: '6a3c1d2e-0000-4000-8000-000000000002' }],
      },
    }),
    /exactly one SecretSync of the same name owns/,
  );
  await refused(
    secretFile('unlabelled', {
      metadata: { name: 'unlabelled', namespace: apps, ownerReferences: [owner('unlabelled')] },
    }),
    /labelled secrets-store\.sync\.x-k8s\.io/,
  );
});

it("refuses, through its admission policies, changes to someone else's Secret, deletes, and other tokens", async () => {
  // Someone else's Secret: the controller may patch Secrets, but not this one.
  await core.createNamespacedSecret({
    namespace: apps,
    body: { metadata: { name: 'theirs' }, stringData: { a: 'b' } },
  });
  // Through the API (kubectl patch would read the Secret first, which the controller may not).
  const patched = await limitedCore()
    .patchNamespacedSecret(
      {
        name: 'theirs',
        namespace: apps,
        body: { metadata: { labels: LABEL, ownerReferences: [owner('theirs')] } },
      },
      k8s.setHeaderOptions('Content-Type', 'application/merge-patch+json'),
    )
    .then(
      () => ({ ok: true, out: '' }),
      (err: { body?: string }) => ({ ok: false, out: String(err.body) }),
    );
  assert.ok(!patched.ok);
  assert.match(patched.out, /may not change a Secret that no SecretSync of the same name owns/);
  assert.deepEqual((await readSecret(apps, 'theirs'))?.metadata?.labels, undefined);
  const deleted = await asController('delete', 'secret', 'theirs', '-n', apps);
  assert.ok(!deleted.ok);
  assert.match(deleted.out, /forbidden/i);
  // Tokens: one audience, 600 s.
  const token = (audience: string, seconds: string) =>
    asController('create', 'token', 'app', '-n', apps, `--audience=${audience}`, `--duration=${seconds}`);
  const wrongAudience = await token('https://kubernetes.default.svc', '600s');
  assert.ok(!wrongAudience.ok);
  assert.match(wrongAudience.out, /only request tokens for audience service\.cce\.pods that live 600 s/);
  assert.ok(!(await token('service.cce.pods', '3600s')).ok);
  assert.ok((await token('service.cce.pods', '600s')).ok);
});

it('is enough for the controller to sync a Secret and rotate it', async () => {
  const sync = new SyncProcess({
    csmsEndpoint: fx.endpoint,
    kubeconfig: limitedConfig,
    leaseNamespace: ns,
    identity: 'chart-sync',
    extraArgs: [
      '--rotation-poll-interval=1s',
      '--namespace-policy=off',
      '--leader-election-lease=cce-secrets-manager-sync',
    ],
  });
  try {
    await sync.start();
    await sync.leading();
    await createSpc(apps, 'db', '- objectName: db\n  objectType: csms\n  objectVersion: latest\n');
    await createSecretSync(
      apps,
      secretSyncManifest('db', 'db', 'app', { data: [{ sourcePath: 'db', targetKey: 'v' }] }),
    );
    const value = () => secretValue(apps, 'db', 'v');
    await eventually('the synced Secret', async () => ((await value()) === 'db-value' ? true : undefined));
    fx.emulator.store.addVersion('db', { secret_string: 'db-value-2' });
    await eventually('the rotated Secret', async () => ((await value()) === 'db-value-2' ? true : undefined));
    assert.doesNotMatch(sync.logs, /forbidden|denied/i);
  } finally {
    await sync.stop();
    if (process.env.SYNC_DEBUG) console.log(sync.logs);
  }
});
