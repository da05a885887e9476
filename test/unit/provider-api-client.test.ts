// What the driver accepts from an external provider before writing anything, and what it sends one.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { checkMountResponse, ProviderError } from '../../src/provider-api/client.js';
import { providerMountRequest } from '../../src/driver/provider-volume-source.js';
import type { VolumePlan } from '../../src/driver/volume-plan.js';
import type { PublishRequest } from '../../src/driver/volume-request.js';
import { InvalidSpcError } from '../../src/errors.js';
import { checkProviderName } from '../../src/crds/objects.js';
import type { MountResponse } from '../../src/provider-api/protocol.js';

const file = (path: string, mode = 0o644) => ({ path, mode, contents: Buffer.from('v') });
const answer = (files = [file('a')], versions = [{ id: 'a', version: '1' }]): MountResponse => ({
  object_version: versions,
  error: null,
  files,
});

function refused(res: MountResponse, pattern: RegExp, errorType = 'GRPCProviderError') {
  assert.throws(
    () => checkMountResponse('vault', res),
    (err: ProviderError) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.errorType, errorType);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

it('accepts plain names with modes, and sorts the versions', () => {
  const got = checkMountResponse(
    'vault',
    answer(
      [file('b', 0o400), file('a')],
      [
        { id: 'z', version: '2' },
        { id: 'a', version: '1' },
      ],
    ),
  );
  assert.deepEqual([...got.files.keys()], ['b', 'a']);
  assert.equal(got.modes.get('b'), 0o400);
  assert.deepEqual(
    got.versions.map((v) => v.id),
    ['a', 'z'],
  );
});

it("accepts paths in folders under upstream's rules (a deeper component may start with ..)", () => {
  const got = checkMountResponse('vault', answer([file('certs/tls.crt'), file('certs/ca/..root.pem'), file('top')]));
  assert.deepEqual([...got.files.keys()], ['certs/tls.crt', 'certs/ca/..root.pem', 'top']);
});

it('refuses paths that leave the volume or clash with the writer, duplicates, and bad modes', () => {
  for (const path of [
    '../x',
    '/etc/passwd',
    'a/../b',
    '..data',
    '..data/x',
    '',
    '.',
    'x\0y',
    'a//b',
    'a/',
    './a',
    'a/..',
  ])
    refused(answer([file(path)]), /returned file path .*only relative paths inside the volume/);
  refused(answer([file(`d/${'n'.repeat(256)}`)]), /has a component "n+" that is 256 bytes/);
  refused(answer([file('a'), file('a/b')]), /"a" both as a file and as a folder of other files/);
  refused(answer([file('a'), file('a')]), /file "a" twice/);
  refused(answer([file('a', 0o1777)]), /mode 1023, outside 0\.\.0777/);
  refused(answer([file('a', -1)]), /outside 0\.\.0777/);
});

it('refuses a reply without versions or without files, and reports an error code as the metric label', () => {
  refused(answer([file('a')], []), /no object versions/);
  refused(answer([]), /no files/);
  refused({ ...answer(), error: { code: 'AccessDenied' } }, /error code "AccessDenied"/, 'AccessDenied');
});

it('bounds the error codes that become metric labels', () => {
  refused({ ...answer(), error: { code: 'x\ny' } }, /error code "x\\ny"/, 'other');
  refused({ ...answer(), error: { code: 'E'.repeat(65) } }, /error code "E+"/, 'other');
  const labels = new Set<string>();
  for (let i = 0; i < 40; i++) {
    try {
      checkMountResponse('vault', { ...answer(), error: { code: `Code${i}` } });
    } catch (err) {
      labels.add((err as ProviderError).errorType);
    }
  }
  assert.ok(labels.has('other') && labels.size <= 33, `${labels.size} labels`);
  refused({ ...answer(), error: { code: 'AccessDenied' } }, /error code "AccessDenied"/, 'AccessDenied');
});

it('refuses a provider name that is a path', () => {
  for (const name of ['../x', 'a/b', '.hidden', '', 'x'.repeat(64)])
    assert.throws(() => checkProviderName('ns/spc', name), InvalidSpcError);
  checkProviderName('ns/spc', 'azure');
});

it("builds upstream's request: parameters, the pod's own attributes, kubelet's identity last", () => {
  const req = {
    targetPath: '/k/pods/u/volumes/kubernetes.io~csi/v/mount',
    volumeName: 'v',
    spcName: 'spc',
    podName: 'p',
    podNamespace: 'ns',
    podUid: 'u',
    serviceAccount: 'sa',
    secrets: { key: 'k' },
    serviceAccountTokens: {
      aud: { token: 't', expirationTimestamp: 'e' },
      'service.cce.pods': { token: 'cce', expirationTimestamp: 'e' },
    },
  } as unknown as PublishRequest;
  const pod = {
    spec: {
      volumes: [
        { name: 'v', csi: { driver: 'd', volumeAttributes: { extra: '1', 'csi.storage.k8s.io/pod.uid': 'x' } } },
      ],
    },
  } as unknown as k8s.V1Pod;
  const plan = {
    pod,
    spc: { spec: { provider: 'vault', parameters: { role: 'r', extra: '0' } } },
  } as unknown as VolumePlan;
  const m = providerMountRequest(req, plan, [{ id: 'a', version: '1' }]);
  const attributes = JSON.parse(m.attributes) as Record<string, string>;
  assert.equal(attributes.role, 'r');
  assert.equal(attributes.extra, '1', "the pod's volumeAttributes win over the SPC's parameters, as upstream");
  assert.equal(attributes['csi.storage.k8s.io/pod.uid'], 'u');
  assert.deepEqual(
    JSON.parse(attributes['csi.storage.k8s.io/serviceAccount.tokens']),
    { aud: { token: 't', expirationTimestamp: 'e' } },
    "every token but CCE Pod Identity's: with it, another provider could assume the pod's agency",
  );
  assert.equal(m.secrets, '{"key":"k"}');
  assert.equal(m.permission, '420');
  assert.deepEqual(m.current_object_version, [{ id: 'a', version: '1' }]);
});
