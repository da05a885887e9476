// The validating webhook against the real kube-apiserver, which calls it over TLS (registered
// by url with a caBundle): mount-time refusals at `kubectl apply`, warnings, the allow-list
// annotation, other providers untouched, and both failure policies with the webhook down.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { parseSecretObjects } from '../../src/crds/objects.js';
import { waitFor } from '../cluster/processes.js';
import { applyManifest as apply, core, createNamespace, deleteNamespace, kubectl } from '../helpers/cluster.js';
import { WebhookHarness } from '../helpers/webhook.js';
import { rssMiB } from '../helpers/proc.js';

const hook = new WebhookHarness();
let ns: string;

const spc = (name: string, objects: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'secrets-store.csi.x-k8s.io/v1',
  kind: 'SecretProviderClass',
  metadata: { name, namespace: ns },
  spec: { provider: 'cce', parameters: { objects }, ...extra },
});

before(async () => {
  ns = await createNamespace('webhook');
  await hook.start(['--enable-secret-rotation=false']);
  await hook.register(ns, 'Fail');
  // The API server picks up a new configuration within a moment.
  await waitFor(
    'the webhook to be called',
    async () => !apply(spc('probe', '- {objectName: a, objectType: kms, objectVersion: v1}')).ok,
    15_000,
  );
});
after(async () => {
  await hook.unregister(ns);
  await hook.stop();
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
    '- {objectName: s1, objectType: csms, objectVersion: "1.0"}',
    '- {objectName: s1, objectType: csms, objectVersion: v1, objectVerison: v2}',
    '- {objectName: "a/b", objectType: csms, objectVersion: v1}',
    '- {objectName: s1, objectAlias: s2, objectType: csms, objectVersion: v1}\n- {objectName: s2, objectType: csms, objectVersion: v1}',
    '- {objectName: s1, objectType: csms, objectVersion: v1, jmesPath: [{path: "a\\\\b", objectAlias: x}]}',
    `- {objectName: s1, objectType: csms, objectVersion: v1, jmesPath: [{path: "${Array(40).fill('[@,@]').join('|')}", objectAlias: x}]}`,
    Array.from({ length: 101 }, (_, i) => `- {objectName: s${i}, objectType: csms, objectVersion: v1}`).join('\n'),
    'objectName: s1',
    ' ',
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

it("refuses a SecretSync the sync controller would refuse, with the controller's message", () => {
  const sync = (name: string, secretObject: Record<string, unknown>) => ({
    apiVersion: 'secret-sync.x-k8s.io/v1alpha1',
    kind: 'SecretSync',
    metadata: { name, namespace: ns },
    spec: {
      serviceAccountName: 'app',
      secretProviderClassName: 'db',
      secretObject: { data: [{ sourcePath: 'pw', targetKey: 'pw' }], ...secretObject },
    },
  });
  const token = apply(sync('token', { type: 'kubernetes.io/service-account-token' }));
  assert.equal(token.ok, false);
  assert.match(
    token.out,
    /spec\.secretObject\.type kubernetes\.io\/service-account-token is a type Kubernetes fills with a token/,
  );
  const posing = apply(sync('posing', { labels: { 'secrets-store.csi.k8s.io/managed': 'true' } }));
  assert.equal(posing.ok, false);
  assert.match(posing.out, /labels sets "secrets-store\.csi\.k8s\.io\/managed", which marks who owns a Secret/);
  const padded = apply(sync('padded', { annotations: { pad: 'x'.repeat(200_000) } }));
  assert.equal(padded.ok, false);
  assert.match(padded.out, /spec is \d+ bytes, more than the 131072 the controller reads/);
  assert.ok(apply(sync('fine', {})).ok);
});

it('counts its decisions in /metrics', async () => {
  const text = await hook.get('/metrics');
  const refused = /admission_reviews_total\{kind="SecretProviderClass",result="refused"\} (\d+)/.exec(text);
  assert.ok(refused && Number(refused[1]) >= 7, text);
});

it('labels its metrics only with the kinds it reviews, whatever kind a caller names', async () => {
  const forged = 'K'.repeat(100_000);
  for (let i = 0; i < 3; i++) {
    const review = { request: { uid: `u${i}`, kind: { kind: `${forged}${i}` }, operation: 'CREATE', object: {} } };
    const r = await hook.post('/validate', JSON.stringify(review), { asApiServer: true });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).response.allowed, true);
  }
  const text = await hook.get('/metrics');
  assert.ok(!text.includes('KKKK'), 'no caller-chosen label');
  assert.match(text, /admission_reviews_total\{kind="other",result="allowed"\} 3/);
  assert.ok(text.length < 20_000, `${text.length} bytes of metrics`);
});

/** An AdmissionReview as anyone could forge it, for an object in `namespace`. */
const forged = (namespace: string, kind: string, object: unknown, uid = 'forged') =>
  JSON.stringify({ request: { uid, kind: { kind }, operation: 'CREATE', namespace, object } });

it("with --client-ca, reviews only a caller holding the API server's certificate; probes and metrics stay open", async () => {
  const review = forged(ns, 'SecretProviderClass', spc('x', '- {objectName: s1, objectType: kms, objectVersion: v1}'));
  const stranger = await hook.post('/validate', review);
  assert.equal(stranger.status, 403);
  assert.match(stranger.body, /client certificate signed by the --client-ca is required/);
  const apiServer = await hook.post('/validate', review, { asApiServer: true });
  assert.equal(JSON.parse(apiServer.body).response.allowed, false);
  assert.equal(await hook.get('/healthz'), 'ok');
  assert.match(await hook.get('/metrics'), /admission_reviews_total\{kind="other",result="unauthenticated"\} 1/);
});

it("without --client-ca, a forged review learns nothing of a namespace's allow-lists or permit; the object's own rules still apply", async () => {
  const secretive = await createNamespace('secretive', ['db']);
  const open = new WebhookHarness();
  try {
    await kubectl('create', 'serviceaccount', 'app', '-n', secretive);
    await kubectl('annotate', 'serviceaccount', 'app', '-n', secretive, 'cce.io/dew-resource=["db"]');
    await open.start(['--namespace-policy=enforce'], { authenticated: false });
    const probe = {
      ...spc(
        'probe',
        '- {objectName: db, objectType: csms, objectVersion: v1}\n- {objectName: other, objectType: csms, objectVersion: v1}',
      ),
      metadata: { name: 'probe', namespace: secretive },
    };
    const sa = {
      metadata: { name: 'probe', namespace: secretive, annotations: { 'cce.io/dew-resource': '["other"]' } },
    };
    // What the same reviews tell the API server, through a webhook that authenticates it:
    const told = JSON.parse(
      (await hook.post('/validate', forged(secretive, 'SecretProviderClass', probe), { asApiServer: true })).body,
    );
    assert.match(told.response.warnings.join('\n'), /secret "other" is allowed by no ServiceAccount/);
    for (const review of [forged(secretive, 'SecretProviderClass', probe), forged(secretive, 'ServiceAccount', sa)]) {
      const r = await open.post('/validate', review);
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body).response, { uid: 'forged', allowed: true }, r.body);
    }
    const bad = forged(secretive, 'SecretProviderClass', {
      ...probe,
      spec: { provider: 'cce', parameters: { objects: '- {objectName: db, objectType: kms, objectVersion: v1}' } },
    });
    assert.equal(JSON.parse((await open.post('/validate', bad)).body).response.allowed, false);
    assert.match(open.logs, /callers=.*anyone/);
  } finally {
    await open.stop();
    await deleteNamespace(secretive);
  }
});

it("reads a namespace's ServiceAccounts by their metadata only: thirty of 1 MB each leave a review cheap", async () => {
  const crowded = await createNamespace('crowded');
  try {
    const pullSecrets = Array.from({ length: 25_000 }, (_, i) => ({ name: `pull-secret-${i}` }));
    for (let i = 0; i < 30; i++) {
      await core.createNamespacedServiceAccount({
        namespace: crowded,
        body: { metadata: { name: `heavy-${i}` }, imagePullSecrets: pullSecrets },
      });
    }
    const before = rssMiB(hook.pid!);
    const probe = {
      ...spc('probe', '- {objectName: nobody, objectType: csms, objectVersion: v1}'),
      metadata: { name: 'probe', namespace: crowded },
    };
    const r = await hook.post('/validate', forged(crowded, 'SecretProviderClass', probe), { asApiServer: true });
    assert.match(JSON.parse(r.body).response.warnings.join('\n'), /secret "nobody" is allowed by no ServiceAccount/);
    const grown = rssMiB(hook.pid!) - before;
    assert.ok(grown < 20, `the webhook grew by ${grown.toFixed(0)} MiB reviewing beside 30 MB of ServiceAccounts`);
  } finally {
    await deleteNamespace(crowded);
  }
});

it('refuses a new SPC beyond the SPC limit, with the mount-time message', async () => {
  await hook.stop();
  await hook.start(['--enable-secret-rotation=false', '--max-secret-provider-classes=1']);
  const objects = '- {objectName: s1, objectType: csms, objectVersion: v1}';
  const r = apply(spc('one-too-many', objects));
  assert.equal(r.ok, false);
  assert.match(
    r.out,
    new RegExp(
      `SecretProviderClass ${ns}/one-too-many exceeds the limit of 1 SecretProviderClasses in the cluster \\(there are \\d+\\); delete unused ones or raise maxSecretProviderClasses`,
    ),
  );
  assert.equal(apply(spc('good', objects)).ok, true, 'an update of an existing SPC is not counted');
  const metrics = await hook.get('/metrics');
  assert.match(metrics, /^secretproviderclasses_limit 1$/m);
  assert.match(metrics, /^secretproviderclasses_counted [1-9]\d*$/m);
  await hook.stop();
  await hook.start(['--enable-secret-rotation=false']);
});

it('serves a renewed certificate without a restart', async () => {
  const old = hook.ca;
  const renewed = hook.makeCerts();
  await waitFor(
    'the renewed certificate',
    async () => (await hook.get('/healthz', renewed)) === 'ok',
    10_000,
    () => hook.logs,
  );
  await assert.rejects(hook.get('/healthz', old), /certificate/);
  assert.match(hook.logs, /Serving certificate reloaded/);
});

it('with the webhook down: Fail refuses the apply, Ignore accepts it', async () => {
  await hook.stop();
  const down = spc('while-down', '- {objectName: s1, objectType: csms, objectVersion: v1}');
  const r = apply(down);
  assert.equal(r.ok, false);
  assert.match(r.out, /failed calling webhook/);
  await hook.register(ns, 'Ignore');
  await waitFor('Ignore to apply', async () => apply(down).ok, 15_000);
});
