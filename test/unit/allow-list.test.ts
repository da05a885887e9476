// The ServiceAccount allow-list: each way an annotation allows nothing or too little, with a
// message naming the ServiceAccount, the annotation and the fix; a long annotation is not
// quoted whole.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { allowedNames, checkAllowList } from '../../src/access/allow-list.js';
import { NotAllowedError } from '../../src/errors.js';

const A = 'cce.io/dew-resource';
const refusals: [string, Record<string, string> | undefined, string[], RegExp][] = [
  [
    'no annotation',
    undefined,
    ['s1'],
    /^ServiceAccount shop\/app has no cce.io\/dew-resource annotation.*add e.g. cce.io\/dew-resource: '\["s1"\]'/,
  ],
  ['not JSON', { [A]: 's1,s2' }, ['s1'], /must be a JSON array of secret names/],
  ['a JSON object', { [A]: '{"s1": true}' }, ['s1'], /must be a JSON array of secret names/],
  ['an entry not a string', { [A]: '["s1", 2]' }, ['s1'], /must be a JSON array of secret names/],
  [
    'an empty list',
    { [A]: '[]' },
    ['s1'],
    /secret "s1" is not allowed for ServiceAccount shop\/app: add it .* \(now \[\]\)/,
  ],
  ['two names missing', { [A]: '["s1"]' }, ['s1', 's2', 's3'], /secret "s2", "s3" is not allowed/],
  ['a name differing in case', { [A]: '["S1"]' }, ['s1'], /secret "s1" is not allowed/],
];
for (const [what, annotations, names, message] of refusals) {
  it(`refuses ${what}`, () => {
    assert.throws(
      () => checkAllowList('shop/app', annotations, names),
      (e: Error) => e instanceof NotAllowedError && message.test(e.message),
    );
  });
}

it('allows names the list holds, whatever else it holds', () => {
  checkAllowList('shop/app', { [A]: '["s2", "s1", "other"]' }, ['s1', 's2']);
  assert.deepEqual(allowedNames('["a","b"]'), ['a', 'b']);
  assert.equal(allowedNames('"a"'), undefined);
});

it('quotes at most 200 characters of the annotation, whole characters', () => {
  const emoji = `["${'🔑'.repeat(300)}"]`;
  assert.throws(
    () => checkAllowList('shop/app', { [A]: emoji }, ['absent']),
    (e: Error) =>
      e.message.includes(`["${'🔑'.repeat(198)}... (`) && !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(e.message),
  );
});

it('quotes at most 200 characters of a long annotation', () => {
  const huge = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => `name-${i}`));
  assert.throws(
    () => checkAllowList('shop/app', { [A]: huge }, ['absent']),
    (e: Error) => e.message.length < 600 && e.message.includes(`(${huge.length} characters)`),
  );
});
