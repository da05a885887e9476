// The budget of a jmesPath entry, a namespace user's expression run on the node: its shape
// when the SPC is parsed, its time and its result's size when it is evaluated.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expressionGrowth, JmesPathEvaluator, MAX_COPIES } from '../../src/crds/jmespath.js';
import { parseSecretObjects } from '../../src/crds/objects.js';
import { TooLargeError } from '../../src/errors.js';
import { buildVolumeContent, DEFAULT_VOLUME_LIMITS } from '../../src/provider/volume-content.js';

const spcWith = (path: string) =>
  `- objectName: db\n  objectType: csms\n  objectVersion: v1\n  jmesPath:\n    - path: ${JSON.stringify(path)}\n      objectAlias: out\n`;
const refused = (path: string) => {
  assert.throws(
    () => parseSecretObjects('ns/spc', spcWith(path)),
    (e: Error) => /could build .* of the secret's value; at most 64 are allowed/.test(e.message),
    path,
  );
};

describe('the shape of an expression, checked when the SPC is parsed', () => {
  it('refuses expressions that multiply their input past the limit', () => {
    refused(Array(7).fill('[@,@]').join(' | ')); // 128 copies
    refused(Array(40).fill('[@,@]').join(' | ')); // the attack: 2^40
    refused(`{${Array.from({ length: 65 }, (_, i) => `k${i}: @`).join(', ')}}`);
    refused('[*].[@,@] | [*].[@,@] | [*].[@,@] | [*].[@,@] | [*].[@,@] | [*].[@,@] | [*].[@,@]');
    refused(`[*].[\`${JSON.stringify('x'.repeat(100))}\`]`); // a big literal for every element
    refused('join(to_string(@), keys(@))'); // a separator taken from the input, once per element
    refused(
      Array(7)
        .fill('to_string([@])')
        .reduce((inner, _) => `to_string([${inner}])`, '@'),
    ); // escapes double
    const eight = `join('', [${Array(8).fill('@').join(',')}])`;
    refused(`length(${eight} | ${eight} | ${eight})`); // a part thrown away is built first
    refused(`items[?length(${eight} | ${eight} | ${eight}) > \`0\`]`); // in a filter's condition
    refused(`sort_by(items, &length(${eight} | ${eight} | ${eight}))`); // in a sort key
    refused('[*].[&a.b.c]'); // an &expression's value is its syntax tree
    refused('[*].to_string(&@)');
  });

  it('accepts the expressions people write', () => {
    for (const path of [
      'key1',
      'data.password',
      'list[1]',
      '{user: username, pass: password}',
      'items[?enabled].name',
      'join(`,`, hosts)',
      'to_string(port)',
      'db-user+(x){y}',
      'map(&name, items)',
      'sort_by(items, &n)[0]',
    ])
      assert.doesNotThrow(() => parseSecretObjects('ns/spc', spcWith(path)), path);
    assert.equal(expressionGrowth('db-user+(x){y}'), undefined, 'not an expression: an exact key only');
    assert.ok(expressionGrowth(Array(6).fill('[@,@]').join('|'))!.copies <= MAX_COPIES);
  });
});

describe('evaluation under the budget', () => {
  const big = JSON.stringify({ items: Array.from({ length: 200_000 }, (_, i) => ({ n: i, s: `v${i}` })) });

  it('stops an expression past the time budget', () => {
    const jmes = new JmesPathEvaluator({ budgetMs: 5, maxFileBytes: 64 * 1024 * 1024 });
    assert.throws(
      () =>
        jmes.extract(
          'SecretProviderClass ns/spc: object "db"',
          'sort_by(items, &to_string(n))',
          JSON.parse(big),
          big.length,
        ),
      (e: Error) =>
        e instanceof TooLargeError &&
        /took longer than the 5 ms the volume's expressions may take together/.test(e.message),
    );
  });

  it('refuses a result over the file limit, and a value it could grow past four times that, before evaluating', () => {
    const jmes = new JmesPathEvaluator({ budgetMs: 1000, maxFileBytes: 1024 });
    const value = JSON.stringify({ a: 'x'.repeat(2000), b: 'y' });
    assert.throws(
      () => jmes.extract('SecretProviderClass ns/spc: object "db"', 'a', JSON.parse(value), value.length),
      /object "db": jmesPath "a" makes a file of 2000 bytes, over the file limit of 1024 bytes \(--max-file-bytes\)/,
    );
    assert.equal(jmes.extract('w', 'b', JSON.parse(value), value.length).toString(), 'y');
    assert.throws(
      () => jmes.extract('w', '[@,@,@]', JSON.parse(value), value.length),
      /could build values of up to \d+ bytes from this \d+-byte value, over 4 times the file limit/,
    );
  });

  it('shares the time budget across the entries of one volume', () => {
    const objects = parseSecretObjects(
      'ns/spc',
      `- objectName: db\n  objectType: csms\n  objectVersion: v1\n  jmesPath:\n${Array.from({ length: 20 }, (_, i) => `    - {path: "sort_by(items, &to_string(n))[${i}].s", objectAlias: f${i}}`).join('\n')}\n`,
    );
    const value = Buffer.from(
      JSON.stringify({ items: Array.from({ length: 20_000 }, (_, i) => ({ n: i, s: `v${i}` })) }),
    );
    assert.throws(
      () =>
        buildVolumeContent('ns/spc', objects, [{ name: 'db', versionId: 'v1', value }], {
          ...DEFAULT_VOLUME_LIMITS,
          jmesPathBudgetMs: 20,
        }),
      (e: Error) =>
        e instanceof TooLargeError &&
        /^SecretProviderClass ns\/spc: object "db": jmesPath .* took longer than the 20 ms/.test(e.message),
    );
  });
});

describe('the size of a volume', () => {
  it('bounds the volume: every file and all of them together', () => {
    const objects = parseSecretObjects(
      'ns/spc',
      '- {objectName: a, objectType: csms, objectVersion: v1}\n- {objectName: b, objectType: csms, objectVersion: v1}\n',
    );
    const values = ['a', 'b'].map((name) => ({ name, versionId: 'v1', value: Buffer.alloc(600, 'x') }));
    const limits = { ...DEFAULT_VOLUME_LIMITS, maxFileBytes: 1000, maxVolumeBytes: 1000 };
    assert.throws(
      () => buildVolumeContent('ns/spc', objects, values, limits),
      /SecretProviderClass ns\/spc: the volume's 2 files are 1200 bytes together, over the volume limit of 1000 bytes \(--max-volume-bytes\)/,
    );
    assert.throws(
      () => buildVolumeContent('ns/spc', objects, values, { ...limits, maxFileBytes: 500, maxVolumeBytes: 5000 }),
      /file "a" is 600 bytes, over the file limit of 500 bytes/,
    );
    assert.equal(buildVolumeContent('ns/spc', objects, values, { ...limits, maxVolumeBytes: 1200 }).files.size, 2);
  });
});
