// Pod identity against the emulator's CCE Pod Identity: a token traded for its own
// ServiceAccount's agency keys, kept per ServiceAccount and shared in flight, refused with
// the message an admin acts on, never another subject's keys, and never the node's identity
// for a volume that asks for its pod's.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, it } from 'node:test';
import { CsmsEmulator } from '../../src/emulator/server.js';
import { NotAllowedError, PreconditionError, StoreUnavailableError, UnauthenticatedError } from '../../src/errors.js';
import { CsmsClient } from '../../src/provider/csms-client.js';
import { PodIdentityExchange } from '../../src/provider/pod-identity.js';
import { VolumeCredentials } from '../../src/provider/volume-credentials.js';
import { CsmsVolumeSource } from '../../src/driver/csms-volume-source.js';
import { DEFAULT_VOLUME_LIMITS } from '../../src/provider/volume-content.js';
import { tokenSigner } from '../helpers/service-account-tokens.js';

const projectId = 'abcdefabcdefabcdefabcdefabcdef12';
const node = { accessKey: 'NODEAK', secretKey: 'node-sk' };
const signer = tokenSigner();
const emulator = new CsmsEmulator({
  projectId,
  credentials: [node],
  podIdentity: {
    clusterId: 'cluster-1',
    jwks: signer.jwks,
    associations: [
      { namespace: 'team-a', serviceAccount: 'app', agency: 'team-a-reader' },
      { namespace: 'team-b', serviceAccount: 'app', agency: 'team-b-reader' },
    ],
    agencies: [
      { name: 'team-a-reader', secrets: ['a-db'] },
      { name: 'team-b-reader', secrets: ['b-db'] },
    ],
  },
  secrets: [
    { name: 'a-db', versions: ['a-value'] },
    { name: 'b-db', versions: ['b-value'] },
  ],
});
let endpoint: string;
let csms: CsmsClient;

const exchange = (opts: { now?: () => number; endpoint?: string; clusterId?: string } = {}) =>
  new PodIdentityExchange({
    endpoint: opts.endpoint ?? endpoint,
    clusterId: opts.clusterId ?? 'cluster-1',
    projectId: () => Promise.resolve(projectId),
    node: { credentials: () => Promise.resolve(node) },
    timeoutMs: 500,
    now: opts.now,
  });
const exchanges = () => emulator.store.requestLog.filter((r) => r.what === 'POST assume-agency-for-pod-identity');
const teamA = { namespace: 'team-a', serviceAccount: 'app' };

before(async () => {
  endpoint = await emulator.listen();
  csms = new CsmsClient({ endpoint, projectId, maxAttempts: 1 });
});
after(() => emulator.close());

it("trades a token for its ServiceAccount's agency keys, which read that agency's secrets and no others", async () => {
  const creds = await exchange().credentials(teamA, signer.token('team-a', 'app'));
  assert.ok(creds.securityToken, 'temporary keys carry a security token');
  assert.notEqual(creds.accessKey, node.accessKey);
  assert.equal((await csms.getVersion('a-db', 'latest', creds)).value.toString(), 'a-value');
  await assert.rejects(csms.getVersion('b-db', 'latest', creds), (e: unknown) => {
    assert.ok(e instanceof NotAllowedError);
    assert.match(e.message, /agency team-a-reader may not read secret b-db/);
    return true;
  });
});

it('keeps keys per ServiceAccount, shares one exchange among concurrent mounts, and never across ServiceAccounts', async () => {
  const x = exchange();
  const before = exchanges().length;
  const [a1, a2, a3] = await Promise.all([1, 2, 3].map(() => x.credentials(teamA, signer.token('team-a', 'app'))));
  assert.equal(exchanges().length - before, 1, 'one exchange for three concurrent mounts');
  assert.deepEqual(a1, a2);
  assert.deepEqual(a1, a3);
  assert.deepEqual(await x.credentials(teamA, signer.token('team-a', 'app')), a1, 'kept');
  const b = await x.credentials({ namespace: 'team-b', serviceAccount: 'app' }, signer.token('team-b', 'app'));
  assert.notEqual(b.accessKey, a1.accessKey);
  assert.equal(exchanges().length - before, 2);
  assert.equal(x.size, 2);
});

it('exchanges again shortly before the keys expire, and serves kept keys through an outage while they are valid', async () => {
  let skew = 0;
  const now = () => Date.now() + skew;
  const x = exchange({ now });
  const first = await x.credentials(teamA, signer.token('team-a', 'app'));
  skew = 56 * 60_000; // the emulator's keys last an hour; renewal starts 5 minutes before
  const second = await x.credentials(teamA, signer.token('team-a', 'app'));
  assert.notEqual(second.accessKey, first.accessKey, 'renewed');

  // CCE goes away while keys are held: they serve until 30 s before they expire, then UNAVAILABLE.
  const cce = new CsmsEmulator({
    projectId,
    credentials: [node],
    podIdentity: emulator.store.podIdentity!.seed,
    secrets: [],
  });
  skew = 0;
  const y = exchange({ now, endpoint: await cce.listen() });
  const held = await y.credentials(teamA, signer.token('team-a', 'app'));
  await cce.close();
  skew = 58 * 60_000;
  assert.deepEqual(await y.credentials(teamA, signer.token('team-a', 'app')), held, 'kept keys through the outage');
  skew = 59 * 60_000 + 45_000;
  await assert.rejects(y.credentials(teamA, signer.token('team-a', 'app')), (e: unknown) => {
    assert.ok(e instanceof StoreUnavailableError);
    assert.match(
      e.message,
      /^CCE Pod Identity at http:\/\/127\.0\.0\.1:\d+ did not answer for ServiceAccount team-a\/app/,
    );
    return true;
  });
});

it('refuses with what to do: no association, a token CCE does not accept, an unknown cluster', async () => {
  const token = signer.token('team-c', 'app');
  await assert.rejects(exchange().credentials({ namespace: 'team-c', serviceAccount: 'app' }, token), (e: unknown) => {
    assert.ok(e instanceof NotAllowedError);
    assert.match(
      e.message,
      /^ServiceAccount team-c\/app has no pod identity association in cluster cluster-1 \(CCE\.01404001: .*\); a cluster admin associates it with an IAM agency .* namespace "team-c" and serviceAccount "app" \(if this cluster is not cluster-1, the admin fixes the driver.s --cluster-id, podIdentity\.clusterID\)$/,
    );
    assert.ok(!e.message.includes(token), 'the token is not quoted');
    return true;
  });
  const other = tokenSigner('other-key');
  await assert.rejects(exchange().credentials(teamA, other.token('team-a', 'app')), (e: unknown) => {
    assert.ok(e instanceof UnauthenticatedError);
    assert.match(
      e.message,
      /refused the ServiceAccount token of ServiceAccount team-a\/app .*not signed by the cluster's keys/,
    );
    return true;
  });
  const wrongAudience = signer.token('team-a', 'app', { aud: ['api'] });
  await assert.rejects(exchange().credentials(teamA, wrongAudience), /is not for audience service\.cce\.pods/);
  const expired = signer.token('team-a', 'app', { exp: Math.floor(Date.now() / 1000) - 5 });
  await assert.rejects(exchange().credentials(teamA, expired), UnauthenticatedError);
  await assert.rejects(
    exchange({ clusterId: 'cluster-9' }).credentials(teamA, signer.token('team-a', 'app')),
    /in cluster cluster-9 \(CCE\.01404002: .*\(if this cluster is not cluster-9, the admin fixes the driver's --cluster-id, podIdentity\.clusterID\)$/,
  );
});

it('uses no keys that CCE handed out for another subject than the one asked for', async () => {
  const liar: Server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const expiration = new Date(Date.now() + 3_600_000).toISOString();
    res.end(
      JSON.stringify({
        credentials: { accessKeyId: 'X', secretAccessKey: 'Y', securityToken: 'Z', expiration },
        subject: { namespace: 'team-b', serviceAccount: 'app' },
      }),
    );
  });
  await new Promise<void>((r) => liar.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(liar.address() as AddressInfo).port}`;
    await assert.rejects(
      exchange({ endpoint: url }).credentials(teamA, signer.token('team-a', 'app')),
      /with the credentials of another subject; they are not used/,
    );
  } finally {
    liar.close();
  }
});

it('a volume asking for pod identity is never read with the node identity, whatever fails', async () => {
  const nodeUsed: string[] = [];
  const fallback = { credentials: () => (nodeUsed.push('node'), Promise.resolve(node)) };
  const volume = {
    namespace: 'team-a',
    serviceAccount: 'app',
    what: 'Pod team-a/p volume "v"',
    secrets: {},
    usePodIdentity: true,
  };
  const off = new VolumeCredentials(fallback);
  await assert.rejects(off.forVolume(volume), (e: unknown) => {
    assert.ok(e instanceof PreconditionError);
    assert.match(
      e.message,
      /pod identity is not set up on this node: install the chart with podIdentity\.enabled=true/,
    );
    return true;
  });
  const on = new VolumeCredentials(fallback, { exchange: exchange(), required: false });
  await assert.rejects(on.forVolume(volume), (e: unknown) => {
    assert.ok(e instanceof PreconditionError);
    assert.match(
      e.message,
      /kubelet passed no ServiceAccount token for audience "service\.cce\.pods": add \{audience: service\.cce\.pods\} to spec\.tokenRequests of CSIDriver secrets-store\.csi\.k8s\.io/,
    );
    return true;
  });
  const required = new VolumeCredentials(fallback, { exchange: exchange(), required: true });
  await assert.rejects(
    required.forVolume({ ...volume, usePodIdentity: false, secrets: { access_key: 'A', secret_key: 'B' } }),
    /the driver runs with --require-pod-identity/,
    'not even a nodePublishSecretRef stands in for the pod identity',
  );
  const bad = { 'service.cce.pods': { token: tokenSigner('x').token('team-a', 'app') } };
  await assert.rejects(required.forVolume({ ...volume, tokens: bad }), UnauthenticatedError);
  assert.deepEqual(nodeUsed, [], "the node's identity read nothing");
  const good = { 'service.cce.pods': { token: signer.token('team-a', 'app') } };
  assert.ok((await required.forVolume({ ...volume, tokens: good })).securityToken);
  assert.deepEqual(await off.forVolume({ ...volume, usePodIdentity: false }), node, 'without pod identity: the node');
});

it('gives kept keys only to a token naming their ServiceAccount, and asks CCE once per refused token', async () => {
  const x = exchange();
  const kept = await x.credentials(teamA, signer.token('team-a', 'app'));
  // Another ServiceAccount's valid token, presented for team-a: CCE answers for team-b, which is refused.
  await assert.rejects(
    x.credentials(teamA, signer.token('team-b', 'app')),
    /answered ServiceAccount team-a\/app with the credentials of another subject; they are not used/,
  );
  await assert.rejects(
    x.credentials(teamA, 'not-a-token'),
    UnauthenticatedError,
    'no kept keys for a token naming nobody',
  );
  assert.deepEqual(await x.credentials(teamA, signer.token('team-a', 'app')), kept);
  const stranger = { namespace: 'team-c', serviceAccount: 'app' };
  const token = signer.token('team-c', 'app');
  const before = exchanges().length;
  for (let i = 0; i < 3; i++) await assert.rejects(x.credentials(stranger, token), NotAllowedError);
  assert.equal(exchanges().length - before, 1, 'a refusal is answered again without asking CCE');
});

it("a volume taken over after a restart waits for kubelet's token instead of failing its rotation", async () => {
  const fetched: string[] = [];
  const values = { fetch: async () => (fetched.push('read'), []) };
  const never = { credentials: () => Promise.reject(new Error('the node is never asked')) };
  const source = new CsmsVolumeSource(
    new VolumeCredentials(never, { exchange: exchange(), required: true }),
    DEFAULT_VOLUME_LIMITS,
    { info() {}, warn() {}, error() {}, v: () => ({ info() {} }) },
  );
  const plan = { objects: [{ objectName: 'a-db', objectVersion: 'latest', fileName: 'a-db' }], usePodIdentity: false };
  const request = { targetPath: '/t', podNamespace: 'team-a', serviceAccount: 'app', secrets: {} };
  const known = { request, digests: {} };
  const job = { plan, known, values, local: new Map(), req: request } as unknown as Parameters<typeof source.stale>[0];
  assert.equal(await source.stale(job), undefined);
  assert.deepEqual(fetched, [], 'nothing read, and no failure');
});
