// A SecretSync read with pod identity: the controller requests its ServiceAccount's token
// itself (TokenRequest, service.cce.pods, 600 s), trades it at the emulator's CCE Pod Identity
// (which checks it against the API server's keys) and reads CSMS as that agency, never as
// itself. And the volume limits hold for a SecretSync as for a mount.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { PodIdentitySeed } from '../../src/emulator/pod-identity.js';
import {
  createNamespace,
  createServiceAccount,
  createSpc,
  secretValue,
  deleteNamespace,
  eventually,
  kubectl,
  readSecret,
} from '../helpers/cluster.js';
import { createSecretSync, getSecretSync, readyOf, secretSyncManifest } from '../helpers/secret-syncs.js';
import { SyncProcess } from '../helpers/sync-process.js';
import { withDriver } from '../helpers/with-driver.js';

const CLUSTER = 'test-cluster-sync';
const fx = withDriver({
  name: 'sync-pod-identity',
  secrets: [
    { name: 'team-db', versions: ['team-db-v1'] },
    { name: 'not-theirs', versions: ['not-theirs-v1'] },
    { name: 'big', versions: ['x'.repeat(5000)] },
  ],
});
let ns: string;
let controller: SyncProcess;

const sync = (name: string, spc: string, sa: string, sourcePath: string) =>
  createSecretSync(ns, secretSyncManifest(name, spc, sa, { data: [{ sourcePath, targetKey: 'v' }] }));

/** The Ready condition once it is False. */
const refusal = (name: string) =>
  eventually('a refusal', async () => {
    const r = readyOf(await getSecretSync(ns, name));
    return r?.status === 'False' ? r : undefined;
  });

before(async () => {
  await fx.ready;
  ns = await createNamespace('sync-pi');
  const jwks = JSON.parse(await kubectl('get', '--raw', '/openid/v1/jwks')) as PodIdentitySeed['jwks'];
  fx.emulator.store.setPodIdentity({
    clusterId: CLUSTER,
    jwks,
    issuer: 'https://kubernetes.default.svc',
    associations: [{ namespace: ns, serviceAccount: 'team', agency: 'team-reader' }],
    agencies: [{ name: 'team-reader', secrets: ['team-db'] }],
  });
  await createServiceAccount(ns, 'team', ['team-db', 'not-theirs']);
  await createServiceAccount(ns, 'plain', ['big']);
  const spc = (objectName: string, podIdentity: boolean) =>
    createSpc(ns, objectName, `- {objectName: ${objectName}, objectType: csms, objectVersion: latest}`, {
      parameters: {
        objects: `- {objectName: ${objectName}, objectType: csms, objectVersion: latest}`,
        ...(podIdentity ? { usePodIdentity: 'true' } : {}),
      },
    });
  await spc('team-db', true);
  await spc('not-theirs', true);
  await spc('big', false);
  controller = new SyncProcess({
    csmsEndpoint: fx.endpoint,
    extraArgs: [
      ...['--rotation-poll-interval=1s', '--namespace-policy=off', '--max-file-bytes=4096'],
      ...[`--cluster-id=${CLUSTER}`, `--cce-endpoint=${fx.endpoint}`],
    ],
  });
  await controller.start();
});
after(async () => {
  await controller?.stop();
  await deleteNamespace(ns);
});

it("reads as the SecretSync's ServiceAccount agency, with a token the controller requested", async () => {
  await sync('team-db', 'team-db', 'team', 'team-db');
  await eventually('the Secret', async () =>
    (await secretValue(ns, 'team-db', 'v')) === 'team-db-v1' ? true : undefined,
  );
  const reads = fx.emulator.store.requestLog.filter((r) => r.what.startsWith('GET team-db'));
  assert.ok(reads.length > 0);
  assert.ok(
    reads.every((r) => r.agency === 'team-reader'),
    JSON.stringify(reads),
  );
});

it("is refused what the agency may not read, and never falls back to the controller's own keys", async () => {
  await sync('not-theirs', 'not-theirs', 'team', 'not-theirs');
  const ready = await refusal('not-theirs');
  assert.equal(ready.reason, 'RemoteSecretStoreFetchFailed');
  assert.equal(await readSecret(ns, 'not-theirs'), undefined);
  const reads = fx.emulator.store.requestLog.filter((r) => r.what.startsWith('GET not-theirs'));
  assert.ok(
    reads.every((r) => r.agency === 'team-reader'),
    JSON.stringify(reads),
  );
});

it('holds the volume limits: a secret over --max-file-bytes is refused, naming the limit', async () => {
  await sync('big', 'big', 'plain', 'big');
  const ready = await refusal('big');
  assert.equal(ready.reason, 'LimitExceeded');
  assert.match(ready.message, /4096/);
  assert.equal(await readSecret(ns, 'big'), undefined);
});
