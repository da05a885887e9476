// The SPC `objects` parser: every rule and its message, jmesPath, aliases and limits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSecretObjects, parseUsePodIdentity, type JmesPathEntry } from '../../src/crds/objects.js';
import { buildVolumeContent } from '../../src/provider/volume-content.js';

/** One jmesPath entry of object `s` over `value`, through the content builder the driver uses. */
function extractJmesPath(name: string, entry: JmesPathEntry, value: Buffer): Buffer {
  const object = {
    objectName: name,
    fileName: name,
    objectVersion: 'v1',
    objectType: 'csms' as const,
    jmesPath: [entry],
  };
  return buildVolumeContent('ns/spc', [object], [{ name, versionId: 'v1', value }]).files.get(entry.objectAlias)!;
}

import { InvalidSpcError } from '../../src/errors.js';

const ref = 'default/spc-test';
const parse = (yaml: string) => parseSecretObjects(ref, yaml);
function refuses(yaml: string | undefined, pattern: RegExp) {
  assert.throws(
    () => parseSecretObjects(ref, yaml),
    (err: Error) => {
      assert.ok(err instanceof InvalidSpcError, `expected InvalidSpcError, got ${err}`);
      assert.match(err.message, /^SecretProviderClass default\/spc-test: /);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

it('parses the seed example with an alias', () => {
  const objects = parse(
    '- objectName: "secret_1"\n  objectAlias: "secret_test"\n  objectVersion: "v1"\n  objectType: "csms"\n',
  );
  assert.deepEqual(objects, [
    { objectName: 'secret_1', fileName: 'secret_test', objectVersion: 'v1', objectType: 'csms', jmesPath: [] },
  ]);
});

it('defaults the file name to objectName and accepts latest and jmesPath', () => {
  const [o] = parse(
    '- objectName: secret_1\n  objectType: csms\n  objectVersion: latest\n  jmesPath:\n    - path: key1\n      objectAlias: dbusername01\n',
  );
  assert.equal(o.fileName, 'secret_1');
  assert.deepEqual(o.jmesPath, [{ path: 'key1', objectAlias: 'dbusername01' }]);
});

it('refuses an empty or missing objects parameter', () => refuses(undefined, /spec\.parameters\.objects is empty/));
it('refuses YAML that is not a list', () => refuses('objectName: a', /must be a non-empty YAML list/));
it('refuses broken YAML', () => refuses('- objectName: "a\n', /not valid YAML/));
it('refuses a missing objectName', () =>
  refuses('- objectType: csms\n  objectVersion: v1', /objects\[0\]\.objectName is required/));
it('refuses a duplicate objectName', () =>
  refuses(
    '- {objectName: a, objectType: csms, objectVersion: v1}\n- {objectName: a, objectType: csms, objectVersion: v2}',
    /objectName "a" appears twice/,
  ));
it('refuses an objectType other than csms', () =>
  refuses('- {objectName: a, objectType: kms, objectVersion: v1}', /object "a": objectType must be "csms".*got "kms"/));
it('refuses a missing objectType', () =>
  refuses('- {objectName: a, objectVersion: v1}', /objectType must be "csms".*got nothing/));
it('refuses a bad objectVersion', () => {
  for (const v of ['1', 'v0', 'V1', 'current', ''])
    refuses(
      `- {objectName: a, objectType: csms, objectVersion: "${v}"}`,
      /objectVersion must be "v1", "v2", \.\.\. or "latest"/,
    );
});
it('refuses an alias equal to its own objectName', () =>
  refuses(
    '- {objectName: a, objectAlias: a, objectType: csms, objectVersion: v1}',
    /must differ from its own objectName/,
  ));
it('refuses an alias equal to another objectName', () =>
  refuses(
    '- {objectName: a, objectType: csms, objectVersion: v1}\n- {objectName: b, objectAlias: a, objectType: csms, objectVersion: v1}',
    /object "b": objectAlias "a" equals the objectName of another object/,
  ));
it('refuses two objects writing the same file', () =>
  refuses(
    '- {objectName: a, objectAlias: f, objectType: csms, objectVersion: v1}\n- {objectName: b, objectAlias: f, objectType: csms, objectVersion: v1}',
    /writes file "f", which object "a" already writes/,
  ));
it('refuses file names that escape the volume', () => {
  for (const alias of ['../x', '/etc/passwd', 'a/b', '..data', '.']) {
    refuses(
      `- {objectName: a, objectAlias: "${alias}", objectType: csms, objectVersion: v1}`,
      /is not a plain file name/,
    );
  }
});
it('applies the file-name rule to an objectName that is the file name, and to jmesPath aliases', () => {
  for (const name of ['..data', '..', '.', '..x']) {
    refuses(
      `- {objectName: "${name}", objectType: csms, objectVersion: v1}`,
      /objectName \(the file name when there is no objectAlias\) .* is not a plain file name.*set an objectAlias/,
    );
  }
  // The same names are fine as CSMS names once an alias names the file.
  assert.equal(
    parse('- {objectName: "..data", objectAlias: data, objectType: csms, objectVersion: v1}')[0].fileName,
    'data',
  );
  refuses(
    '- {objectName: a, objectType: csms, objectVersion: v1, jmesPath: [{path: k, objectAlias: "..k"}]}',
    /jmesPath\[0\]\.objectAlias "\.\.k" is not a plain file name/,
  );
});
it('counts a file name in UTF-8 bytes, at most 255', () => {
  const ok = 'é'.repeat(127); // 254 bytes
  assert.equal(parse(`- {objectName: a, objectAlias: "${ok}", objectType: csms, objectVersion: v1}`)[0].fileName, ok);
  refuses(
    `- {objectName: a, objectAlias: "${'é'.repeat(128)}", objectType: csms, objectVersion: v1}`,
    /is 256 bytes in UTF-8, over the limit of 255/,
  );
  refuses(
    `- {objectName: a, objectAlias: "${'x'.repeat(256)}", objectType: csms, objectVersion: v1}`,
    /is 256 bytes in UTF-8/,
  );
});
it('refuses more files than a volume may have, and an oversized objects parameter', () => {
  const many = Array.from({ length: 101 }, (_, i) => `- {objectName: s${i}, objectType: csms, objectVersion: v1}`).join(
    '\n',
  );
  refuses(many, /make 101 files .* over the limit of 100 files per volume/);
  refuses(
    `# ${'x'.repeat(70_000)}\n- {objectName: a, objectType: csms, objectVersion: v1}`,
    /spec\.parameters\.objects is 700\d\d bytes, over the limit of 65536 bytes/,
  );
});
it('refuses a secret name CSMS cannot have', () =>
  refuses('- {objectName: "a/b", objectType: csms, objectVersion: v1}', /must be a CSMS secret name/));
it('refuses an unknown field, naming it', () =>
  refuses(
    '- {objectName: a, objectType: csms, objectVersion: v1, objectVerison: v2}',
    /unknown field "objectVerison"/,
  ));
it('refuses malformed jmesPath entries', () => {
  refuses('- {objectName: a, objectType: csms, objectVersion: v1, jmesPath: {path: x}}', /jmesPath must be a list/);
  refuses(
    '- {objectName: a, objectType: csms, objectVersion: v1, jmesPath: [{objectAlias: x}]}',
    /jmesPath\[0\]\.path is required/,
  );
  refuses(
    '- {objectName: a, objectType: csms, objectVersion: v1, jmesPath: [{path: x}]}',
    /jmesPath\[0\]\.objectAlias is required/,
  );
  refuses(
    '- {objectName: a, objectType: csms, objectVersion: v1, jmesPath: [{path: "a\\\\b", objectAlias: x}]}',
    /must not contain a backslash/,
  );
  refuses(
    '- {objectName: a, objectType: csms, objectVersion: v1, jmesPath: [{path: k, objectAlias: a}]}',
    /writes file "a"/,
  );
});

describe('jmesPath extraction', () => {
  const value = Buffer.from(
    JSON.stringify({ key1: 'alice', 'db-user+(x){y}': 'bob', nested: { port: 5432 }, list: [1, 2] }),
  );
  it('extracts plain keys and keys with special characters', () => {
    assert.equal(extractJmesPath('s', { path: 'key1', objectAlias: 'f' }, value).toString(), 'alice');
    assert.equal(extractJmesPath('s', { path: 'db-user+(x){y}', objectAlias: 'f' }, value).toString(), 'bob');
  });
  it('evaluates JMESPath expressions and serializes non-string results', () => {
    assert.equal(extractJmesPath('s', { path: 'nested.port', objectAlias: 'f' }, value).toString(), '5432');
    assert.equal(extractJmesPath('s', { path: 'nested', objectAlias: 'f' }, value).toString(), '{"port":5432}');
    assert.equal(extractJmesPath('s', { path: 'list[1]', objectAlias: 'f' }, value).toString(), '2');
  });
  it('fails clearly, without the value, on non-JSON values and empty results', () => {
    assert.throws(
      () => extractJmesPath('s', { path: 'k', objectAlias: 'f' }, Buffer.from('plain-secret-text')),
      (e: Error) =>
        /object "s": jmesPath "k" needs a JSON secret value/.test(e.message) &&
        !e.message.includes('plain-secret-text'),
    );
    assert.throws(
      () => extractJmesPath('s', { path: 'missing', objectAlias: 'f' }, value),
      /jmesPath "missing" selects nothing/,
    );
  });
});

describe('filePermission', () => {
  const withPerm = (object: string, entry = '') =>
    `- objectName: db\n  objectType: csms\n  objectVersion: v1\n${object}  jmesPath:\n    - path: user\n      objectAlias: db_user\n${entry}`;

  it('reads an octal string per object and per jmesPath entry', () => {
    const [o] = parse(withPerm('  filePermission: "0440"\n', '      filePermission: "400"\n'));
    assert.equal(o.mode, 0o440);
    assert.equal(o.jmesPath[0].mode, 0o400);
  });

  it('leaves the mode unset when not given (the volume default applies)', () => {
    const [o] = parse(withPerm(''));
    assert.equal(o.mode, undefined);
    assert.equal(o.jmesPath[0].mode, undefined);
  });

  it('refuses a number, a non-octal string and set-id bits, naming the field', () => {
    refuses(withPerm('  filePermission: 0440\n'), /object "db": filePermission must be an octal file mode in quotes/);
    refuses(withPerm('  filePermission: "0948"\n'), /object "db": filePermission must be an octal file mode/);
    refuses(withPerm('  filePermission: "4755"\n'), /got "4755"/);
    refuses(
      withPerm('', '      filePermission: "rw"\n'),
      /object "db": jmesPath\[0\]\.filePermission must be an octal/,
    );
  });
});

it('usePodIdentity is "true", "false" or unset; anything else is refused naming the SPC and the field', () => {
  assert.equal(parseUsePodIdentity('ns/spc', undefined), false);
  assert.equal(parseUsePodIdentity('ns/spc', 'false'), false);
  assert.equal(parseUsePodIdentity('ns/spc', 'true'), true);
  assert.throws(
    () => parseUsePodIdentity('ns/spc', 'yes'),
    /^InvalidSpcError: SecretProviderClass ns\/spc: spec\.parameters\.usePodIdentity must be "true" or "false", got "yes"$/,
  );
});
