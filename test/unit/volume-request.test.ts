// NodePublishVolume requests as kubelet sends them: the ServiceAccount tokens of the
// CSIDriver's tokenRequests are parsed, and a malformed value is refused without being quoted.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { InvalidRequestError } from '../../src/errors.js';
import { CTX_SA_TOKENS } from '../../src/crds/types.js';
import { parsePublishRequest } from '../../src/driver/volume-request.js';

const root = '/var/lib/kubelet';
const uid = '0a1b2c3d-0000-4000-8000-00000000abcd';

function request(context: Record<string, string> = {}) {
  return {
    volume_id: `csi-${uid}`,
    target_path: `${root}/pods/${uid}/volumes/kubernetes.io~csi/secrets/mount`,
    volume_capability: { mount: {} },
    readonly: true,
    volume_context: {
      secretProviderClass: 'spc',
      'csi.storage.k8s.io/pod.name': 'app-0',
      'csi.storage.k8s.io/pod.namespace': 'ns',
      'csi.storage.k8s.io/pod.uid': uid,
      'csi.storage.k8s.io/serviceAccount.name': 'app',
      ...context,
    },
  };
}

it('takes the ServiceAccount tokens kubelet passes for tokenRequests', () => {
  const tokens = { 'dew.example': { token: 'eyJ.secret.token', expirationTimestamp: '2026-11-29T10:00:00Z' } };
  const req = parsePublishRequest(request({ [CTX_SA_TOKENS]: JSON.stringify(tokens) }), root);
  assert.deepEqual(req.serviceAccountTokens, tokens);
  assert.equal(parsePublishRequest(request(), root).serviceAccountTokens, undefined);
});

it('refuses malformed tokens, naming the key and the form but never the value', () => {
  for (const bad of ['{"aud": "eyJ.secret.token"', '["eyJ.secret.token"]', '{"aud": {"token": "eyJ.secret.token"}}']) {
    assert.throws(
      () => parsePublishRequest(request({ [CTX_SA_TOKENS]: bad }), root),
      (e: Error) =>
        e instanceof InvalidRequestError &&
        e.message.includes(CTX_SA_TOKENS) &&
        !e.message.includes('eyJ') &&
        e.cause === undefined,
    );
  }
});
