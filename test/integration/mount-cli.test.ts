// `cce-secrets-manager mount`: the publish path without Kubernetes, run as a user would.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executable } from '../helpers/driver.js';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { stringify } from 'yaml';
import { CsmsEmulator } from '../../src/emulator/server.js';

const run = promisify(execFile);
const projectId = '99887766554433221100ffeeddccbbaa';
const creds = { accessKey: 'CLIAK', secretKey: 'cli-sk' };
const dir = mkdtempSync(join(tmpdir(), 'cce-mount-cli-'));

function manifest(name: string, doc: object): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(doc));
  return path;
}
const spc = (name: string, objects: string, extra: object = {}, provider = 'cce') =>
  manifest(name, {
    apiVersion: 'secrets-store.csi.x-k8s.io/v1',
    kind: 'SecretProviderClass',
    metadata: { name },
    spec: { provider, parameters: { objects }, ...extra },
  });
const sa = manifest('sa', {
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name: 'nginx-spc-sa', annotations: { 'cce.io/dew-resource': '["secret_1","secret_2"]' } },
});

const emulator = new CsmsEmulator({
  projectId,
  credentials: [creds],
  secrets: [
    { name: 'secret_1', versions: ['first-value', 'second-value'] },
    { name: 'secret_2', versions: ['{"key1":"alice","key2":"bob"}'] },
  ],
});
let endpoint: string;
before(async () => {
  endpoint = await emulator.listen();
});
after(() => emulator.close());

async function mount(...args: string[]): Promise<{ code: number; out: string }> {
  const env = { ...process.env, HUAWEICLOUD_SDK_AK: creds.accessKey, HUAWEICLOUD_SDK_SK: creds.secretKey };
  return run(executable, ['mount', `--csms-endpoint=${endpoint}`, `--project-id=${projectId}`, ...args], {
    env,
  }).then(
    (r) => ({ code: 0, out: r.stdout }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  );
}

it('mounts the seed SPC into a folder and prints the SPCPS a pod would get', async () => {
  const target = join(dir, 'seed');
  const r = await mount(
    '--spc',
    spc(
      'spc-test',
      '- objectName: "secret_1"\n  objectAlias: "secret_test"\n  objectVersion: "v1"\n  objectType: "csms"\n',
    ),
    '--service-account',
    sa,
    '--target',
    target,
  );
  assert.equal(r.code, 0, r.out);
  assert.equal(await readFile(join(target, 'secret_test'), 'utf8'), 'first-value');
  assert.match(r.out, /secret_1 \(v1\) -> secret_test/);
  assert.match(r.out, /name: mount-cli-default-spc-test[\s\S]*objects:\n\s+- id: secret_1\n\s+version: v1/);
  assert.ok(!r.out.includes('first-value'), 'the value is not printed');
});

it('reads CSMS as the driver does, --csms-max-response-bytes included: a larger reply writes nothing', async () => {
  const target = join(dir, 'capped');
  const r = await mount(
    '--spc',
    spc('capped', '- {objectName: secret_1, objectVersion: v1, objectType: csms}'),
    '--service-account',
    sa,
    '--target',
    target,
    '--csms-max-response-bytes=50',
  );
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /with more than 50 bytes, over the limit set by --csms-max-response-bytes/);
  assert.equal(existsSync(join(target, 'secret_1')), false);
});

it('extracts JMESPath keys and names the Secret it would sync', async () => {
  const target = join(dir, 'jmes');
  const r = await mount(
    '--spc',
    spc(
      'jmes',
      '- objectName: secret_2\n  objectType: csms\n  objectVersion: latest\n  jmesPath:\n    - {path: key1, objectAlias: dbusername01}\n    - {path: key2, objectAlias: dbusername02}\n',
      {
        secretObjects: [
          {
            secretName: 'my-secret-01',
            type: 'Opaque',
            data: [
              { objectName: 'dbusername01', key: 'db_username_01' },
              { objectName: 'dbusername02', key: 'db_username_02' },
            ],
          },
        ],
      },
    ),
    '--allow',
    'secret_2',
    '--target',
    target,
  );
  assert.equal(r.code, 0, r.out);
  assert.equal(await readFile(join(target, 'dbusername02'), 'utf8'), 'bob');
  assert.match(
    r.out,
    /Kubernetes Secret it would sync: my-secret-01 \(Opaque\) with keys db_username_01, db_username_02/,
  );
});

it('mounts a tmpfs first with --tmpfs, as the driver does', async () => {
  const target = join(dir, 'tmpfs');
  const r = await mount(
    '--spc',
    spc('tmpfs', '- {objectName: secret_1, objectType: csms, objectVersion: v2}'),
    '--allow',
    'secret_1',
    '--target',
    target,
    '--tmpfs',
  );
  try {
    assert.equal(r.code, 0, r.out);
    assert.match(await readFile('/proc/self/mounts', 'utf8'), new RegExp(`^cce-secrets-manager ${target} tmpfs `, 'm'));
    assert.equal(await readFile(join(target, 'secret_1'), 'utf8'), 'second-value');
  } finally {
    await run('umount', [target]).catch(() => undefined);
  }
});

it('checks without fetching or writing on --dry-run', async () => {
  const before = emulator.store.total;
  const target = join(dir, 'dry');
  const r = await mount(
    '--spc',
    spc('dry', '- {objectName: secret_1, objectType: csms, objectVersion: latest}'),
    '--allow',
    'secret_1',
    '--target',
    target,
    '--dry-run',
  );
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /dry run: the SPC is valid/);
  assert.equal(emulator.store.total, before);
  assert.equal(existsSync(target), false);
});

const failures: [string, string, string[], string, RegExp][] = [
  [
    'bad-type',
    '- {objectName: secret_1, objectType: kms, objectVersion: v1}',
    [],
    'InvalidArgument',
    /object "secret_1": objectType must be "csms"/,
  ],
  [
    'dup',
    '- {objectName: secret_1, objectType: csms, objectVersion: v1}\n- {objectName: secret_1, objectType: csms, objectVersion: v2}',
    [],
    'InvalidArgument',
    /objectName "secret_1" appears twice/,
  ],
  [
    'bad-version',
    '- {objectName: secret_1, objectType: csms, objectVersion: current}',
    [],
    'InvalidArgument',
    /objectVersion must be "v1", "v2", \.\.\. or "latest"/,
  ],
  [
    'own-alias',
    '- {objectName: secret_1, objectAlias: secret_1, objectType: csms, objectVersion: v1}',
    [],
    'InvalidArgument',
    /must differ from its own objectName/,
  ],
  [
    'other-alias',
    '- {objectName: secret_1, objectType: csms, objectVersion: v1}\n- {objectName: secret_2, objectAlias: secret_1, objectType: csms, objectVersion: v1}',
    [],
    'InvalidArgument',
    /equals the objectName of another object/,
  ],
  [
    'escape',
    '- {objectName: secret_1, objectAlias: ../x, objectType: csms, objectVersion: v1}',
    [],
    'InvalidArgument',
    /is not a plain file name/,
  ],
  [
    'backslash',
    '- {objectName: secret_2, objectType: csms, objectVersion: v1, jmesPath: [{path: "a\\\\b", objectAlias: x}]}',
    [],
    'InvalidArgument',
    /must not contain a backslash/,
  ],
  [
    'multiplying',
    `- {objectName: secret_2, objectType: csms, objectVersion: v1, jmesPath: [{path: "${Array(40).fill('[@,@]').join('|')}", objectAlias: x}]}`,
    [],
    'InvalidArgument',
    /jmesPath\[0\]\.path .* could build up to \d+ copies of the secret's value; at most 64 are allowed/,
  ],
  [
    'typo',
    '- {objectName: secret_1, objectType: csms, objectVerison: v1}',
    [],
    'InvalidArgument',
    /unknown field "objectVerison"/,
  ],
  [
    'not-allowed',
    '- {objectName: secret_3, objectType: csms, objectVersion: v1}',
    [],
    'PermissionDenied',
    /secret "secret_3" is not allowed for ServiceAccount default\/nginx-spc-sa/,
  ],
  [
    'missing',
    '- {objectName: secret_2, objectType: csms, objectVersion: v7}',
    [],
    'NotFound',
    /secret "secret_2" version "v7" does not exist in CSMS/,
  ],
  [
    'bad-sync',
    '- {objectName: secret_1, objectType: csms, objectVersion: v1}',
    ['sync'],
    'InvalidArgument',
    /secretObjects\[0\] \(Secret "s"\) data\[0\]\.objectName "nope" is not a file of the volume; use one of: secret_1/,
  ],
  [
    'vault',
    '- {objectName: secret_1, objectType: csms, objectVersion: v1}',
    ['vault'],
    'FailedPrecondition',
    /spec.provider is "vault"/,
  ],
];
for (const [name, objects, flags, code, pattern] of failures) {
  it(`fails like a pod would: ${name}`, async () => {
    const extra = flags.includes('sync')
      ? { secretObjects: [{ secretName: 's', data: [{ objectName: 'nope', key: 'k' }] }] }
      : {};
    const r = await mount(
      '--spc',
      spc(name, objects, extra, flags.includes('vault') ? 'vault' : 'cce'),
      '--service-account',
      sa,
      '--target',
      join(dir, `fail-${name}`),
    );
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, new RegExp(`error: rpc error: code = ${code} desc = `));
    assert.match(r.out, pattern);
  });
}

it('refuses missing flags with a usage message', async () => {
  const r = await mount(
    '--spc',
    spc('ok', '- {objectName: secret_1, objectType: csms, objectVersion: v1}'),
    '--target',
    join(dir, 'x'),
  );
  assert.equal(r.code, 2);
  assert.match(r.out, /give the allow-list: --service-account FILE or --allow/);
});
