// Secrets from secretObjects: the kubernetes.io/tls split of a PEM bundle, and how a synced
// Secret is merged into the one in the cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { desiredSecret, mergeSyncedSecret, SecretSyncConflictError, tlsPart } from '../../src/crds/secret-objects.js';
import { OWNER_SPC_ANNOTATION, type SecretProviderClass } from '../../src/crds/types.js';
import { PreconditionError } from '../../src/errors.js';

describe('kubernetes.io/tls Secret data', () => {
  const key = '-----BEGIN PRIVATE KEY-----\nMIIkey\n-----END PRIVATE KEY-----\n';
  const cert = '-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n';
  const ca = '-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----\n';
  it('splits a PEM bundle into tls.key and tls.crt', () => {
    const bundle = Buffer.from(key + cert + ca);
    assert.equal(tlsPart('tls.key', bundle).toString(), key);
    assert.equal(tlsPart('tls.crt', bundle).toString(), cert + ca);
  });
  it('leaves a file that is not a key+certificate bundle as it is', () => {
    assert.equal(tlsPart('tls.crt', Buffer.from(cert)).toString(), cert);
    assert.equal(tlsPart('other', Buffer.from(key + cert)).toString(), key + cert);
  });
});

// A Secret as the driver wrote it for pod a, with what a test changes in it.
const spc = {
  metadata: { name: 'db', namespace: 'shop' },
  spec: { provider: 'cce', parameters: {} },
} as unknown as SecretProviderClass;
const spec = { secretName: 'db-secret', type: 'Opaque', data: [{ objectName: 'pw', key: 'password' }] };
const want = desiredSecret('shop', spc, new Map([['pw', Buffer.from('s3cret')]]), spec, 0);
const podA = { apiVersion: 'v1', kind: 'Pod', name: 'a', uid: 'uid-a' };
const podB = { apiVersion: 'v1', kind: 'Pod', name: 'b', uid: 'uid-b' };
const live = (over: { labels?: object; annotations?: object; type?: string; data?: object; owners?: object[] } = {}) =>
  ({
    metadata: {
      name: 'db-secret',
      namespace: 'shop',
      resourceVersion: '7',
      labels: over.labels ?? { ...want.metadata!.labels },
      annotations: over.annotations ?? { ...want.metadata!.annotations },
      ownerReferences: over.owners ?? [podA],
    },
    type: over.type ?? 'Opaque',
    data: over.data ?? { ...want.data },
  }) as k8s.V1Secret;

describe('merging a synced Secret into the live one', () => {
  const refusals: [string, k8s.V1Secret, RegExp, boolean][] = [
    [
      'a Secret the driver does not manage',
      live({ labels: {} }),
      /not managed by the driver .* never overwritten/,
      false,
    ],
    [
      'a Secret another SPC syncs',
      live({ annotations: { [OWNER_SPC_ANNOTATION]: 'shop/other' } }),
      /synced from SecretProviderClass shop\/other; SecretProviderClass shop\/db declares it too/,
      true,
    ],
    [
      'a change of type',
      live({ type: 'kubernetes.io/tls' }),
      /has type kubernetes.io\/tls, but the SPC asks for Opaque/,
      false,
    ],
  ];
  for (const [what, secret, message, conflict] of refusals) {
    it(`refuses ${what}, naming the Secret`, () => {
      assert.throws(
        () => mergeSyncedSecret(secret, want, podB),
        (e: Error) =>
          e instanceof PreconditionError &&
          e instanceof SecretSyncConflictError === conflict &&
          message.test(e.message) &&
          e.message.includes('Secret shop/db-secret') &&
          !e.message.includes('s3cret'),
      );
    });
  }

  it('writes nothing when the live Secret already holds the data and the pod', () => {
    assert.equal(mergeSyncedSecret(live(), want, podA), undefined);
  });

  it('adds a second pod as owner, keeping the first, and changes nothing else', () => {
    const next = mergeSyncedSecret(live(), want, podB)!;
    assert.deepEqual(next.metadata!.ownerReferences, [podA, podB]);
    assert.deepEqual(next.data, want.data);
    assert.equal(next.metadata!.resourceVersion, '7', 'written with the version read (a race is a 409)');
  });

  it('replaces the data, keeps labels and annotations others added, and claims a Secret no SPC owns yet', () => {
    const old = live({
      data: { password: Buffer.from('old').toString('base64') },
      labels: { ...want.metadata!.labels, team: 'shop' },
      annotations: { note: 'kept' },
    });
    const next = mergeSyncedSecret(old, want, podA)!;
    assert.deepEqual(next.data, want.data);
    assert.equal(next.metadata!.labels!.team, 'shop');
    assert.equal(next.metadata!.annotations!.note, 'kept');
    assert.equal(next.metadata!.annotations![OWNER_SPC_ANNOTATION], 'shop/db');
    assert.deepEqual(next.metadata!.ownerReferences, [podA], 'the pod is not listed twice');
  });
});
