// Two `sync` controllers on one Lease: only the leader writes; when it stops (SIGTERM, which
// releases the Lease) or dies (SIGKILL, the Lease expires), the other takes over, writes
// nothing that is already in step, and writes each change exactly once.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import {
  createNamespace,
  createServiceAccount,
  createSpc,
  custom,
  deleteNamespace,
  eventually,
  kc,
  secretValue,
} from '../helpers/cluster.js';
import { createSecretSync, secretSyncManifest } from '../helpers/secret-syncs.js';
import { SyncProcess } from '../helpers/sync-process.js';
import { withDriver } from '../helpers/with-driver.js';

const fx = withDriver({ name: 'sync-leader', secrets: [{ name: 'shared', versions: ['v1'] }] });
const NAMES = ['one', 'two', 'three'];

let ns: string;
const controllers: SyncProcess[] = [];
/** Watch events per Secret name: what the API server stored, each write once. */
const writes = new Map<string, string[]>();
let stopWatch: AbortController | undefined;

function controller(identity: string): SyncProcess {
  const c = new SyncProcess({
    csmsEndpoint: fx.endpoint,
    leaseNamespace: ns,
    identity,
    extraArgs: ['--rotation-poll-interval=1s', '--leader-lease-duration=3s', '--namespace-policy=off'],
  });
  controllers.push(c);
  return c;
}

const lease = () =>
  custom.getNamespacedCustomObject({
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    namespace: ns,
    name: 'cce-secrets-manager-sync',
  }) as Promise<{ spec: { holderIdentity: string; leaseTransitions: number } }>;

const value = async (name: string) => (await secretValue(ns, name, 'v')) ?? '';

/** Waits until every Secret holds `v`, then for two more cycles of `c`, so that a stray write would show. */
async function settled(c: SyncProcess, v: string) {
  await eventually(`every Secret at ${v}`, async () =>
    (await Promise.all(NAMES.map(value))).every((x) => x === v) ? true : undefined,
  );
  const unchanged = await c.metric('secretsync_sync_total', { outcome: 'unchanged' });
  await eventually('two more cycles', async () =>
    (await c.metric('secretsync_sync_total', { outcome: 'unchanged' })) >= unchanged + 2 * NAMES.length
      ? true
      : undefined,
  );
}

const modified = () => NAMES.map((n) => (writes.get(n) ?? []).filter((t) => t === 'MODIFIED').length);

before(async () => {
  await fx.ready;
  ns = await createNamespace('sync-leader');
  await createServiceAccount(ns, 'app', ['shared']);
  await createSpc(ns, 'shared', '- objectName: shared\n  objectType: csms\n  objectVersion: latest\n');
  stopWatch = await new k8s.Watch(kc).watch(
    `/api/v1/namespaces/${ns}/secrets`,
    {},
    (type, obj: k8s.V1Secret) => {
      const name = obj.metadata!.name!;
      writes.set(name, [...(writes.get(name) ?? []), type]);
    },
    () => undefined,
  );
});
after(async () => {
  stopWatch?.abort();
  await Promise.all(controllers.map((c) => c.stop('SIGKILL')));
  await deleteNamespace(ns);
});

it('only the leader writes, and a new leader writes each change once, after a stop and after a crash', async () => {
  const a = controller('sync-a');
  await a.start();
  await a.leading();
  const b = controller('sync-b');
  await b.start();
  for (const name of NAMES) {
    await createSecretSync(
      ns,
      secretSyncManifest(name, 'shared', 'app', { data: [{ sourcePath: 'shared', targetKey: 'v' }] }),
    );
  }
  await settled(a, 'v1');
  assert.equal((await lease()).spec.holderIdentity, 'sync-a');
  assert.ok(!b.logs.includes('Became the leader'), 'the standby led');
  assert.equal(await b.metric('secretsync_leader'), 0);
  assert.deepEqual(
    NAMES.map((n) => writes.get(n)),
    NAMES.map(() => ['ADDED']),
  );

  // A stops: it releases the Lease, B leads at once and finds everything in step.
  assert.equal(await a.stop('SIGTERM'), 0);
  await b.leading(10_000);
  await settled(b, 'v1');
  assert.deepEqual(modified(), [0, 0, 0]);
  fx.emulator.store.addVersion('shared', { secret_string: 'v2' });
  await settled(b, 'v2');
  assert.deepEqual(modified(), [1, 1, 1]);
  const afterStop = await lease();
  assert.equal(afterStop.spec.holderIdentity, 'sync-b');

  // B dies without releasing: C takes the Lease once it has expired, and writes the next change once.
  const c = controller('sync-c');
  await c.start();
  await b.stop('SIGKILL');
  await c.leading(20_000);
  fx.emulator.store.addVersion('shared', { secret_string: 'v3' });
  await settled(c, 'v3');
  assert.deepEqual(modified(), [2, 2, 2]);
  const afterCrash = await lease();
  assert.equal(afterCrash.spec.holderIdentity, 'sync-c');
  assert.equal(afterCrash.spec.leaseTransitions, afterStop.spec.leaseTransitions + 1);
});
