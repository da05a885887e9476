// The Namespace permit's rules without a cluster: patterns, malformed annotations, the
// decision under each policy, and the admin's command in the message.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  checkNamespacePermit,
  decidePermit,
  globMatch,
  parsePermit,
  permitMessage,
} from '../../src/access/namespace-permit.js';
import { NotPermittedError } from '../../src/errors.js';

const permit = (value: string) => ({ 'cce.io/dew-resource-permitted': value });

it('matches * as any run of characters and nothing else as special', () => {
  const cases: [string, string, boolean][] = [
    ['team-a-*', 'team-a-db', true],
    ['team-a-*', 'team-a-', true],
    ['team-a-*', 'team-b-db', false],
    ['*', 'anything', true],
    ['*-db', 'a-b-db', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'aXbY', false],
    ['exact', 'exact', true],
    ['exact', 'exactly', false],
    ['db.?', 'db.x', false],
    ['db.?', 'db.?', true],
    ['[ab]', 'a', false],
    ['a.b', 'aXb', false],
    ['**', '', true],
  ];
  for (const [pattern, name, expected] of cases)
    assert.equal(globMatch(pattern, name), expected, `${pattern} ~ ${name}`);
});

it('takes time linear in the name for a pattern of many stars', () => {
  const pattern = `${'a*'.repeat(32)}b`;
  const name = 'a'.repeat(64);
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) assert.equal(globMatch(pattern, name), false);
  // Backtracking regexes take seconds on this; the matcher does 100 in well under one.
  assert.ok(performance.now() - t0 < 1000);
});

it('permits nothing, and says why, for a missing or malformed annotation', () => {
  assert.match(parsePermit(undefined).problem!, /has no cce.io\/dew-resource-permitted annotation/);
  assert.match(parsePermit('team-a-*').problem!, /is not JSON/);
  assert.match(parsePermit('{"a": 1}').problem!, /is not a JSON array/);
  assert.match(parsePermit('["a", 3]').problem!, /entry 1 not a string/);
  assert.match(parsePermit('["a", ""]').problem!, /entry 1 an empty pattern/);
  assert.deepEqual(parsePermit('["a", "b-*"]'), { patterns: ['a', 'b-*'] });
  assert.deepEqual(decidePermit('ns', permit('["a", ""]'), ['a']).denied, ['a'], 'a malformed permit covers nothing');
});

it('refuses under enforce with the exact command, returns the decision under audit, checks nothing when off', () => {
  const annotations = permit('["team-b-*"]');
  assert.equal(checkNamespacePermit('enforce', 'team-b', annotations, ['team-b-db']), undefined);
  assert.throws(
    () => checkNamespacePermit('enforce', 'team-b', annotations, ['team-a-db-password', 'team-b-db']),
    (err: Error) =>
      err instanceof NotPermittedError &&
      err.message ===
        `Namespace team-b does not permit CSMS secret "team-a-db-password" (its cce.io/dew-resource-permitted annotation is ["team-b-*"]); a cluster admin permits it with: kubectl annotate namespace team-b cce.io/dew-resource-permitted='["team-b-*","team-a-db-password"]' --overwrite (namespace policy enforce)`,
  );
  assert.deepEqual(checkNamespacePermit('audit', 'team-b', annotations, ['x'])?.denied, ['x']);
  assert.equal(checkNamespacePermit('off', 'team-b', undefined, ['x']), undefined);
});

it('offers no command that would turn a name a team wrote into a pattern', () => {
  const m = permitMessage(decidePermit('ns', permit('["ns-*"]'), ['*', 'db']));
  assert.match(m, /does not permit CSMS secret "\*", "db" .*; only CSMS secret names .* can be permitted$/);
  assert.doesNotMatch(m, /kubectl annotate/);
});

it('quotes the command for the shell and bounds the names it lists', () => {
  const quoted = permitMessage(decidePermit('ns', permit(`["it's"]`), ['db']));
  assert.ok(quoted.includes(`cce.io/dew-resource-permitted='["it'\\''s","db"]' --overwrite`), quoted);
  const many = Array.from({ length: 25 }, (_, i) => `s${i}`);
  const long = permitMessage(decidePermit('ns', undefined, many));
  assert.match(
    long,
    /"s9" and 15 more \(it has no cce.io\/dew-resource-permitted annotation\); a cluster admin adds them/,
  );
  assert.ok(long.length < 600);
});
