// What a SecretSync makes of its content (crds/secret-sync.ts) and how the controller schedules
// syncs (sync/controller.ts): the Secret and its refusals, the hash, the conditions; one sync
// per SecretSync at a time, a cycle sharing reads, retries after a backoff, nothing once stopped.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import {
  conditionsAfter,
  InvalidSecretSyncError,
  MAX_SPEC_BYTES,
  syncedSecretOf,
  syncHash,
  upToDate,
} from '../../src/crds/secret-sync.js';
import type { SecretSync } from '../../src/crds/types.js';
import { createLogger } from '../../src/log.js';
import type { SecretSource } from '../../src/provider/secret-source.js';
import { SyncController } from '../../src/sync/controller.js';
import { SyncError, type SecretSyncer } from '../../src/sync/secret-syncer.js';
import { kept } from '../../src/sync/sync-view.js';
import { ManualClock } from '../helpers/manual-clock.js';

function ss(over: Partial<SecretSync['spec']['secretObject']> = {}, more: Partial<SecretSync> = {}): SecretSync {
  return {
    apiVersion: 'secret-sync.x-k8s.io/v1alpha1',
    kind: 'SecretSync',
    metadata: { name: 'db', namespace: 'shop', uid: 'uid-1', generation: 1 },
    spec: {
      secretProviderClassName: 'db-spc',
      serviceAccountName: 'app',
      secretObject: { data: [{ sourcePath: 'pw', targetKey: 'password' }], ...over },
    },
    ...more,
  };
}
const files = new Map([['pw', Buffer.from('s3cret')]]);
const key = Buffer.alloc(32, 7);

describe("a SecretSync's Secret", () => {
  it('has its name, the data, upstream label, the owner annotation and the SecretSync as controller owner', () => {
    const s = syncedSecretOf(ss({ labels: { team: 'a' } }), files);
    assert.equal(s.metadata?.name, 'db');
    assert.equal(s.type, 'Opaque');
    assert.deepEqual(s.data, { password: Buffer.from('s3cret').toString('base64') });
    assert.deepEqual(s.metadata?.labels, { team: 'a', 'secrets-store.sync.x-k8s.io': '' });
    assert.equal(s.metadata?.annotations?.['cce.io/secret-provider-class'], 'shop/db-spc');
    assert.deepEqual(s.metadata?.ownerReferences, [
      { apiVersion: 'secret-sync.x-k8s.io/v1alpha1', kind: 'SecretSync', name: 'db', uid: 'uid-1', controller: true },
    ]);
  });

  for (const [what, over, message] of [
    ['a token-filled type', { type: 'kubernetes.io/service-account-token' }, /fills with a token/],
    ['a bootstrap token', { type: 'bootstrap.kubernetes.io/token' }, /fills with a token/],
    [
      'a missing file',
      { data: [{ sourcePath: 'nope', targetKey: 'k' }] },
      /sourcePath "nope" is not a file .*use one of: pw/,
    ],
    ['no data', { data: [] }, /data is empty/],
    ["upstream's reserved label", { labels: { 'secrets-store.sync.x-k8s.io/x': 'y' } }, /labels sets/],
    ["the driver's label", { labels: { 'secrets-store.csi.k8s.io/managed': 'true' } }, /labels sets/],
    [
      "the driver's owner annotation",
      { annotations: { 'cce.io/secret-provider-class': 'shop/x' } },
      /annotations sets/,
    ],
  ] as const) {
    it(`is refused for ${what}`, () => {
      assert.throws(
        () => syncedSecretOf(ss(over as never), files),
        (e: Error) => {
          assert.ok(e instanceof InvalidSecretSyncError);
          assert.match(e.message, /^SecretSync shop\/db: /);
          assert.match(e.message, message);
          return true;
        },
      );
    });
  }

  it('hashes what it writes under the key: same input same hash, any change (or another key) another', () => {
    const base = syncHash(key, ss(), syncedSecretOf(ss(), files));
    assert.match(base, /^v1:[0-9a-f]{64}$/);
    assert.equal(syncHash(key, ss(), syncedSecretOf(ss(), new Map(files))), base);
    const other = new Map([['pw', Buffer.from('s3cres')]]);
    assert.notEqual(syncHash(key, ss(), syncedSecretOf(ss(), other)), base);
    assert.notEqual(syncHash(key, ss({ labels: { a: 'b' } }), syncedSecretOf(ss({ labels: { a: 'b' } }), files)), base);
    const forced = ss({}, {});
    forced.spec.forceSynchronization = 'again';
    assert.notEqual(syncHash(key, forced, syncedSecretOf(forced, files)), base);
    assert.notEqual(syncHash(Buffer.alloc(32, 8), ss(), syncedSecretOf(ss(), files)), base);
    assert.ok(!base.includes(Buffer.from('s3cret').toString('hex')));
  });
});

describe('what the cache keeps of a SecretSync', () => {
  it('drops a spec over the limit, and the sync then refuses it, naming the size', () => {
    const padded = ss({ annotations: { pad: 'x'.repeat(MAX_SPEC_BYTES) } });
    const k = kept(padded);
    assert.ok(!('secretObject' in k.spec));
    assert.throws(() => syncedSecretOf(k, files), /spec is \d+ bytes, more than the 131072 the controller reads/);
    assert.deepEqual(kept(ss()).spec, ss().spec);
  });
});

describe("a SecretSync's conditions", () => {
  const at = new Date('2026-12-01T10:00:00.123Z');
  const byType = (c: ReturnType<typeof conditionsAfter>) => Object.fromEntries(c.map((x) => [x.type, x]));

  it('after a first sync: created, up to date, ready, at the generation', () => {
    const c = byType(conditionsAfter(ss(), { ok: true, created: true }, at));
    assert.deepEqual(
      [c.SecretCreated.reason, c.SecretUpdated.reason, c.Ready.status],
      ['CreateSuccessful', 'SecretUpToDate', 'True'],
    );
    assert.equal(c.Ready.lastTransitionTime, '2026-12-01T10:00:00Z');
    assert.equal(c.Ready.observedGeneration, 1);
  });

  it('a failure before the first sync is one of creating; after, one of updating, and the last Secret stays', () => {
    const first = byType(conditionsAfter(ss(), { ok: false, reason: 'ProviderError', message: 'no' }, at));
    assert.deepEqual([first.SecretCreated.status, first.SecretUpdated.status], ['False', 'Unknown']);
    assert.equal(first.Ready.message, 'no');
    const synced = ss(
      {},
      { status: { syncHash: 'v1:x', conditions: conditionsAfter(ss(), { ok: true, created: true }, at) } },
    );
    const later = byType(
      conditionsAfter(synced, { ok: false, reason: 'ProviderError', message: 'no' }, new Date(at.getTime() + 5000)),
    );
    assert.deepEqual([later.SecretCreated.status, later.SecretUpdated.status], ['True', 'False']);
    assert.match(later.Ready.message, /keeps the values of the last good sync/);
    // A transition moves the time; a condition that stays keeps it.
    assert.equal(later.SecretCreated.lastTransitionTime, '2026-12-01T10:00:00Z');
    assert.equal(later.Ready.lastTransitionTime, '2026-12-01T10:00:05Z');
  });

  it('is up to date only when Ready is True for the current generation', () => {
    const conditions = conditionsAfter(ss(), { ok: true, created: true }, at);
    assert.ok(upToDate(ss({}, { status: { conditions } })));
    assert.ok(
      !upToDate(
        ss({}, { metadata: { name: 'db', namespace: 'shop', uid: 'uid-1', generation: 2 }, status: { conditions } }),
      ),
    );
    assert.ok(!upToDate(ss()));
  });
});

const log = createLogger({ verbosity: 0, json: false, name: 'test', stream: new PassThrough() });
const source: SecretSource = { fetch: () => Promise.reject(new Error('not read in these tests')) };

function setUp(sync: SecretSyncer['sync'], intervalMs = 60_000) {
  const clock = new ManualClock();
  const syncs = [ss(), { ...ss(), metadata: { ...ss().metadata, name: 'api', uid: 'uid-2' } }];
  const controller = new SyncController({
    syncer: { sync } as SecretSyncer,
    list: () => syncs,
    current: (_, name) => syncs.find((s) => s.metadata.name === name),
    source,
    intervalMs,
    log,
    clock,
    random: () => 1,
  });
  return { clock, controller, syncs };
}

describe('the sync controller', () => {
  it('syncs everything when it starts leading, then every interval with one shared source per cycle', async () => {
    const seen: [string, SecretSource][] = [];
    const { clock, controller } = setUp(async (s, values) => {
      seen.push([s.metadata.name, values]);
      return 'unchanged';
    });
    await controller.start();
    assert.deepEqual(seen.map(([n]) => n).sort(), ['api', 'db']);
    assert.equal(seen[0][1], seen[1][1], 'one source for the cycle');
    assert.notEqual(seen[0][1], source, 'a cycle reads through its own shared source');
    await clock.advance(60_000);
    assert.equal(seen.length, 4);
    await controller.stop();
    await clock.advance(120_000);
    assert.equal(seen.length, 4, 'nothing after stop');
  });

  it('runs one sync of a SecretSync at a time, and once more for a change that came meanwhile', async () => {
    const running = new Map<string, number>();
    let most = 0;
    let release!: () => void;
    const calls: string[] = [];
    const { controller, syncs } = setUp(async (s) => {
      const name = s.metadata.name;
      calls.push(name);
      running.set(name, (running.get(name) ?? 0) + 1);
      most = Math.max(most, running.get(name)!);
      if (calls.length === 1) await new Promise<void>((r) => (release = r));
      running.set(name, running.get(name)! - 1);
      return 'unchanged';
    });
    const started = controller.start();
    await new Promise((r) => setImmediate(r));
    controller.changed(syncs[0]);
    controller.changed(syncs[0]);
    await new Promise((r) => setImmediate(r));
    release();
    await started;
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.filter((n) => n === 'db').length, 2, 'the changes while it ran make one more sync');
    assert.equal(most, 1, 'never two syncs of one SecretSync at once');
    assert.ok(calls.indexOf('api') < calls.lastIndexOf('db'), 'api did not wait for db');
    await controller.stop();
  });
});

describe('the sync controller after a failure', () => {
  it('retries a failed sync after a backoff that doubles', async () => {
    const at: number[] = [];
    const { clock, controller, syncs } = setUp(async (s) => {
      if (s.metadata.name === 'db') {
        at.push(clock.now());
        throw new SyncError('RemoteSecretStoreFetchFailed', new Error('down'));
      }
      return 'unchanged';
    }, 10_000_000);
    syncs.pop();
    await controller.start();
    for (let i = 0; i < 6; i++) await clock.advance(5_000 * 2 ** i);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    assert.deepEqual(gaps, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000]);
    await controller.stop();
  });
});

describe('the sync controller across namespaces', () => {
  it("gives one namespace at most half the slots while another's SecretSync waits", async () => {
    const named = (namespace: string, name: string) => ({ ...ss(), metadata: { ...ss().metadata, namespace, name } });
    const syncs = [...Array.from({ length: 6 }, (_, i) => named('busy', `s${i}`)), named('quiet', 'q')];
    const started: string[] = [];
    const releases: (() => void)[] = [];
    const controller = new SyncController({
      syncer: {
        sync: async (s: SecretSync) => {
          started.push(`${s.metadata.namespace}/${s.metadata.name}`);
          await new Promise<void>((r) => releases.push(r));
          return 'unchanged';
        },
      } as unknown as SecretSyncer,
      list: () => syncs,
      current: (namespace, name) => syncs.find((x) => x.metadata.namespace === namespace && x.metadata.name === name),
      source,
      intervalMs: 60_000,
      concurrency: 4,
      log,
      clock: new ManualClock(),
    });
    const cycle = controller.start();
    await new Promise((r) => setImmediate(r));
    assert.equal(started.length, 4);
    assert.ok(started.includes('quiet/q'), `quiet waited behind busy: ${started.join(' ')}`);
    while (releases.length) {
      releases.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    await cycle;
    assert.equal(started.length, 7);
    await controller.stop();
  });
});
