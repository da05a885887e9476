// The validating webhook against the real kube-apiserver, which calls it over TLS (registered
// by url with a caBundle): mount-time refusals at `kubectl apply`, warnings, the allow-list
// annotation, other providers untouched, and both failure policies with the webhook down.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { stringify } from 'yaml';
import { parseSecretObjects } from '../../src/crds/objects.js';
import { freePort, logTail, startProcess, stopProcess, waitFor, type Managed } from '../cluster/processes.js';
import { binDir, createNamespace, deleteNamespace, kubeconfigPath, kubectl } from '../helpers/cluster.js';
import { executable } from '../helpers/driver.js';

const dir = mkdtempSync(join(tmpdir(), 'cce-webhook-'));
let ns: string;
let port: number;
let webhook: Managed;
const vwcName = () => `cce-test-webhook-${ns}`;

/** A CA and a serving certificate for 127.0.0.1, made with openssl; `ca.crt`, `tls.crt`, `tls.key` in `dir`. */
function makeCerts(): { ca: string } {
  const ssl = (args: string) => execFileSync('openssl', args.split(' '), { cwd: dir, stdio: 'pipe' });
  ssl('req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=test-ca');
  ssl('req -newkey rsa:2048 -nodes -keyout new.key -out tls.csr -subj /CN=127.0.0.1');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out new.crt -days 1 -extfile san.ext');
  // Key before certificate, each replaced whole, as a Secret volume's update does.
  renameSync(join(dir, 'new.key'), join(dir, 'tls.key'));
  renameSync(join(dir, 'new.crt'), join(dir, 'tls.crt'));
  return { ca: readFileSync(join(dir, 'ca.crt')).toString('base64') };
}

/** GET over TLS, trusting only the CA given (base64 PEM). */
function get(path: string, caB64: string): Promise<string> {
  return new Promise<string>((resolve, reject) =>
    https
      .get(`https://127.0.0.1:${port}${path}`, { ca: Buffer.from(caB64, 'base64'), agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject),
  );
}

async function startWebhook(): Promise<void> {
  const args = [
    'webhook',
    `--port=${port}`,
    `--tls-cert-file=${join(dir, 'tls.crt')}`,
    `--tls-private-key-file=${join(dir, 'tls.key')}`,
    `--kubeconfig=${kubeconfigPath}`,
    '--enable-secret-rotation=false',
  ];
  webhook = startProcess('webhook', executable, args, join(dir, `webhook-${Date.now()}.log`));
  await waitFor(
    'the webhook to serve',
    async () =>
      (await kubectl('get', '--raw', '/healthz')).includes('ok') &&
      logTail(webhook).includes('Serving the admission webhook'),
    15_000,
    () => logTail(webhook),
  );
}

function vwc(ca: string, failurePolicy: 'Ignore' | 'Fail') {
  const common = {
    clientConfig: { url: `https://127.0.0.1:${port}/validate`, caBundle: ca },
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    failurePolicy,
    timeoutSeconds: 5,
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } },
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: vwcName() },
    webhooks: [
      {
        name: 'secretproviderclasses.cce-secrets-manager.io',
        ...common,
        rules: [
          {
            apiGroups: ['secrets-store.csi.x-k8s.io'],
            apiVersions: ['v1'],
            operations: ['CREATE', 'UPDATE'],
            resources: ['secretproviderclasses'],
          },
        ],
        matchConditions: [
          { name: 'provider-cce', expression: "has(object.spec.provider) && object.spec.provider == 'cce'" },
        ],
      },
      {
        name: 'serviceaccounts.cce-secrets-manager.io',
        ...common,
        rules: [
          { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['serviceaccounts'] },
        ],
        matchConditions: [
          {
            name: 'has-allow-list',
            expression: "has(object.metadata.annotations) && 'cce.io/dew-resource' in object.metadata.annotations",
          },
        ],
      },
    ],
  };
}

/** kubectl apply of one manifest: stdout+stderr, and whether it succeeded. */
function apply(obj: object): { ok: boolean; out: string } {
  const file = join(dir, `obj-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(obj));
  const r = spawnSync(join(binDir, 'kubectl'), ['--kubeconfig', kubeconfigPath, 'apply', '-f', file], {
    encoding: 'utf8',
  });
  // kubectl prints admission warnings on stderr, as "Warning: ...".
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

const spc = (name: string, objects: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'secrets-store.csi.x-k8s.io/v1',
  kind: 'SecretProviderClass',
  metadata: { name, namespace: ns },
  spec: { provider: 'cce', parameters: { objects }, ...extra },
});

let ca: string;
before(async () => {
  ns = await createNamespace('webhook');
  port = await freePort();
  ({ ca } = makeCerts());
  await startWebhook();
  const file = join(dir, 'vwc.yaml');
  writeFileSync(file, stringify(vwc(ca, 'Fail')));
  await kubectl('apply', '-f', file);
  // The API server picks up a new configuration within a moment.
  await waitFor(
    'the webhook to be called',
    async () => !apply(spc('probe', '- {objectName: a, objectType: kms, objectVersion: v1}')).ok,
    15_000,
  );
});
after(async () => {
  await kubectl('delete', 'validatingwebhookconfiguration', vwcName(), '--ignore-not-found');
  await stopProcess(webhook);
  await deleteNamespace(ns);
});

it('refuses each rule at apply time with exactly the mount-time message', () => {
  const bad = [
    '- {objectName: s1, objectType: kms, objectVersion: v1}',
    '- {objectName: s1, objectType: csms, objectVersion: v1}\n- {objectName: s1, objectType: csms, objectVersion: v2}',
    '- {objectName: s1, objectAlias: "../../etc/x", objectType: csms, objectVersion: v1}',
    '- {objectName: s1, objectType: csms, objectVersion: v1, jmesPath: [{path: k}]}',
    '- {objectName: s1, objectType: csms, objectVersion: v1, filePermission: "999"}',
    `- {objectName: s1, objectType: csms, objectVersion: v1}\n${'# padding\n'.repeat(7000)}`,
  ];
  for (const [i, objects] of bad.entries()) {
    const name = `bad-${i}`;
    let expected = '';
    try {
      parseSecretObjects(`${ns}/${name}`, objects);
    } catch (err) {
      expected = (err as Error).message;
    }
    assert.ok(expected, `case ${i} is refused at mount time`);
    const r = apply(spc(name, objects));
    assert.equal(r.ok, false, `case ${i} accepted`);
    assert.ok(r.out.includes(expected), `case ${i}: ${r.out} lacks ${expected}`);
  }
});

it('refuses secretObjects naming no file of the mount, and accepts a valid SPC', () => {
  const objects = '- {objectName: s1, objectAlias: one, objectType: csms, objectVersion: v1}';
  const wrong = apply(
    spc('sync-bad', objects, {
      secretObjects: [{ secretName: 'x', type: 'Opaque', data: [{ objectName: 's1', key: 'k' }] }],
    }),
  );
  assert.equal(wrong.ok, false);
  assert.match(
    wrong.out,
    /secretObjects\[0\] \(Secret "x"\) data\[0\]\.objectName "s1" is not a file of the volume; use one of: one/,
  );
  const good = apply(
    spc('good', objects, {
      secretObjects: [{ secretName: 'x', type: 'Opaque', data: [{ objectName: 'one', key: 'k' }] }],
    }),
  );
  assert.equal(good.ok, true, good.out);
});

it('warns, without refusing, about secrets no ServiceAccount allows and latest objects with rotation off', async () => {
  await kubectl('create', 'serviceaccount', 'app', '-n', ns);
  await kubectl('annotate', 'serviceaccount', 'app', '-n', ns, 'cce.io/dew-resource=["allowed"]');
  const r = apply(
    spc(
      'warned',
      '- {objectName: allowed, objectType: csms, objectVersion: latest}\n- {objectName: nobody, objectType: csms, objectVersion: v1}',
    ),
  );
  assert.equal(r.ok, true, r.out);
  assert.match(
    r.out,
    /Warning: SecretProviderClass \S+\/warned: secret "nobody" is allowed by no ServiceAccount in namespace/,
  );
  assert.match(
    r.out,
    /Warning: SecretProviderClass \S+\/warned: object "allowed" is at "latest" but secret rotation is off/,
  );
});

it('refuses a malformed allow-list annotation on a ServiceAccount, and passes other providers untouched', () => {
  const sa = (name: string, value: string) => ({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name, namespace: ns, annotations: { 'cce.io/dew-resource': value } },
  });
  const bad = apply(sa('bad-sa', '["a",'));
  assert.equal(bad.ok, false);
  assert.match(bad.out, /annotation cce\.io\/dew-resource must be a JSON array of secret names/);
  assert.equal(apply(sa('good-sa', '["a","b"]')).ok, true);
  const vault = { ...spc('vault', 'anything at all'), spec: { provider: 'vault', parameters: { roleName: 'x' } } };
  assert.equal(apply(vault).ok, true);
});

it('counts its decisions in /metrics', async () => {
  const text = await get('/metrics', ca);
  const refused = /admission_reviews_total\{kind="SecretProviderClass",result="refused"\} (\d+)/.exec(text);
  assert.ok(refused && Number(refused[1]) >= 7, text);
});

it('serves a renewed certificate without a restart', async () => {
  const old = ca;
  const renewed = makeCerts().ca;
  await waitFor(
    'the renewed certificate',
    async () => (await get('/healthz', renewed)) === 'ok',
    10_000,
    () => logTail(webhook),
  );
  await assert.rejects(get('/healthz', old), /certificate/);
  assert.match(logTail(webhook), /Serving certificate reloaded/);
});

it('with the webhook down: Fail refuses the apply, Ignore accepts it', async () => {
  await stopProcess(webhook);
  const r = apply(spc('while-down', '- {objectName: s1, objectType: csms, objectVersion: v1}'));
  assert.equal(r.ok, false);
  assert.match(r.out, /failed calling webhook/);
  const file = join(dir, 'vwc-ignore.yaml');
  writeFileSync(file, stringify(vwc(ca, 'Ignore')));
  await kubectl('apply', '-f', file);
  await waitFor(
    'Ignore to apply',
    async () => apply(spc('while-down', '- {objectName: s1, objectType: csms, objectVersion: v1}')).ok,
    15_000,
  );
});
