// The webhook's decisions without a cluster: what is refused (with the mount-time message),
// what passes, and what only warns.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { reviewServiceAccount, reviewSpc, type SpcReviewContext } from '../../src/admission/review.js';
import type { SecretProviderClass } from '../../src/crds/types.js';
import { PreconditionError } from '../../src/errors.js';

const spc = (objects: string, provider = 'cce', extra = {}): SecretProviderClass => ({
  metadata: { name: 'spc', namespace: 'ns' },
  spec: { provider, parameters: { objects }, ...extra },
});
const ctx = (over: Partial<SpcReviewContext> = {}): SpcReviewContext => ({
  operation: 'CREATE',
  rotationEnabled: true,
  allowLists: async () => ['["db"]', undefined, 'not json'],
  checkNewSpc: async () => undefined,
  ...over,
});
const ok = '- {objectName: db, objectType: csms, objectVersion: v1}';

it('allows a valid SPC without warnings when a ServiceAccount allows its secrets', async () => {
  assert.deepEqual(await reviewSpc(spc(ok), ctx()), { allowed: true, warnings: [] });
});

it('refuses with the mount-time message, and passes other providers untouched', async () => {
  const v = await reviewSpc(spc('- {objectName: db, objectType: kms, objectVersion: v1}'), ctx());
  assert.equal(v.allowed, false);
  assert.match(v.message!, /^SecretProviderClass ns\/spc: object "db": objectType must be "csms"/);
  assert.equal((await reviewSpc(spc('garbage', 'vault'), ctx())).allowed, true);
});

it('applies the SPC limit on create only', async () => {
  const full = async (namespace: string, name: string) => {
    throw new PreconditionError(
      `SecretProviderClass ${namespace}/${name} exceeds the limit of 1 SecretProviderClasses in the cluster (there are 2)`,
    );
  };
  const created = await reviewSpc(spc(ok), ctx({ checkNewSpc: full }));
  assert.equal(created.allowed, false);
  assert.match(created.message!, /exceeds the limit of 1 SecretProviderClasses/);
  assert.equal((await reviewSpc(spc(ok), ctx({ checkNewSpc: full, operation: 'UPDATE' }))).allowed, true);
});

it('warns about unallowed secrets and latest objects with rotation off', async () => {
  const v = await reviewSpc(
    spc(`${ok}\n- {objectName: other, objectType: csms, objectVersion: latest}`),
    ctx({ rotationEnabled: false }),
  );
  assert.equal(v.allowed, true);
  assert.equal(v.warnings.length, 2);
  assert.match(v.warnings[0], /secret "other" is allowed by no ServiceAccount in namespace ns/);
  assert.match(v.warnings[1], /object "other" is at "latest" but secret rotation is off/);
});

it('checks the allow-list annotation only where there is one', () => {
  const sa = (value?: string) => {
    const annotations: Record<string, string> = value === undefined ? {} : { 'cce.io/dew-resource': value };
    return { metadata: { name: 'sa', namespace: 'ns', annotations } };
  };
  assert.equal(reviewServiceAccount(sa()).allowed, true);
  assert.equal(reviewServiceAccount(sa('["a"]')).allowed, true);
  const bad = reviewServiceAccount(sa('{"a": 1}'));
  assert.equal(bad.allowed, false);
  assert.match(
    bad.message!,
    /ServiceAccount ns\/sa: annotation cce\.io\/dew-resource must be a JSON array of secret names/,
  );
});
