// The webhook's decisions without a cluster: what is refused (with the mount-time message),
// what passes, and what only warns.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  reviewSecretSync,
  reviewServiceAccount,
  reviewSpc,
  type SpcReviewContext,
} from '../../src/admission/review.js';
import type { SecretProviderClass, SecretSync } from '../../src/crds/types.js';
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
  namespacePolicy: 'off',
  namespaceAnnotations: async () => ({ 'cce.io/dew-resource-permitted': '["db", "team-*"]' }),
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

it('checks the allow-list annotation only where there is one', async () => {
  const sa = (value?: string) => {
    const annotations: Record<string, string> = value === undefined ? {} : { 'cce.io/dew-resource': value };
    return { metadata: { name: 'sa', namespace: 'ns', annotations } };
  };
  assert.equal((await reviewServiceAccount(sa(), ctx())).allowed, true);
  assert.equal((await reviewServiceAccount(sa('["a"]'), ctx())).allowed, true);
  const bad = await reviewServiceAccount(sa('{"a": 1}'), ctx());
  assert.equal(bad.allowed, false);
  assert.match(
    bad.message!,
    /ServiceAccount ns\/sa: annotation cce\.io\/dew-resource must be a JSON array of secret names/,
  );
});

const saWith = (names: string[]) => ({
  metadata: { name: 'sa', namespace: 'ns', annotations: { 'cce.io/dew-resource': JSON.stringify(names) } },
});

it('under enforce, refuses an SPC or an allow-list naming a secret the Namespace does not permit', async () => {
  const enforce = ctx({ namespacePolicy: 'enforce' });
  assert.deepEqual(await reviewSpc(spc(ok), enforce), { allowed: true, warnings: [] });
  const other = await reviewSpc(spc('- {objectName: other-db, objectType: csms, objectVersion: v1}'), enforce);
  assert.equal(other.allowed, false);
  assert.match(
    other.message!,
    /^Namespace ns does not permit CSMS secret "other-db" \(its cce.io\/dew-resource-permitted annotation is \["db","team-\*"\]\); a cluster admin permits it with: kubectl annotate namespace ns cce.io\/dew-resource-permitted='\["db","team-\*","other-db"\]' --overwrite \(namespace policy enforce\)$/,
  );
  assert.equal((await reviewServiceAccount(saWith(['db', 'team-x']), enforce)).allowed, true);
  const sa = await reviewServiceAccount(saWith(['db', 'other-db']), enforce);
  assert.equal(sa.allowed, false);
  assert.match(
    sa.message!,
    /^ServiceAccount ns\/sa: annotation cce.io\/dew-resource: Namespace ns does not permit CSMS secret "other-db"/,
  );
});

it('under enforce, an allow-list edit is refused only for the names it adds; older ones are warned about', async () => {
  const enforce = ctx({ namespacePolicy: 'enforce' });
  const kept = await reviewServiceAccount(saWith(['other-db', 'db']), enforce, saWith(['other-db']));
  assert.equal(kept.allowed, true);
  assert.match(kept.warnings[0], /^ServiceAccount ns\/sa: Namespace ns does not permit CSMS secret "other-db"/);
  assert.match(kept.warnings[0], /pods using it are refused \(namespace policy enforce\)$/);
  assert.equal(
    (await reviewServiceAccount(saWith(['other-db', 'new-db']), enforce, saWith(['other-db']))).allowed,
    false,
  );
});

it('under audit, warns about what the permit does not cover; a Namespace without a permit permits nothing', async () => {
  const audit = ctx({ namespacePolicy: 'audit', namespaceAnnotations: async () => undefined });
  const v = await reviewSpc(spc(ok), audit);
  assert.equal(v.allowed, true);
  assert.match(
    v.warnings[0],
    /SecretProviderClass ns\/spc: Namespace ns does not permit CSMS secret "db" \(it has no cce.io\/dew-resource-permitted annotation\).*under enforce they are refused$/,
  );
  const sa = await reviewServiceAccount(saWith(['db']), audit);
  assert.equal(sa.allowed, true);
  assert.equal(sa.warnings.length, 1);
});

it('with the policy off, reads no Namespace', async () => {
  const off = ctx({ namespaceAnnotations: () => Promise.reject(new Error('read')) });
  assert.equal((await reviewSpc(spc('- {objectName: x, objectType: csms, objectVersion: v1}'), off)).allowed, true);
  assert.equal((await reviewServiceAccount(saWith(['x']), off)).allowed, true);
});

it('refuses a usePodIdentity that is neither "true" nor "false" at apply, as a mount would', async () => {
  const withParam = (value: string): SecretProviderClass => {
    const s = spc(ok);
    s.spec.parameters = { ...s.spec.parameters, usePodIdentity: value };
    return s;
  };
  assert.equal((await reviewSpc(withParam('true'), ctx())).allowed, true);
  const v = await reviewSpc(withParam('yes'), ctx());
  assert.equal(v.allowed, false);
  assert.match(v.message ?? '', /spec\.parameters\.usePodIdentity must be "true" or "false", got "yes"/);
});

it('holds a new or changed SecretSync spec to the rules, and lets a stored one be edited and deleted', () => {
  const sync = (type: string, extra: Partial<SecretSync['metadata']> = {}): SecretSync => ({
    metadata: { name: 'db', namespace: 'shop', ...extra },
    spec: {
      secretProviderClassName: 'db',
      serviceAccountName: 'app',
      secretObject: { type, data: [{ sourcePath: 'pw', targetKey: 'pw' }] },
    },
  });
  const bad = sync('kubernetes.io/service-account-token');
  assert.equal(reviewSecretSync(bad).allowed, false);
  assert.equal(reviewSecretSync(bad, sync('Opaque')).allowed, false, 'a spec changed to a refused one');
  assert.equal(reviewSecretSync({ ...bad, metadata: { ...bad.metadata, labels: { a: 'b' } } }, bad).allowed, true);
  assert.equal(
    reviewSecretSync(sync('kubernetes.io/service-account-token', { deletionTimestamp: 'now' }), bad).allowed,
    true,
  );
  assert.match(
    reviewSecretSync({ metadata: { name: 'x', namespace: 'shop' } } as SecretSync).message!,
    /spec is missing/,
  );
  assert.equal(reviewSecretSync(sync('Opaque')).allowed, true);
});
