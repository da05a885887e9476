// `npm run demo` is the README's first command: it must keep working and showing the product.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { it } from 'node:test';

const run = promisify(execFile);

it('the demo mounts through kubelet, syncs, follows an SPC edit, rotates, syncs a Secret without a pod and unmounts', async () => {
  const { stdout } = await run(process.execPath, [resolve(import.meta.dirname, '../../demo/run.js')], {
    timeout: 120_000,
  });
  assert.match(stdout, /nginx-spc\s+1\/1\s+Running/);
  assert.match(stdout, /Started\s+\d*\w*\s+kubelet\s+Started container app/);
  assert.match(
    stdout,
    /files of volume secrets-store-inline under kubelet's pod folder:\n\s+secret_test: p@ssw0rd-version-1/,
  );
  assert.match(stdout, /dbusername01: db_user_alice/);
  assert.match(
    stdout,
    /status:\n\s+mounted: true\n\s+objects:\n\s+- id: secret_1\n\s+version: v1\n\s+podName: nginx-spc\n\s+secretProviderClassName: spc-test/,
  );
  assert.match(stdout, /my-secret-01\s+Opaque\s+2/);
  assert.match(stdout, /db_username_02=db_user_bob/);
  assert.match(stdout, /after \d+ ms: secret_test: p@ssw0rd-version-2/);
  assert.match(stdout, /v3 rotated in after \d+ ms: secret_test: p@ssw0rd-version-3/);
  assert.match(stdout, /\[\{"id":"secret_1","version":"v3"\}\]/);
  assert.match(stdout, /\$ kubectl annotate namespace demo-\w+ 'cce.io\/dew-resource-permitted=\["secret_\*"\]'/);
  assert.match(
    stdout,
    /FailedMount .*PermissionDenied desc = Namespace team-b-\w+ does not permit CSMS secret "secret_1" \(its cce.io\/dew-resource-permitted annotation is \["team-b-\*"\]\)/,
  );
  assert.match(stdout, /pod thief is Pending; no SPCPS in team-b-\w+/);
  assert.match(stdout, /db-creds\s+nginx-deployment-spc-k8s-secrets\s+db-creds\s+\S+\s+True/);
  assert.match(stdout, /\(decoded\)\n\s+username=db_user_alice/);
  assert.match(stdout, /no SPCPS left/);
  assert.match(stdout, /Demo finished in [\d.]+ s\./);
  assert.ok(!stdout.includes('demo-secret-key'), 'no credential in the output');
});
