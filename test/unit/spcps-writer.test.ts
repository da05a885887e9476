// The SPCPS writer against an in-memory API (resourceVersions, 409 on a stale write or an
// existing name): its "taken" path (a name that records another pod falls back to the
// alternative, then refuses), its 409 retries, and deletes conditional on what it wrote.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import type { SecretProviderClassPodStatus } from '../../src/crds/types.js';
import { PreconditionError } from '../../src/errors.js';
import { SpcpsWriter } from '../../src/kube/spcps-writer.js';

type Obj = SecretProviderClassPodStatus & { metadata: { uid?: string; resourceVersion?: string } };
const conflict = (why: string) => Object.assign(new Error(why), { code: 409 });
const notFound = () => Object.assign(new Error('not found'), { code: 404 });

/** The few CustomObjectsApi calls the writer makes, over a map; `before` runs ahead of each call. */
function fakeApi(before: (verb: string, name: string) => void = () => undefined) {
  const store = new Map<string, Obj>();
  let version = 0;
  const calls: string[] = [];
  const keep = (o: Obj, uid = o.metadata.uid ?? `uid-${++version}`) => {
    const saved = structuredClone({ ...o, metadata: { ...o.metadata, uid, resourceVersion: String(++version) } });
    store.set(o.metadata.name, saved);
    return structuredClone(saved);
  };
  const api = {
    createNamespacedCustomObject: async ({ body }: { body: Obj }) => {
      calls.push(`create ${body.metadata.name}`);
      before('create', body.metadata.name);
      if (store.has(body.metadata.name)) throw conflict('already exists');
      return keep(body, undefined);
    },
    getNamespacedCustomObject: async ({ name }: { name: string }) => {
      calls.push(`get ${name}`);
      const o = store.get(name);
      if (!o) throw notFound();
      return structuredClone(o);
    },
    replaceNamespacedCustomObject: async ({ name, body }: { name: string; body: Obj }) => {
      calls.push(`replace ${name}`);
      before('replace', name);
      const live = store.get(name);
      if (!live) throw notFound();
      if (live.metadata.resourceVersion !== body.metadata.resourceVersion) throw conflict('stale');
      return keep(body, live.metadata.uid);
    },
    deleteNamespacedCustomObject: async ({
      name,
      body,
    }: {
      name: string;
      body: { preconditions: { resourceVersion?: string } };
    }) => {
      calls.push(`delete ${name}`);
      const live = store.get(name);
      if (!live) throw notFound();
      if (live.metadata.resourceVersion !== body.preconditions.resourceVersion) throw conflict('changed');
      store.delete(name);
      return {};
    },
  };
  return { store, calls, custom: api as unknown as k8s.CustomObjectsApi };
}

const desired = (name: string, pod: { name: string; uid: string }, versions = ['v1']): Obj => ({
  apiVersion: 'secrets-store.csi.x-k8s.io/v1',
  kind: 'SecretProviderClassPodStatus',
  metadata: {
    name,
    namespace: 'shop',
    labels: { 'internal.secrets-store.csi.k8s.io/node-name': 'node-a' },
    ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid }],
  },
  status: {
    podName: pod.name,
    secretProviderClassName: 'db',
    targetPath: `/var/lib/kubelet/pods/${pod.uid}/volumes/kubernetes.io~csi/s/mount`,
    mounted: true,
    objects: versions.map((v) => ({ id: 's1', version: v })),
  },
});
const app = { name: 'app', uid: 'pod-1' };
const other = { name: 'other', uid: 'pod-2' };

it('creates, then writes nothing while unchanged, then updates', async () => {
  const { custom, calls } = fakeApi();
  const writer = new SpcpsWriter(custom);
  assert.deepEqual(await writer.upsert(desired('p', app), 'alt'), { name: 'p', outcome: 'created' });
  assert.deepEqual(await writer.upsert(desired('p', app), 'alt'), { name: 'p', outcome: 'unchanged' });
  assert.deepEqual(await writer.upsert(desired('p', app, ['v2']), 'alt'), { name: 'p', outcome: 'updated' });
  assert.deepEqual(calls, ['create p', 'replace p']);
});

const taken: [string, string[], { name: string; outcome: string } | RegExp][] = [
  ['the primary name records another pod: the alternative', ['p'], { name: 'alt', outcome: 'created' }],
  ['both names record other pods: refused, naming both', ['p', 'alt'], /shop\/p and shop\/alt both record other pods/],
];
for (const [what, occupied, expected] of taken) {
  it(`takes no SPCPS of another pod: ${what}`, async () => {
    const api = fakeApi();
    const writer = new SpcpsWriter(api.custom);
    for (const name of occupied) await new SpcpsWriter(api.custom).upsert(desired(name, other), 'unused');
    const result = writer.upsert(desired('p', app), 'alt');
    if (expected instanceof RegExp)
      await assert.rejects(result, (e: Error) => e instanceof PreconditionError && expected.test(e.message));
    else assert.deepEqual(await result, expected);
    for (const name of occupied)
      assert.equal(api.store.get(name)!.status.podName, 'other', `${name} is left as it was`);
  });
}

it('takes over the SPCPS of an earlier pod of the same name (the pod was replaced)', async () => {
  const api = fakeApi();
  await new SpcpsWriter(api.custom).upsert(desired('p', { name: 'app', uid: 'old-pod' }), 'alt');
  assert.deepEqual(await new SpcpsWriter(api.custom).upsert(desired('p', app), 'alt'), {
    name: 'p',
    outcome: 'updated',
  });
  assert.equal(api.store.get('p')!.metadata.ownerReferences![0].uid, 'pod-1');
});

it('reads again and decides again when a write meets a 409, and gives up after three', async () => {
  let races = 1;
  const api = fakeApi((verb, name) => {
    // Someone else writes the object between our read and our replace.
    if (verb === 'replace' && races-- > 0) {
      const live = api.store.get(name)!;
      api.store.set(name, {
        ...live,
        metadata: { ...live.metadata, resourceVersion: `${live.metadata.resourceVersion}x` },
      });
    }
  });
  const writer = new SpcpsWriter(api.custom);
  await writer.upsert(desired('p', app), 'alt');
  assert.deepEqual(await writer.upsert(desired('p', app, ['v2']), 'alt'), { name: 'p', outcome: 'updated' });
  assert.deepEqual(api.store.get('p')!.status.objects, [{ id: 's1', version: 'v2' }]);
  races = 10;
  await assert.rejects(
    writer.upsert(desired('p', app, ['v3']), 'alt'),
    /writing SecretProviderClassPodStatus shop\/p failed/,
  );
});

it('deletes only what still records the pod, as it last wrote it', async () => {
  const api = fakeApi();
  await new SpcpsWriter(api.custom).upsert(desired('p', app), 'alt');
  await new SpcpsWriter(api.custom).delete('shop', 'p', 'another-pod');
  assert.ok(api.store.has('p'), 'not the pod it records: left alone');
  // Another node's driver rewrote it since this one wrote it: the conditional delete meets a 409.
  const writer = new SpcpsWriter(api.custom);
  await writer.upsert(desired('p', app), 'alt');
  const live = api.store.get('p')!;
  api.store.set('p', { ...live, metadata: { ...live.metadata, resourceVersion: '999' } });
  await writer.delete('shop', 'p', 'pod-1');
  assert.ok(api.store.has('p'), 'changed since it was written: left alone');
  await new SpcpsWriter(api.custom).delete('shop', 'p', 'pod-1');
  assert.equal(api.store.has('p'), false, 'read fresh, it is ours: deleted');
  await new SpcpsWriter(api.custom).delete('shop', 'p', 'pod-1');
});
