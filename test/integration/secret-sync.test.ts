// The SecretSync controller (`sync`) on the real API server with the CSMS emulator: Secrets
// created, updated and rotated without any pod; the allow-list and the Namespace permit
// refusing; Secrets it does not own left alone; a failed read keeping the last Secret; no
// write when nothing changed; no value in any log, Event or status.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  core,
  createNamespace,
  createServiceAccount,
  createSpc,
  custom,
  deleteNamespace,
  eventually,
  kubectl,
  readSecret,
  secretValue,
} from '../helpers/cluster.js';
import {
  createSecretSync,
  getSecretSync,
  readyOf,
  SECRETSYNCS,
  secretSyncManifest,
  waitReady,
} from '../helpers/secret-syncs.js';
import { SyncProcess } from '../helpers/sync-process.js';
import { withDriver } from '../helpers/with-driver.js';

const VALUES = {
  db: '{"user":"app","password":"db-password-v1"}',
  api: 'api-token-v1',
  other: 'other-secret-value',
};
const fx = withDriver({
  name: 'secret-sync',
  secrets: [
    { name: 'db', versions: [VALUES.db] },
    { name: 'api', versions: [VALUES.api] },
    { name: 'other', versions: [VALUES.other] },
    { name: 'flaky', versions: ['flaky-v1'] },
  ],
});

let controller: SyncProcess;
let ns: string;

/** An upstream SecretSync manifest; `secretObject` replaces the default one. */
const secretSync = (name: string, spc: string, sa: string, extra: { secretObject?: Record<string, unknown> } = {}) =>
  secretSyncManifest(
    name,
    spc,
    sa,
    extra.secretObject ?? { type: 'Opaque', data: [{ sourcePath: 'password', targetKey: 'password' }] },
  );
const decoded = (s: { data?: Record<string, string> } | undefined, key: string) =>
  s?.data?.[key] === undefined ? undefined : Buffer.from(s.data[key], 'base64').toString();

const DB_OBJECTS = `
- objectName: db
  objectType: csms
  objectVersion: latest
  jmesPath:
    - path: password
      objectAlias: password
    - path: user
      objectAlias: user
`;

before(async () => {
  await fx.ready;
  ns = await createNamespace('secret-sync', ['db', 'api', 'flaky']);
  controller = new SyncProcess({
    csmsEndpoint: fx.endpoint,
    extraArgs: ['--rotation-poll-interval=1s', '--namespace-policy=enforce'],
  });
  await controller.start();
  await createServiceAccount(ns, 'app', ['db', 'api', 'flaky']);
  await createSpc(ns, 'db', DB_OBJECTS);
});
after(async () => {
  if (process.env.SYNC_DEBUG)
    console.log(
      controller?.logs
        .split('\n')
        .filter((l) => l.includes(process.env.SYNC_DEBUG!))
        .join('\n'),
    );
  await controller?.stop();
  await deleteNamespace(ns);
});

describe('a SecretSync', () => {
  it('creates its Secret, owned by it, with the status upstream describes and a Ready condition', async () => {
    const made = await createSecretSync(
      ns,
      secretSync('db-creds', 'db', 'app', {
        secretObject: {
          type: 'Opaque',
          data: [
            { sourcePath: 'password', targetKey: 'password' },
            { sourcePath: 'user', targetKey: 'username' },
          ],
          labels: { team: 'payments' },
          annotations: { 'example.com/note': 'synced' },
        },
      }),
    );
    const ss = await waitReady(ns, 'db-creds', 'True');
    const secret = (await readSecret(ns, 'db-creds'))!;
    assert.equal(decoded(secret, 'password'), 'db-password-v1');
    assert.equal(decoded(secret, 'username'), 'app');
    assert.equal(secret.type, 'Opaque');
    assert.equal(secret.metadata?.labels?.team, 'payments');
    assert.equal(secret.metadata?.labels?.['secrets-store.sync.x-k8s.io'], '');
    assert.equal(secret.metadata?.annotations?.['example.com/note'], 'synced');
    assert.equal(secret.metadata?.annotations?.['cce.io/secret-provider-class'], `${ns}/db`);
    assert.deepEqual(
      secret.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
      [['SecretSync', 'db-creds', made.metadata.uid, true]],
    );
    assert.match(ss.status.syncHash, /^v1:[0-9a-f]{64}$/);
    assert.ok(!Number.isNaN(Date.parse(ss.status.lastSuccessfulSyncTime)));
    const byType = Object.fromEntries(ss.status.conditions.map((c: any) => [c.type, [c.status, c.reason]]));
    assert.deepEqual(byType, {
      SecretCreated: ['True', 'CreateSuccessful'],
      SecretUpdated: ['True', 'SecretUpToDate'],
      Ready: ['True', 'Synced'],
    });
    const table = await kubectl('get', 'secretsync', '-n', ns, 'db-creds');
    assert.match(table, /NAME\s+SPC\s+SECRET\s+LAST SYNC\s+READY\s+AGE/);
    assert.match(table, /db-creds\s+db\s+db-creds\s+\S+\s+True/);
    const events = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=db-creds' });
    assert.ok(events.items.some((e) => e.reason === 'SecretCreated' && e.involvedObject.kind === 'SecretSync'));
  });
});

it("the README's SecretSync manifest applies unchanged with kubectl and syncs", async () => {
  const readme = await readFile(join(import.meta.dirname, '../../../README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Secrets without a mount'));
  const manifest = /```yaml\n([\s\S]*?)```/.exec(section)![1];
  const own = await createNamespace('secret-sync-readme', ['db']);
  try {
    await createServiceAccount(own, 'app', ['db']);
    await createSpc(own, 'db', DB_OBJECTS);
    const file = join(await mkdtemp(join(tmpdir(), 'cce-readme-')), 'secretsync.yaml');
    await writeFile(file, manifest);
    await kubectl('apply', '-n', own, '-f', file);
    await waitReady(own, 'db-creds', 'True');
    assert.ok((await secretValue(own, 'db-creds', 'password'))?.startsWith('db-password-'));
  } finally {
    await deleteNamespace(own);
  }
});

describe('a SecretSync over time', () => {
  it('follows edits of its spec, and forceSynchronization writes again', async () => {
    await kubectl(
      'patch',
      'secretsync',
      'db-creds',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { secretObject: { labels: { team: 'billing' } } } }),
    );
    await eventually('the new label', async () =>
      (await readSecret(ns, 'db-creds'))?.metadata?.labels?.team === 'billing' ? true : undefined,
    );
    // Edited by hand: the next sync sees no change of its own, so only forceSynchronization repairs it.
    await kubectl(
      'patch',
      'secret',
      'db-creds',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"stringData":{"password":"edited"}}',
    );
    await kubectl(
      'patch',
      'secretsync',
      'db-creds',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"spec":{"forceSynchronization":"now-1"}}',
    );
    await eventually('a forced write', async () =>
      (await secretValue(ns, 'db-creds', 'password')) === 'db-password-v1' ? true : undefined,
    );
  });

  it('rotates: a new CSMS version reaches the Secret within the rotation interval', async () => {
    fx.emulator.store.addVersion('db', { secret_string: '{"user":"app","password":"db-password-v2"}' });
    await eventually('the rotated password', async () =>
      (await secretValue(ns, 'db-creds', 'password')) === 'db-password-v2' ? true : undefined,
    );
  });
  it('writes nothing, not even its status, while nothing changes', async () => {
    await waitReady(ns, 'db-creds', 'True');
    const secretRv = (await readSecret(ns, 'db-creds'))!.metadata!.resourceVersion;
    const syncRv = (await getSecretSync(ns, 'db-creds')).metadata.resourceVersion;
    const unchanged = await controller.metric('secretsync_sync_total', { outcome: 'unchanged' });
    // Three rotation cycles (1 s each) that each read and compare.
    await eventually('three unchanged syncs', async () =>
      (await controller.metric('secretsync_sync_total', { outcome: 'unchanged' })) >= unchanged + 3 ? true : undefined,
    );
    assert.equal((await readSecret(ns, 'db-creds'))!.metadata!.resourceVersion, secretRv);
    assert.equal((await getSecretSync(ns, 'db-creds')).metadata.resourceVersion, syncRv);
  });
});

describe('a failed read', () => {
  it('keeps the last good Secret when a read fails, says so, and recovers', async () => {
    await createSpc(ns, 'flaky', '- objectName: flaky\n  objectType: csms\n  objectVersion: latest\n');
    await createSecretSync(
      ns,
      secretSync('flaky', 'flaky', 'app', {
        secretObject: { data: [{ sourcePath: 'flaky', targetKey: 'value' }] },
      }),
    );
    await waitReady(ns, 'flaky', 'True');
    for (let i = 0; i < 50; i++) fx.emulator.store.addFault({ status: 503, secret: 'flaky' });
    fx.emulator.store.addVersion('flaky', { secret_string: 'flaky-v2' });
    const failed = await waitReady(ns, 'flaky', 'False', 'RemoteSecretStoreFetchFailed');
    assert.match(readyOf(failed)!.message, /keeps the values of the last good sync/);
    assert.equal(failed.status.conditions.find((c: any) => c.type === 'SecretUpdated').status, 'False');
    assert.equal(await secretValue(ns, 'flaky', 'value'), 'flaky-v1');
    fx.emulator.store.clearFaults();
    await waitReady(ns, 'flaky', 'True');
    assert.equal(await secretValue(ns, 'flaky', 'value'), 'flaky-v2');
  });
});

describe('a SecretSync is refused', () => {
  it('by the ServiceAccount allow-list, creating nothing', async () => {
    await createServiceAccount(ns, 'narrow', ['api']);
    await createSecretSync(ns, secretSync('narrow', 'db', 'narrow'));
    const ss = await waitReady(ns, 'narrow', 'False', 'ServiceAccountNotAllowed');
    assert.match(readyOf(ss)!.message, new RegExp(`secret "db" is not allowed for ServiceAccount ${ns}/narrow`));
    assert.equal(ss.status.conditions.find((c: any) => c.type === 'SecretCreated').status, 'False');
    assert.equal(await readSecret(ns, 'narrow'), undefined);
    const events = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=narrow' });
    assert.ok(events.items.some((e) => e.reason === 'ServiceAccountNotAllowed' && e.type === 'Warning'));
    assert.ok((await controller.metric('secretsync_sync_error_total', { reason: 'ServiceAccountNotAllowed' })) >= 1);
  });

  it("by the Namespace permit (policy enforce), whatever the team's allow-list says", async () => {
    await createServiceAccount(ns, 'wide', ['other']);
    await createSpc(ns, 'other', '- objectName: other\n  objectType: csms\n  objectVersion: latest\n');
    await createSecretSync(
      ns,
      secretSync('other', 'other', 'wide', {
        secretObject: { data: [{ sourcePath: 'other', targetKey: 'v' }] },
      }),
    );
    const ss = await waitReady(ns, 'other', 'False', 'NamespaceNotPermitted');
    assert.match(readyOf(ss)!.message, new RegExp(`Namespace ${ns} does not permit CSMS secret "other"`));
    assert.equal(await readSecret(ns, 'other'), undefined);
  });
});

describe('a SecretSync is refused for its own spec', () => {
  it('for a Secret type Kubernetes fills with a token', async () => {
    await createSecretSync(
      ns,
      secretSync('token', 'db', 'app', {
        secretObject: {
          type: 'kubernetes.io/service-account-token',
          data: [{ sourcePath: 'password', targetKey: 'token' }],
        },
      }),
    );
    const ss = await waitReady(ns, 'token', 'False', 'UserInputValidationFailed');
    assert.match(readyOf(ss)!.message, /kubernetes\.io\/service-account-token is a type Kubernetes fills with a token/);
    assert.equal(await readSecret(ns, 'token'), undefined);
  });

  it('for a spec over what the controller keeps, before reading anything', async () => {
    await createSecretSync(
      ns,
      secretSync('padded', 'db', 'app', {
        secretObject: { data: [{ sourcePath: 'password', targetKey: 'p' }], annotations: { pad: 'x'.repeat(200_000) } },
      }),
    );
    const ss = await waitReady(ns, 'padded', 'False', 'UserInputValidationFailed');
    assert.match(readyOf(ss)!.message, /spec is \d+ bytes, more than the 131072 the controller reads/);
  });

  it('for a sourcePath that is no file of the SPC, naming the files there are', async () => {
    await createSecretSync(
      ns,
      secretSync('typo', 'db', 'app', {
        secretObject: { data: [{ sourcePath: 'passwrd', targetKey: 'password' }] },
      }),
    );
    const ss = await waitReady(ns, 'typo', 'False', 'UserInputValidationFailed');
    assert.match(
      readyOf(ss)!.message,
      /sourcePath "passwrd" is not a file of SecretProviderClass .*; use one of: db, password, user/,
    );
  });
});

describe('Secrets the controller does not own', () => {
  const values = async (name: string) => (await readSecret(ns, name))?.data;

  it('a Secret made by someone else is never written', async () => {
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'theirs' }, stringData: { keep: 'mine' } },
    });
    await createSecretSync(ns, secretSync('theirs', 'db', 'app'));
    const ss = await waitReady(ns, 'theirs', 'False', 'ControllerPatchError');
    assert.match(
      readyOf(ss)!.message,
      new RegExp(`Secret ${ns}/theirs already exists and is not SecretSync ${ns}/theirs's`),
    );
    assert.deepEqual(await values('theirs'), { keep: Buffer.from('mine').toString('base64') });
  });

  it("a Secret with upstream's label but another owner is never written", async () => {
    const sa = await core.readNamespacedServiceAccount({ namespace: ns, name: 'app' });
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: {
          name: 'forged',
          labels: { 'secrets-store.sync.x-k8s.io': '' },
          // A live owner, so that the garbage collector keeps the Secret.
          ownerReferences: [{ apiVersion: 'v1', kind: 'ServiceAccount', name: 'app', uid: sa.metadata!.uid! }],
        },
        stringData: { keep: 'mine' },
      },
    });
    await createSecretSync(ns, secretSync('forged', 'db', 'app'));
    await waitReady(ns, 'forged', 'False', 'ControllerPatchError');
    assert.deepEqual(await values('forged'), { keep: Buffer.from('mine').toString('base64') });
  });

  it("a Secret the driver syncs from an SPC's secretObjects is not taken over, nor the other way round", async () => {
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: {
          name: 'from-spc',
          labels: { 'secrets-store.csi.k8s.io/managed': 'true' },
          annotations: { 'cce.io/secret-provider-class': `${ns}/db` },
        },
        stringData: { keep: 'driver' },
      },
    });
    await createSecretSync(ns, secretSync('from-spc', 'db', 'app'));
    await waitReady(ns, 'from-spc', 'False', 'ControllerPatchError');
    assert.deepEqual(await values('from-spc'), { keep: Buffer.from('driver').toString('base64') });
    // A SecretSync may not mark its Secret as the driver's.
    await createSecretSync(
      ns,
      secretSync('posing', 'db', 'app', {
        secretObject: {
          data: [{ sourcePath: 'password', targetKey: 'p' }],
          labels: { 'secrets-store.csi.k8s.io/managed': 'true' },
        },
      }),
    );
    const ss = await waitReady(ns, 'posing', 'False', 'UserInputValidationFailed');
    assert.match(readyOf(ss)!.message, /sets "secrets-store\.csi\.k8s\.io\/managed", which marks who owns a Secret/);
  });
});

it('no secret value appears in its log, its Events or any SecretSync status', async () => {
  const secretValues = ['db-password-v1', 'db-password-v2', VALUES.api, VALUES.other, 'flaky-v1', 'flaky-v2'];
  const events = JSON.stringify((await core.listNamespacedEvent({ namespace: ns })).items);
  const statuses = JSON.stringify(await custom.listNamespacedCustomObject({ ...SECRETSYNCS, namespace: ns }));
  // As written and as a Secret's data holds it.
  for (const v of secretValues.flatMap((x) => [x, Buffer.from(x).toString('base64')])) {
    assert.ok(!controller.logs.includes(v), `log holds ${v}`);
    assert.ok(!events.includes(v), `events hold ${v}`);
    assert.ok(!statuses.includes(v), `statuses hold ${v}`);
  }
});
