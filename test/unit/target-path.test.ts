// The target path rule: the one shape of a kubelet CSI volume folder, and every other shape refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTargetPath } from '../../src/driver/target-path.js';
import { InvalidRequestError } from '../../src/errors.js';
import { spcpsNames } from '../../src/kube/spcps-writer.js';

const root = '/var/lib/kubelet';
const uid = '6f1c7a52-0a3e-4a43-9b47-2b1f7b0f2c11';
const good = `${root}/pods/${uid}/volumes/kubernetes.io~csi/secrets-store-inline/mount`;

describe('target path rule', () => {
  it("reads the pod uid and the volume name from kubelet's path", () => {
    assert.deepEqual(parseTargetPath(root, good, 'NodePublishVolume'), { podUid: uid, volume: 'secrets-store-inline' });
  });

  it('refuses every other shape, naming the expected one', () => {
    const bad = [
      '/etc/kubernetes/pki',
      `${root}/pods/${uid}/volumes/kubernetes.io~projected/kube-api-access/mount`,
      `${root}/pods/${uid}/volumes/kubernetes.io~csi/vol`,
      `${root}/pods/${uid}/volumes/kubernetes.io~csi/vol/mount/x`,
      `${root}/pods/${uid}/volumes/kubernetes.io~csi/../../../../etc/mount`,
      `${root}/pods/${uid}/volumes/kubernetes.io~csi/vol/mount/`,
      `${root}/pods/../pods/${uid}/volumes/kubernetes.io~csi/vol/mount`,
      `${root}/pods/not a uid/volumes/kubernetes.io~csi/vol/mount`,
      `${root}/pods/${uid}/volumes/kubernetes.io~csi/Not_A_Label/mount`,
      `${root}-other/pods/${uid}/volumes/kubernetes.io~csi/vol/mount`,
    ];
    for (const path of bad) {
      assert.throws(
        () => parseTargetPath(root, path, 'NodeUnpublishVolume'),
        (e: Error) =>
          e instanceof InvalidRequestError &&
          e.message.startsWith('NodeUnpublishVolume: target_path') &&
          e.message.endsWith(`it must be ${root}/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount`),
        path,
      );
    }
  });
});

describe('SPCPS names', () => {
  it('is <pod>-<namespace>-<spc>, with a stable hashed alternative for collisions', () => {
    const [a, altA] = spcpsNames('p', 'n', 'n-s');
    const [b, altB] = spcpsNames('p-n', 'n', 's');
    assert.equal(a, 'p-n-n-s');
    assert.equal(b, a, 'the collision the alternative exists for');
    assert.notEqual(altA, altB);
    assert.match(altA, /^p-n-n-s-[0-9a-f]{10}$/);
    assert.deepEqual(spcpsNames('p', 'n', 'n-s'), [a, altA], 'deterministic');
  });

  it('stays a valid name of at most 253 characters', () => {
    const [name] = spcpsNames(`${'a'.repeat(200)}.b`, 'ns', 'c'.repeat(100));
    assert.ok(name.length <= 253);
    assert.match(name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    assert.doesNotMatch(name, /[.-]-/);
  });
});
