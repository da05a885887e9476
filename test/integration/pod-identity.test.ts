// Per-pod cloud identity end to end: real ServiceAccount tokens from the API server
// (TokenRequest, audience service.cce.pods) in kubelet's volume context, the driver trading
// them at the emulator's CCE Pod Identity (which checks them against the API server's own
// keys), and CSMS reads authorised per agency. The emulator's request log proves which
// identity read what.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { PodIdentitySeed } from '../../src/emulator/pod-identity.js';
import { providerService, type MountRequest, type MountResponse } from '../../src/provider-api/protocol.js';
import {
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
  kubectl,
  podEvents,
} from '../helpers/cluster.js';
import { rejectsWith } from '../helpers/csi-client.js';
import { publishRequest, type DriverProcess } from '../helpers/driver.js';
import { ProviderProcess } from '../helpers/upstream-driver.js';
import { TEST_CREDS, TEST_CREDS_ENV, TEST_PROJECT_ID, withDriver } from '../helpers/with-driver.js';

const CLUSTER = 'test-cluster-1';
const AUDIENCE = 'service.cce.pods';
const fx = withDriver({
  name: 'pod-identity',
  secrets: [
    { name: 'a-db', versions: ['a-db-v1'] },
    { name: 'a-rotating', versions: ['rot-v1'] },
    { name: 'b-db', versions: ['b-db-v1'] },
    { name: 'shared', versions: ['shared-v1'] },
  ],
});
let ns: string;
let optIn: DriverProcess; // usePodIdentity per SPC
let required: DriverProcess; // --require-pod-identity
let seed: PodIdentitySeed;

const flags = () => [`--cluster-id=${CLUSTER}`, `--cce-endpoint=${fx.endpoint}`];
const token = async (sa: string) =>
  (await kubectl('create', 'token', sa, '-n', ns, '--audience', AUDIENCE, '--duration', '10m')).trim();
const tokens = async (sa: string) => ({
  'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify({
    [AUDIENCE]: { token: await token(sa), expirationTimestamp: new Date(Date.now() + 600_000).toISOString() },
  }),
});
/** kubelet's request for the pod's volume, with the tokens kubelet would pass. */
async function request(pod: string, sa: string, spc: string, root: string, withToken = true) {
  const p = await createPod(ns, pod, { nodeName: 'node-pi', serviceAccountName: sa, spc });
  const req = publishRequest(p, spc, root);
  if (withToken) Object.assign(req.volume_context, await tokens(sa));
  return req;
}
const publish = (d: DriverProcess, req: object) => d.kubelet.call('Node', 'NodePublishVolume', req);
const reads = () => fx.emulator.store.requestLog.filter((r) => r.what.startsWith('GET '));
/** Reads made with keys that are not a pod's agency: the node's, a secret ref's, anyone's. */
const nodeReads = () => reads().filter((r) => r.agency === undefined);

before(async () => {
  ns = await createNamespace('pod-identity');
  await fx.ready;
  // The API server's own token keys, as CCE trusts the cluster's.
  const jwks = JSON.parse(await kubectl('get', '--raw', '/openid/v1/jwks')) as PodIdentitySeed['jwks'];
  seed = {
    clusterId: CLUSTER,
    jwks,
    issuer: 'https://kubernetes.default.svc',
    associations: [
      { namespace: ns, serviceAccount: 'team-a', agency: 'team-a-reader' },
      { namespace: ns, serviceAccount: 'team-b', agency: 'team-b-reader' },
      { namespace: ns, serviceAccount: 'narrow', agency: 'narrow-reader' },
      // Only the rotation test uses it: no keys of it are kept from earlier tests.
      { namespace: ns, serviceAccount: 'rotator', agency: 'team-a-reader' },
    ],
    agencies: [
      { name: 'team-a-reader', secrets: ['a-db', 'a-rotating', 'shared'] },
      { name: 'team-b-reader', secrets: ['b-db', 'shared'] },
      { name: 'narrow-reader', secrets: ['b-db'] },
    ],
  };
  fx.emulator.store.setPodIdentity(seed);
  for (const sa of ['team-a', 'team-b', 'narrow', 'unassociated', 'rotator'])
    await createServiceAccount(ns, sa, ['a-db', 'a-rotating', 'b-db', 'shared']);
  const objects = (names: string[], version = 'v1') =>
    names.map((n) => `- {objectName: ${n}, objectType: csms, objectVersion: ${version}}`).join('\n');
  const withPodIdentity = (name: string, list: string) =>
    createSpc(ns, name, list, { parameters: { objects: list, usePodIdentity: 'true' } });
  await withPodIdentity('a', objects(['a-db']));
  await withPodIdentity('shared', objects(['shared']));
  await withPodIdentity('rotating', objects(['a-rotating'], 'latest'));
  await createSpc(ns, 'plain', objects(['a-db']));
  [optIn, required] = await Promise.all([
    fx.start({ nodeId: 'node-pi', extraArgs: [...flags(), '--rotation-poll-interval=1s'] }),
    fx.start({ nodeId: 'node-pi', extraArgs: [...flags(), '--require-pod-identity'] }),
  ]);
});
after(async () => {
  await deleteNamespace(ns);
});

it("mounts with the pod's own ServiceAccount agency, never reading CSMS as the node", async () => {
  const before = nodeReads().length;
  const req = await request('a1', 'team-a', 'a', fx.kubeletRoot);
  await publish(optIn, req);
  assert.equal(await readFile(join(req.target_path, 'a-db'), 'utf8'), 'a-db-v1');
  const last = reads().at(-1)!;
  assert.equal(last.agency, 'team-a-reader');
  assert.equal(last.what, 'GET a-db/v1');
  assert.equal(nodeReads().length, before, 'the node read nothing');
  const logs = optIn.logs;
  assert.doesNotMatch(logs, /eyJ/, 'no token in the log');
  assert.ok(!logs.includes(last.accessKey), 'no temporary key in the log');
});

it('refuses a ServiceAccount without an association, or whose agency may not read the secret, leaving nothing', async () => {
  const none = await request('u1', 'unassociated', 'a', fx.kubeletRoot);
  await rejectsWith(
    publish(optIn, none),
    status.PERMISSION_DENIED,
    new RegExp(
      `ServiceAccount ${ns}/unassociated has no pod identity association in cluster ${CLUSTER} .*namespace "${ns}" and serviceAccount "unassociated"`,
    ),
  );
  assert.equal(existsSync(none.target_path), false);
  const narrow = await request('n1', 'narrow', 'a', fx.kubeletRoot);
  await rejectsWith(
    publish(optIn, narrow),
    status.PERMISSION_DENIED,
    /CSMS denied access to secret "a-db" version "v1" \(CSMS\.0403: agency narrow-reader may not read secret a-db\)/,
  );
  assert.equal(existsSync(narrow.target_path), false);
});

it('refuses a pod whose volumeAttributes pose as kubelet, e.g. with tokens of its own', async () => {
  const forged = {
    'csi.storage.k8s.io/serviceAccount.tokens': '{"service.cce.pods":{"token":"x","expirationTimestamp":"y"}}',
  };
  const pod = await createPod(ns, 'forger', {
    nodeName: 'node-pi',
    serviceAccountName: 'team-a',
    spc: 'a',
    volumeAttributes: forged,
  });
  const req = publishRequest(pod, 'a', fx.kubeletRoot);
  // What kubelet sends without tokenRequests: the pod's own attributes, passed on.
  Object.assign(req.volume_context, forged);
  await rejectsWith(
    publish(optIn, req),
    status.INVALID_ARGUMENT,
    /sets volumeAttributes\["csi\.storage\.k8s\.io\/serviceAccount\.tokens"\], which only kubelet sets/,
  );
});

it("refuses a pod-identity volume without kubelet's token, naming the CSIDriver's tokenRequests", async () => {
  const req = await request('t1', 'team-a', 'a', fx.kubeletRoot, false);
  await rejectsWith(
    publish(optIn, req),
    status.FAILED_PRECONDITION,
    /kubelet passed no ServiceAccount token for audience "service\.cce\.pods": add \{audience: service\.cce\.pods\} to spec\.tokenRequests/,
  );
});

it('never shares credentials or reads between two ServiceAccounts of one node', async () => {
  const a = await request('s-a', 'team-a', 'shared', fx.kubeletRoot);
  const b = await request('s-b', 'team-b', 'shared', fx.kubeletRoot);
  const before = reads().length;
  await Promise.all([publish(optIn, a), publish(optIn, b)]);
  const sharedReads = reads()
    .slice(before)
    .filter((r) => r.what === 'GET shared/v1');
  assert.deepEqual(sharedReads.map((r) => r.agency).sort(), ['team-a-reader', 'team-b-reader'], 'one read each');
  assert.notEqual(sharedReads[0].accessKey, sharedReads[1].accessKey);
});

it('--require-pod-identity: an SPC that does not ask for it is still read as the pod, and the node reads nothing', async () => {
  const before = nodeReads().length;
  const exchangesBefore = fx.emulator.store.requestLog.length;
  const req = await request('r1', 'team-a', 'plain', fx.kubeletRoot);
  await publish(required, req);
  assert.equal(await readFile(join(req.target_path, 'a-db'), 'utf8'), 'a-db-v1');
  const since = fx.emulator.store.requestLog.slice(exchangesBefore);
  assert.ok(
    since.some((r) => r.what === 'POST assume-agency-for-pod-identity' && r.accessKey === TEST_CREDS.accessKey),
  );
  assert.ok(since.filter((r) => r.what.startsWith('GET ')).every((r) => r.agency === 'team-a-reader'));
  assert.equal(nodeReads().length, before);
  const noToken = await request('r2', 'team-a', 'plain', fx.kubeletRoot, false);
  await rejectsWith(publish(required, noToken), status.FAILED_PRECONDITION, /--require-pod-identity/);
});

it("rotates past its token's and its keys' expiry with the tokens of kubelet's republish, and never as the node", async () => {
  fx.emulator.store.setPodIdentity({ ...seed, credentialTtlSeconds: 2, maxTokenAgeSeconds: 3 });
  try {
    const req = await request('rot', 'rotator', 'rotating', fx.kubeletRoot);
    await publish(optIn, req);
    const file = join(req.target_path, 'a-rotating');
    const before = nodeReads().length;
    fx.emulator.store.addVersion('a-rotating', { secret_string: 'rot-v2' });
    await eventually('v2 rotated in', async () => ((await readFile(file, 'utf8')) === 'rot-v2' ? true : undefined));
    // Past the token's age and the keys' lifetime, with no republish: rotation fails, the files stay.
    await new Promise((r) => setTimeout(r, 3_500));
    fx.emulator.store.addVersion('a-rotating', { secret_string: 'rot-v3' });
    await eventually('a refused rotation', async () =>
      (await podEvents(ns, 'rot')).some((e) => e.reason === 'SecretRotationFailed') ? true : undefined,
    );
    assert.equal(await readFile(file, 'utf8'), 'rot-v2', 'the last good files stay');
    // kubelet's republish brings a fresh token: rotation goes on.
    await publish(optIn, { ...req, volume_context: { ...req.volume_context, ...(await tokens('rotator')) } });
    await eventually('v3 rotated in', async () => ((await readFile(file, 'utf8')) === 'rot-v3' ? true : undefined));
    assert.equal(nodeReads().length, before, 'no rotation fell back to the node identity');
    const failures = (await podEvents(ns, 'rot')).filter((e) => e.reason === 'SecretRotationFailed');
    assert.equal(failures.length, 1, 'one Event, not one per cycle');
    assert.match(failures[0].message ?? '', /CCE Pod Identity refused the ServiceAccount token of ServiceAccount/);
    assert.doesNotMatch(failures.map((e) => e.message).join('\n'), /eyJ/);
  } finally {
    fx.emulator.store.setPodIdentity(seed);
  }
});

it('the provider command, behind the upstream driver, reads with the same pod identity', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cce-pi-provider-'));
  const provider = new ProviderProcess(
    dir,
    [`--csms-endpoint=${fx.endpoint}`, `--project-id=${TEST_PROJECT_ID}`, ...flags()],
    TEST_CREDS_ENV,
  );
  await provider.start();
  const Client = providerService();
  const client = new Client(`unix:${provider.socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Mount(req: MountRequest, cb: (err: grpc.ServiceError | null, res: MountResponse) => void): void;
  };
  const mount = (attributes: Record<string, string>) =>
    new Promise<MountResponse>((resolve, reject) =>
      client.Mount(
        {
          attributes: JSON.stringify(attributes),
          secrets: 'null',
          target_path: join(dir, 'target'),
          permission: '420',
          current_object_version: [],
        },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
  const attributes = {
    objects: '- {objectName: b-db, objectType: csms, objectVersion: v1}',
    usePodIdentity: 'true',
    secretProviderClass: 'b',
    'csi.storage.k8s.io/pod.name': 'upstream-pod',
    'csi.storage.k8s.io/pod.namespace': ns,
    'csi.storage.k8s.io/pod.uid': '00000000-0000-0000-0000-000000000001',
    'csi.storage.k8s.io/serviceAccount.name': 'team-b',
  };
  try {
    const before = nodeReads().length;
    const res = await mount({ ...attributes, ...(await tokens('team-b')) });
    assert.equal(Buffer.from(res.files[0].contents).toString(), 'b-db-v1');
    assert.equal(reads().at(-1)!.agency, 'team-b-reader');
    assert.equal(nodeReads().length, before);
    await assert.rejects(mount(attributes), /kubelet passed no ServiceAccount token for audience "service\.cce\.pods"/);
  } finally {
    client.close();
    await provider.stop();
  }
});
