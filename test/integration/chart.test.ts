// The Helm chart against the real API server: lint, render, server-side dry-run of every
// object, the values schema, and a server-side dry-run install (RBAC: chart-rbac.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import {
  chartDir,
  createNamespace,
  deleteNamespace,
  helm,
  kubeconfigPath,
  kubectl,
  webhookClient,
} from '../helpers/cluster.js';

const chart = chartDir;
const dir = mkdtempSync(join(tmpdir(), 'cce-chart-'));

const render = (ns: string, ...set: string[]) =>
  helm('template', 'csm', chart, '-n', ns, '--kube-version', '1.33.13', ...set.flatMap((s) => ['--set', s]));
const docs = (yaml: string) =>
  parseAllDocuments(yaml)
    .map((d) => d.toJSON())
    .filter(Boolean) as Record<string, any>[];

/** `helm install --dry-run=server` into the test namespace: the API server checks every object. */
const installDryRun = (release: string, ...set: string[]) =>
  helm(
    'install',
    release,
    chart,
    '-n',
    ns,
    '--dry-run=server',
    '--kubeconfig',
    kubeconfigPath,
    ...set.flatMap((v) => ['--set', v]),
  );

async function serverDryRun(yaml: string): Promise<string> {
  const file = join(dir, `render-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return kubectl('apply', '--dry-run=server', '-f', file);
}

let ns: string;
before(async () => {
  ns = await createNamespace('chart');
});
after(async () => {
  await deleteNamespace(ns);
});

it('passes helm lint', async () => {
  const r = await helm('lint', chart);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
});

it('renders defaults the API server accepts, object by object', async () => {
  const r = await render(ns);
  assert.equal(r.code, 0, r.err);
  const kinds = docs(r.out)
    .map((d) => `${d.kind}/${d.metadata.name}`)
    .sort();
  assert.deepEqual(kinds, [
    'CSIDriver/secrets-store.csi.k8s.io',
    'ClusterRole/cce-secrets-manager',
    'ClusterRole/cce-secrets-manager-webhook',
    'ClusterRoleBinding/cce-secrets-manager',
    'ClusterRoleBinding/cce-secrets-manager-webhook',
    'CustomResourceDefinition/secretproviderclasses.secrets-store.csi.x-k8s.io',
    'CustomResourceDefinition/secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io',
    'DaemonSet/cce-secrets-manager',
    'Deployment/cce-secrets-manager-webhook',
    'PodDisruptionBudget/cce-secrets-manager-webhook',
    'Secret/cce-secrets-manager-webhook-tls',
    'Service/cce-secrets-manager-webhook',
    'ServiceAccount/cce-secrets-manager',
    'ServiceAccount/cce-secrets-manager-webhook',
    'ValidatingWebhookConfiguration/cce-secrets-manager-webhook',
  ]);
  const out = await serverDryRun(r.out);
  assert.equal(out.match(/\(server dry run\)/g)?.length, 15, out);
  const ds = docs(r.out).find((d) => d.kind === 'DaemonSet')!;
  assert.equal(ds.spec.template.spec.containers.length, 1, 'one container: the driver registers itself');
  const [driver] = ds.spec.template.spec.containers;
  assert.ok(driver.args.includes('--rotation-poll-interval=2m'));
  assert.ok(driver.args.includes('--region=cn-north-4'));
  assert.ok(driver.args.includes('--max-secret-provider-classes=500'));
  assert.equal(driver.securityContext.privileged, true);
  assert.deepEqual(driver.volumeMounts[1], {
    name: 'mountpoint-dir',
    mountPath: '/mnt/paas/kubernetes/kubelet/pods',
    mountPropagation: 'Bidirectional',
  });
  assert.equal(ds.spec.template.spec.priorityClassName, 'system-node-critical');
  assert.deepEqual(ds.spec.template.spec.tolerations, [{ operator: 'Exists' }]);
  const csiDriver = docs(r.out).find((d) => d.kind === 'CSIDriver')!;
  assert.deepEqual(csiDriver.spec, {
    attachRequired: false,
    podInfoOnMount: true,
    volumeLifecycleModes: ['Ephemeral'],
  });
  const crd = docs(r.out).find((d) => d.kind === 'CustomResourceDefinition')!;
  assert.equal(
    crd.metadata.annotations?.['helm.sh/resource-policy'],
    undefined,
    'CRDs go away on uninstall by default',
  );
});

it('registers and probes from the driver itself by default, and through the sidecars on request', async () => {
  const [driver] = docs((await render(ns)).out).find((d) => d.kind === 'DaemonSet')!.spec.template.spec.containers;
  for (const arg of [
    '--plugin-registration-dir=/registration',
    '--kubelet-registration-path=/mnt/paas/kubernetes/kubelet/plugins/csi-secrets-store/csi.sock',
  ])
    assert.ok(driver.args.includes(arg), `${arg} in ${driver.args}`);
  assert.deepEqual(
    driver.volumeMounts.find((m: any) => m.name === 'registration-dir'),
    { name: 'registration-dir', mountPath: '/registration' },
  );
  assert.deepEqual(driver.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
  const withSidecars = (await render(ns, 'sidecars.enabled=true')).out;
  const sidecars = docs(withSidecars).find((d) => d.kind === 'DaemonSet')!;
  const [plain, registrar, probe] = sidecars.spec.template.spec.containers;
  assert.ok(!plain.args.some((a: string) => a.startsWith('--plugin-registration-dir')));
  assert.deepEqual(plain.livenessProbe.httpGet, { path: '/healthz', port: 'healthz' });
  assert.ok(
    registrar.args.includes(
      '--kubelet-registration-path=/mnt/paas/kubernetes/kubelet/plugins/csi-secrets-store/csi.sock',
    ),
  );
  assert.match(registrar.image, /^registry\.k8s\.io\/sig-storage\/csi-node-driver-registrar:/);
  assert.match(probe.image, /^registry\.k8s\.io\/sig-storage\/livenessprobe:/);
  await serverDryRun(withSidecars);
});

it('passes the namespace policy (audit by default), the volume limits and the object limit to the driver (and the object limit to the webhook)', async () => {
  const driver = docs((await render(ns)).out).find((d) => d.kind === 'DaemonSet')!.spec.template.spec.containers[0];
  assert.ok(driver.args.includes('--namespace-policy=audit'), 'audit by default: the seed workflow keeps working');
  for (const arg of [
    '--max-file-bytes=4194304',
    '--max-volume-bytes=8388608',
    '--jmespath-budget=50ms',
    '--max-object-bytes=2097152',
  ])
    assert.ok(driver.args.includes(arg), `${arg} in ${driver.args}`);
  const set = docs(
    (await render(ns, 'volumeLimits.maxFileBytes=1000', 'namespacePolicy=enforce', 'maxObjectBytes=300000')).out,
  );
  const args = set.find((d) => d.kind === 'DaemonSet')!.spec.template.spec.containers[0].args;
  assert.ok(args.includes('--max-file-bytes=1000') && args.includes('--namespace-policy=enforce'), String(args));
  const webhook = set.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0].args;
  for (const a of [args, webhook]) assert.ok(a.includes('--max-object-bytes=300000'), String(a));
});

it('renders non-default values the API server accepts', async () => {
  const r = await render(
    ns,
    'kubeletRootDir=/var/lib/kubelet',
    'rotation_poll_interval=90m',
    'csms.endpoint=https://kms.example.internal',
    'csms.projectId=0123456789abcdef0123456789abcdef',
    'credentials.existingSecret=csms-keys',
    'crds.keep=true',
    'syncSecrets=false',
    'log.json=true',
    'log.verbosity=4',
    'metrics.port=9095',
    'maxSecretProviderClasses=1000',
    'tokenRequests[0].audience=kms.example',
    'heapMiB=256',
  );
  assert.equal(r.code, 0, r.err);
  await serverDryRun(r.out);
  const all = docs(r.out);
  const driver = all.find((d) => d.kind === 'DaemonSet')!.spec.template.spec.containers[0];
  for (const arg of [
    '--rotation-poll-interval=90m',
    '--csms-endpoint=https://kms.example.internal',
    '--project-id=0123456789abcdef0123456789abcdef',
    '--enable-secret-sync=false',
    '--log-format-json',
    '-v=4',
    '--metrics-addr=:9095',
    '--max-secret-provider-classes=1000',
  ]) {
    assert.ok(driver.args.includes(arg), `${arg} in ${driver.args}`);
  }
  assert.ok(driver.command.includes('--max-old-space-size=256'));
  // The region still reaches the driver: pod identity's CCE endpoint comes from it.
  assert.ok(driver.args.includes('--region=cn-north-4'));
  assert.deepEqual(driver.envFrom, [{ secretRef: { name: 'csms-keys' } }]);
  assert.equal(driver.volumeMounts[1].mountPath, '/var/lib/kubelet/pods');
  assert.equal(all.find((d) => d.kind === 'CSIDriver')!.spec.tokenRequests[0].audience, 'kms.example');
  assert.ok(
    all
      .filter((d) => d.kind === 'CustomResourceDefinition')
      .every((d) => d.metadata.annotations['helm.sh/resource-policy'] === 'keep'),
  );
  const secretsRule = all
    .find((d) => d.kind === 'ClusterRole')!
    .rules.find((x: { resources: string[] }) => x.resources.includes('secrets'));
  assert.deepEqual(secretsRule.verbs, ['get']);
});

it("refuses rotation_poll_interval values outside the seed's [1m, 1440m] in minutes", async () => {
  for (const bad of ['0m', '1441m', '2min', '120s', '1h', '']) {
    const r = await render(ns, `rotation_poll_interval=${bad}`);
    assert.notEqual(r.code, 0, `${bad} was accepted`);
    assert.match(r.err, /rotation_poll_interval/);
  }
  for (const good of ['1m', '2m', '90m', '1440m'])
    assert.equal((await render(ns, `rotation_poll_interval=${good}`)).code, 0, good);
});

it('podIdentity: the service.cce.pods token with republish, the cluster id to both DaemonSets, no new RBAC; refused half-set', async () => {
  const plain = docs((await render(ns)).out);
  const base = (all: Record<string, any>[]) => all.find((d) => d.kind === 'ClusterRole')!.rules;
  assert.equal(plain.find((d) => d.kind === 'CSIDriver')!.spec.tokenRequests, undefined);
  const on = await render(
    ns,
    'podIdentity.enabled=true',
    'podIdentity.clusterID=c0ffee-1',
    'tokenRequests[0].audience=vault',
  );
  assert.equal(on.code, 0, on.err);
  const all = docs(on.out);
  const driver = all.find((d) => d.kind === 'CSIDriver')!.spec;
  assert.deepEqual(driver.tokenRequests, [{ audience: 'vault' }, { audience: 'service.cce.pods' }]);
  assert.equal(driver.requiresRepublish, true);
  const args = all.find((d) => d.kind === 'DaemonSet')!.spec.template.spec.containers[0].args as string[];
  assert.ok(args.includes('--cluster-id=c0ffee-1'));
  assert.ok(!args.includes('--require-pod-identity'));
  assert.deepEqual(base(all), base(plain), 'no RBAC beyond what the driver already has');
  const listed = await render(
    ns,
    'podIdentity.enabled=true',
    'podIdentity.clusterID=c',
    'tokenRequests[0].audience=service.cce.pods',
  );
  assert.deepEqual(
    docs(listed.out).find((d) => d.kind === 'CSIDriver')!.spec.tokenRequests,
    [{ audience: 'service.cce.pods' }],
    'listed once',
  );
  await serverDryRun(on.out);
  const required = await render(
    ns,
    ...['podIdentity.enabled=true', 'podIdentity.clusterID=c0ffee-1', 'podIdentity.required=true'],
    ...['podIdentity.endpoint=https://cce.vpc.example', 'driver.enabled=false', 'webhook.enabled=false'],
  );
  assert.equal(required.code, 0, required.err);
  const provider = docs(required.out).find((d) => d.kind === 'DaemonSet')!.spec.template.spec.containers[0].args;
  for (const flag of ['--cluster-id=c0ffee-1', '--cce-endpoint=https://cce.vpc.example', '--require-pod-identity'])
    assert.ok(provider.includes(flag), flag);
  for (const [bad, why] of [
    [['podIdentity.enabled=true'], /clusterID/],
    [['podIdentity.required=true', 'podIdentity.clusterID=c'], /enabled/],
    [['podIdentity.enabled=true', 'podIdentity.clusterID=a/b'], /clusterID/],
  ] as const) {
    const r = await render(ns, ...bad);
    assert.notEqual(r.code, 0, bad.join(' '));
    assert.match(r.err, why);
  }
});

it('kubeApiTransport: HTTP/2 by default (no setting), http1 as CCE_KUBE_TRANSPORT in the DaemonSets and the webhook; nothing else accepted', async () => {
  const envOf = (out: string) =>
    docs(out)
      .filter((d) => d.kind === 'DaemonSet' || d.kind === 'Deployment')
      .map((d) => (d.spec.template.spec.containers[0].env ?? []).find((e: any) => e.name === 'CCE_KUBE_TRANSPORT'));
  assert.deepEqual(envOf((await render(ns)).out), [undefined, undefined]);
  const http1 = await render(ns, 'kubeApiTransport=http1');
  const fallback = { name: 'CCE_KUBE_TRANSPORT', value: 'http1' };
  assert.deepEqual(envOf(http1.out), [fallback, fallback], 'the driver and the webhook');
  const provider = await render(ns, 'kubeApiTransport=http1', 'driver.enabled=false', 'webhook.enabled=false');
  assert.deepEqual(envOf(provider.out), [{ name: 'CCE_KUBE_TRANSPORT', value: 'http1' }]);
  const bad = await render(ns, 'kubeApiTransport=spdy');
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /kubeApiTransport/);
});

it('installs (server dry run) and shows NOTES on checking the install and a first SPC', async () => {
  // The test cluster's CRDs were installed outside Helm, so this release leaves them alone.
  const r = await installDryRun('csm', 'crds.install=false');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /kubectl -n \S+ get daemonset cce-secrets-manager/);
  assert.match(r.out, /kind: SecretProviderClass/);
  assert.doesNotMatch(r.out, /WARNING: uninstalling/);
  assert.match(r.out, /WARNING: namespacePolicy is audit, not enforce/);
  assert.match(r.out, /kubectl annotate namespace <namespace> 'cce.io\/dew-resource-permitted=\["<team>-\*"\]'/);
  const enforced = await installDryRun('csm-enforce', 'crds.install=false', 'namespacePolicy=enforce');
  assert.equal(enforced.code, 0, enforced.err);
  assert.doesNotMatch(enforced.out, /WARNING: namespacePolicy/);
  assert.notEqual((await render(ns, 'namespacePolicy=strict')).code, 0, 'the schema refuses other modes');
  const off = docs((await render(ns, 'namespacePolicy=off')).out).find((d) => d.kind === 'ClusterRole')!;
  assert.deepEqual(off.rules[0].resources, ['pods', 'serviceaccounts'], 'no Namespace reads when off');
  const template = await readFile(join(chart, 'templates/NOTES.txt'), 'utf8');
  assert.match(template, /WARNING: uninstalling this release deletes the SecretProviderClass/);
  assert.equal(
    docs((await render(ns, 'crds.install=false')).out).filter((d) => d.kind === 'CustomResourceDefinition').length,
    0,
  );
});

it('mounts both provider socket folders into the driver and passes them as flags', async () => {
  const r = await render(ns, 'providers.volume=/run/providers', 'providers.additionalVolumePaths={/opt/a,/opt/b}');
  assert.equal(r.code, 0, r.err);
  const ds = docs(r.out).find((d) => d.kind === 'DaemonSet')!;
  const driver = ds.spec.template.spec.containers[0];
  assert.ok(driver.args.includes('--provider-volume=/run/providers'));
  assert.ok(driver.args.includes('--additional-provider-volume-paths=/opt/a,/opt/b'));
  assert.ok(driver.args.includes('--provider-timeout=30s'));
  const mounted = driver.volumeMounts.map((m: { mountPath: string }) => m.mountPath);
  assert.ok(
    ['/run/providers', '/opt/a', '/opt/b'].every((p) => mounted.includes(p)),
    String(mounted),
  );
  const host = ds.spec.template.spec.volumes.map((v: { hostPath?: { path: string } }) => v.hostPath?.path);
  assert.ok(
    ['/run/providers', '/opt/a', '/opt/b'].every((p) => host.includes(p)),
    String(host),
  );
  const bad = await render(ns, 'providers.volume=relative/dir');
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /providers\.volume|providers/);
});

it('driver.enabled=false installs only the CSMS provider next to an upstream driver', async () => {
  const r = await render(
    ns,
    'driver.enabled=false',
    'webhook.enabled=false',
    'csms.projectId=0123456789abcdef0123456789abcdef',
  );
  assert.equal(r.code, 0, r.err);
  const all = docs(r.out);
  assert.deepEqual(all.map((d) => `${d.kind}/${d.metadata.name}`).sort(), [
    'ClusterRole/cce-secrets-manager',
    'ClusterRoleBinding/cce-secrets-manager',
    'DaemonSet/cce-secrets-manager-provider',
    'ServiceAccount/cce-secrets-manager',
  ]);
  const out = await serverDryRun(r.out);
  assert.equal(out.match(/\(server dry run\)/g)?.length, 4, out);
  const pod = all.find((d) => d.kind === 'DaemonSet')!.spec.template.spec;
  const [provider] = pod.containers;
  assert.equal(pod.containers.length, 1, 'no registrar: the upstream driver registers itself');
  assert.ok(provider.command.includes('provider'));
  assert.ok(provider.args.includes('--endpoint=unix:///var/run/secrets-store-csi-providers/cce.sock'));
  assert.ok(provider.args.includes('--project-id=0123456789abcdef0123456789abcdef'));
  assert.notEqual(provider.securityContext.privileged, true);
  assert.deepEqual(provider.securityContext.capabilities, { drop: ['ALL'] });
  assert.deepEqual(pod.volumes, [
    { name: 'providers', hostPath: { path: '/var/run/secrets-store-csi-providers', type: 'DirectoryOrCreate' } },
  ]);
  assert.ok(provider.args.includes('--namespace-policy=audit'));
  assert.ok(provider.args.includes('--max-file-bytes=4194304'));
  const role = all.find((d) => d.kind === 'ClusterRole')!;
  assert.deepEqual(role.rules, [
    { apiGroups: [''], resources: ['serviceaccounts', 'namespaces'], verbs: ['get'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ]);
  const enforced = docs((await render(ns, 'driver.enabled=false', 'namespacePolicy=enforce')).out);
  assert.deepEqual(enforced.find((d) => d.kind === 'ClusterRole')!.rules, [
    { apiGroups: [''], resources: ['serviceaccounts', 'namespaces'], verbs: ['get'] },
  ]);

  const installed = await installDryRun('csm-provider', 'driver.enabled=false', 'webhook.enabled=false');
  assert.equal(installed.code, 0, installed.err);
  assert.match(installed.out, /Only the CSMS provider is installed/);
  assert.match(installed.out, /get daemonset cce-secrets-manager-provider/);
});

it('renders the webhook: Ignore by default, matchConditions, 2 replicas, a PDB, a CA the configuration trusts', async () => {
  const all = docs((await render(ns)).out);
  const vwc = all.find((d) => d.kind === 'ValidatingWebhookConfiguration')!;
  const secret = all.find((d) => d.kind === 'Secret')!;
  assert.deepEqual(
    vwc.webhooks.map((w: any) => [w.name, w.failurePolicy, w.clientConfig.caBundle === secret.data['ca.crt']]),
    [
      ['secretproviderclasses.cce-secrets-manager.io', 'Ignore', true],
      ['serviceaccounts.cce-secrets-manager.io', 'Ignore', true],
    ],
  );
  assert.match(vwc.webhooks[0].matchConditions[0].expression, /object.spec.provider == 'cce'/);
  assert.match(vwc.webhooks[1].matchConditions[0].expression, /'cce.io\/dew-resource' in object.metadata.annotations/);
  const deploy = all.find((d) => d.kind === 'Deployment')!;
  assert.equal(deploy.spec.replicas, 2);
  assert.ok(deploy.spec.template.spec.containers[0].command.includes('webhook'));
  assert.equal(all.find((d) => d.kind === 'PodDisruptionBudget')!.spec.minAvailable, 1);
  const role = all.find((d) => d.kind === 'ClusterRole' && d.metadata.name.endsWith('-webhook'))!;
  assert.deepEqual(role.rules, [
    { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['list'] },
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
    { apiGroups: ['secrets-store.csi.x-k8s.io'], resources: ['secretproviderclasses'], verbs: ['list'] },
  ]);
  assert.ok(deploy.spec.template.spec.containers[0].args.includes('--namespace-policy=audit'));
  const fail = docs((await render(ns, 'webhook.failurePolicy=Fail')).out).find(
    (d) => d.kind === 'ValidatingWebhookConfiguration',
  )!;
  assert.deepEqual(
    fail.webhooks.map((w: any) => w.failurePolicy),
    ['Fail', 'Fail'],
  );
  assert.notEqual((await render(ns, 'webhook.failurePolicy=Never')).code, 0);
});

it('with webhook.clientCA, passes --client-ca from a ConfigMap of the PEM, which the API server accepts; without, no such flag', async () => {
  const pem = readFileSync(webhookClient.ca, 'utf8');
  const file = join(dir, 'client-ca-values.yaml');
  writeFileSync(file, stringify({ webhook: { clientCA: pem } }));
  const rendered = await helm('template', 'csm', chart, '-n', ns, '--kube-version', '1.33.13', '-f', file);
  const all = docs(rendered.out);
  const container = all.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0];
  assert.ok(container.args.includes('--client-ca=/client-ca/ca.crt'), container.args.join(' '));
  assert.deepEqual(
    container.volumeMounts.find((m: any) => m.name === 'client-ca'),
    { name: 'client-ca', mountPath: '/client-ca', readOnly: true },
  );
  const cm = all.find((d) => d.kind === 'ConfigMap' && d.metadata.name.endsWith('-webhook-client-ca'))!;
  assert.equal(cm.data['ca.crt'], pem);
  await serverDryRun(rendered.out);
  const plain = docs((await render(ns)).out).find((d) => d.kind === 'Deployment')!;
  assert.ok(!plain.spec.template.spec.containers[0].args.some((a: string) => a.startsWith('--client-ca')));
});

it('with csms.caBundle, both DaemonSets trust its PEM through NODE_EXTRA_CA_CERTS and roll when it changes; without, nothing; a private key is refused', async () => {
  const pem = readFileSync(webhookClient.ca, 'utf8');
  const withBundle = async (bundle: string, ...set: string[]) => {
    const file = join(dir, `csms-ca-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify({ csms: { caBundle: bundle } }));
    return helm('template', 'csm', chart, '-n', ns, '--kube-version', '1.33.13', '-f', file, ...set);
  };
  for (const set of [[], ['--set', 'driver.enabled=false']]) {
    const rendered = await withBundle(pem, ...set);
    const all = docs(rendered.out);
    const pod = all.find((d) => d.kind === 'DaemonSet')!.spec.template;
    const container = pod.spec.containers[0];
    assert.deepEqual(
      container.env.find((e: any) => e.name === 'NODE_EXTRA_CA_CERTS'),
      { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/cce-secrets-manager/csms-ca/ca.crt' },
    );
    assert.ok(container.volumeMounts.some((m: any) => m.name === 'csms-ca' && m.readOnly));
    assert.ok(pod.spec.volumes.some((v: any) => v.configMap?.name === 'cce-secrets-manager-csms-ca'));
    assert.equal(
      all.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cce-secrets-manager-csms-ca')!.data['ca.crt'],
      pem,
    );
    const checksum = pod.metadata.annotations['checksum/csms-ca'];
    const other = docs((await withBundle(`${pem}\n${pem}`, ...set)).out).find((d) => d.kind === 'DaemonSet')!;
    assert.notEqual(
      other.spec.template.metadata.annotations['checksum/csms-ca'],
      checksum,
      'a new bundle rolls the pods',
    );
    await serverDryRun(rendered.out);
    const plain = docs((await render(ns, ...set.slice(1))).out);
    const plainPod = plain.find((d) => d.kind === 'DaemonSet')!.spec.template;
    assert.ok(!plain.some((d) => d.metadata?.name === 'cce-secrets-manager-csms-ca'));
    assert.ok(!plainPod.spec.containers[0].env.some((e: any) => e.name === 'NODE_EXTRA_CA_CERTS'));
    assert.equal(
      plainPod.metadata.annotations?.['checksum/csms-ca'],
      undefined,
      'no roll on upgrade for installs without one',
    );
  }
  const key = await withBundle(`${pem}-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n`);
  assert.notEqual(key.code, 0);
  assert.match(key.err, /caBundle/);
});

it('takes the webhook certificate from cert-manager when asked', async () => {
  const all = docs((await render(ns, 'webhook.certManager.enabled=true')).out);
  assert.equal(all.filter((d) => d.kind === 'Secret').length, 0);
  const cert = all.find((d) => d.kind === 'Certificate')!;
  assert.equal(cert.spec.secretName, 'cce-secrets-manager-webhook-tls');
  assert.ok(cert.spec.dnsNames.includes(`cce-secrets-manager-webhook.${ns}.svc`));
  assert.ok(all.some((d) => d.kind === 'Issuer'));
  const vwc = all.find((d) => d.kind === 'ValidatingWebhookConfiguration')!;
  assert.equal(vwc.metadata.annotations['cert-manager.io/inject-ca-from'], `${ns}/cce-secrets-manager-webhook`);
  assert.equal(vwc.webhooks[0].clientConfig.caBundle, undefined);
  const own = docs(
    (
      await render(
        ns,
        'webhook.certManager.enabled=true',
        'webhook.certManager.issuerRef.name=corp-ca',
        'webhook.certManager.issuerRef.kind=ClusterIssuer',
      )
    ).out,
  );
  assert.equal(
    own.some((d) => d.kind === 'Issuer'),
    false,
  );
  assert.deepEqual(own.find((d) => d.kind === 'Certificate')!.spec.issuerRef, {
    name: 'corp-ca',
    kind: 'ClusterIssuer',
  });
});

it('keeps the generated webhook certificate across upgrades (the Secret in the cluster is reused)', async () => {
  const first = docs((await render(ns)).out).find((d) => d.kind === 'Secret')!;
  await kubectl(
    'create',
    'secret',
    'generic',
    'cce-secrets-manager-webhook-tls',
    '-n',
    ns,
    ...['ca.crt', 'tls.crt', 'tls.key'].map(
      (k) => `--from-literal=${k}=${Buffer.from(first.data[k], 'base64').toString()}`,
    ),
  );
  // As a previous release of the chart left it.
  await kubectl('label', 'secret', 'cce-secrets-manager-webhook-tls', '-n', ns, 'app.kubernetes.io/managed-by=Helm');
  await kubectl(
    'annotate',
    'secret',
    'cce-secrets-manager-webhook-tls',
    '-n',
    ns,
    'meta.helm.sh/release-name=csm',
    `meta.helm.sh/release-namespace=${ns}`,
  );
  const upgrade = await installDryRun('csm', 'crds.install=false');
  assert.equal(upgrade.code, 0, upgrade.err);
  const rendered = docs(upgrade.out.slice(upgrade.out.indexOf('---')));
  const vwc = rendered.find((d) => d.kind === 'ValidatingWebhookConfiguration')!;
  assert.equal(vwc.webhooks[0].clientConfig.caBundle, first.data['ca.crt']);
  assert.equal(rendered.find((d) => d.kind === 'Secret')!.data['tls.key'], first.data['tls.key']);
});
