// What the pod cache keeps of a pod: the fields the driver reads, and large volumeAttributes
// only as a mark that the pod must be read whole.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { isPartial, podFields } from '../../src/kube/pod-fields.js';

const pod = (attributes: Record<string, string>): k8s.V1Pod => ({
  metadata: { name: 'p', namespace: 'ns', uid: 'u', resourceVersion: '7', annotations: { big: 'x'.repeat(100_000) } },
  spec: {
    nodeName: 'node-1',
    serviceAccountName: 'app',
    securityContext: { fsGroup: 2000, runAsUser: 1000 },
    containers: [{ name: 'c', image: 'i', env: [{ name: 'E', value: 'y'.repeat(100_000) }] }],
    volumes: [
      { name: 'tmp', emptyDir: {} },
      { name: 'secrets', csi: { driver: 'secrets-store.csi.k8s.io', volumeAttributes: attributes } },
      { name: 'other', csi: { driver: 'other.csi.example', volumeAttributes: { a: 'b' } } },
    ],
  },
});

it('keeps the fields the driver reads and drops the rest', () => {
  const kept = podFields(pod({ secretProviderClass: 'spc', roleName: 'db' }));
  assert.deepEqual(kept.metadata, {
    name: 'p',
    namespace: 'ns',
    uid: 'u',
    resourceVersion: '7',
    creationTimestamp: undefined,
    deletionTimestamp: undefined,
  });
  assert.deepEqual(kept.spec!.securityContext, { fsGroup: 2000 });
  assert.deepEqual(kept.spec!.volumes, [
    {
      name: 'secrets',
      csi: { driver: 'secrets-store.csi.k8s.io', volumeAttributes: { secretProviderClass: 'spc', roleName: 'db' } },
    },
  ]);
  assert.deepEqual(kept.spec!.containers, []);
  assert.equal(isPartial(kept), false);
  assert.ok(JSON.stringify(kept).length < 1000);
});

it('keeps large volumeAttributes only as the SPC name, and marks the pod to be read whole', () => {
  const kept = podFields(pod({ secretProviderClass: 'spc', blob: 'z'.repeat(20_000) }));
  assert.deepEqual(kept.spec!.volumes![0].csi!.volumeAttributes, { secretProviderClass: 'spc' });
  assert.equal(isPartial(kept), true);
});
