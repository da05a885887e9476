// Tenant isolation (SECURITY.md): the cluster admin's Namespace permit against the real API
// server with RBAC and its bootstrap roles. A user bound to `admin` in one namespace tries to
// read another team's CSMS secret through our driver, our provider behind the upstream driver,
// and the webhook, under each namespace policy.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { isMountPoint } from '../../src/driver/mounter.js';
import { waitFor } from '../cluster/processes.js';
import {
  applyManifest as apply,
  binDir,
  core,
  createNamespace,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
  getSpcps,
  kubeconfigPath,
  kubectl,
  podEvents,
  readSecret,
} from '../helpers/cluster.js';
import { rejectsWith } from '../helpers/csi-client.js';
import { publishRequest, unmountAll, type DriverProcess } from '../helpers/driver.js';
import { ProviderProcess, UpstreamDriver } from '../helpers/upstream-driver.js';
import { WebhookHarness } from '../helpers/webhook.js';
import { TEST_CREDS_ENV, TEST_PROJECT_ID, withDriver } from '../helpers/with-driver.js';

const teamAPassword = `team-a-pw-${randomBytes(6).toString('hex')}`;
const fx = withDriver({
  name: 'permit',
  secrets: [
    { name: 'team-a-db-password', versions: [teamAPassword] },
    { name: 'team-a-api-key', versions: ['api-v1'] },
    { name: 'team-b-db', versions: ['b-v1'] },
  ],
});
const { emulator } = fx;
const dir = mkdtempSync(join(tmpdir(), 'cce-permit-'));
const enforceNode = 'node-permit-enforce';
const auditNode = 'node-permit-audit';
const upstreamNode = 'node-permit-upstream';
let enforcing: DriverProcess;
let auditing: DriverProcess;
let teamA: string;
let teamB: string;
let bare: string;

const PERMIT = 'cce.io/dew-resource-permitted';
const permit = (ns: string, value: string) => kubectl('annotate', 'namespace', ns, `${PERMIT}=${value}`, '--overwrite');
/** What the namespace admin of team B runs: kubectl as user bob. */
const asBob = (...args: string[]) => kubectl('--as', 'bob', ...args);
const applyAsBob = async (obj: object) => {
  const file = join(dir, `obj-${randomBytes(4).toString('hex')}.yaml`);
  writeFileSync(file, stringify(obj));
  return asBob('apply', '-f', file);
};
const spcObject = (namespace: string, name: string, objects: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'secrets-store.csi.x-k8s.io/v1',
  kind: 'SecretProviderClass',
  metadata: { name, namespace },
  spec: { provider: 'cce', parameters: { objects }, ...extra },
});
const object = (name: string, version = 'v1') => `- {objectName: ${name}, objectType: csms, objectVersion: ${version}}`;

const startDriver = (nodeId: string, policy: string) =>
  fx.start({ nodeId, extraArgs: ['--rotation-poll-interval=1s', `--namespace-policy=${policy}`] });

/** The steal of the issue, as bob (admin of team B only): his own allow-list, an SPC syncing a Secret, a pod. */
async function stageSteal(nodeName: string, pod: string): Promise<void> {
  await asBob(
    'annotate',
    'serviceaccount',
    'default',
    '-n',
    teamB,
    `cce.io/dew-resource=["team-a-db-password"]`,
    '--overwrite',
  );
  await applyAsBob(
    spcObject(teamB, 'steal', object('team-a-db-password'), {
      secretObjects: [{ secretName: 'loot', type: 'Opaque', data: [{ objectName: 'team-a-db-password', key: 'v' }] }],
    }),
  );
  await applyAsBob({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod, namespace: teamB },
    spec: {
      nodeName,
      containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
      volumes: [
        {
          name: 'secrets-store-inline',
          csi: {
            driver: 'secrets-store.csi.k8s.io',
            readOnly: true,
            volumeAttributes: { secretProviderClass: 'steal' },
          },
        },
      ],
    },
  });
}

const stealMessage = () =>
  `Namespace ${teamB} does not permit CSMS secret "team-a-db-password" (its ${PERMIT} annotation is ["team-b-*"]); a cluster admin permits it with: kubectl annotate namespace ${teamB} ${PERMIT}='["team-b-*","team-a-db-password"]' --overwrite`;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

before(async () => {
  await fx.ready;
  enforcing = await startDriver(enforceNode, 'enforce');
  auditing = await startDriver(auditNode, 'audit');
  [teamA, teamB, bare] = await Promise.all([
    createNamespace('team-a'),
    createNamespace('team-b'),
    createNamespace('bare'),
  ]);
  await permit(teamA, '["team-a-api-*","team-a-db-password"]');
  await permit(teamB, '["team-b-*"]');
  // SPCs are a CRD: a cluster that lets namespace admins write them aggregates them into `admin`.
  await kubectl(
    'create',
    'clusterrole',
    'spc-writers-permit-test',
    '--verb=*',
    '--resource=secretproviderclasses.secrets-store.csi.x-k8s.io',
  );
  await kubectl('label', 'clusterrole', 'spc-writers-permit-test', 'rbac.authorization.k8s.io/aggregate-to-admin=true');
  await kubectl('create', 'rolebinding', 'bob-admin', '-n', teamB, '--clusterrole=admin', '--user=bob');
  await kubectl('create', 'rolebinding', 'eve-edit', '-n', teamB, '--clusterrole=edit', '--user=eve');
  await eventually('bob to be an admin of team B, SPCs included', async () =>
    (await asBob('auth', 'can-i', 'create', 'secretproviderclasses.secrets-store.csi.x-k8s.io', '-n', teamB)).trim() ===
    'yes'
      ? true
      : undefined,
  );
  await eventually('the default ServiceAccount of team B', () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: teamB }),
  );
});
after(async () => {
  await kubectl('delete', 'clusterrole', 'spc-writers-permit-test', '--ignore-not-found');
  await Promise.all([teamA, teamB, bare].map(deleteNamespace));
});

it('a namespace admin or editor can write its ServiceAccounts and SPCs but not its own Namespace (kubectl --as)', async () => {
  await asBob('annotate', 'serviceaccount', 'default', '-n', teamB, 'cce.io/dew-resource=["team-b-db"]', '--overwrite');
  await assert.rejects(asBob('annotate', 'namespace', teamB, `${PERMIT}=["*"]`, '--overwrite'), (err: Error) => {
    assert.match(err.message, /Forbidden|forbidden/);
    assert.match(err.message, /cannot patch resource "namespaces"/);
    return true;
  });
  for (const user of ['bob', 'eve']) {
    for (const verb of ['update', 'patch', 'delete'])
      assert.equal(canAs(user, verb, `namespace/${teamB}`), 'no', `${user} may not ${verb} the Namespace`);
    assert.equal(canAs(user, 'patch', 'serviceaccounts', teamB), 'yes', `${user} edits ServiceAccounts`);
    // A RoleBinding grants nothing cluster-scoped: the messages are how a team learns its permit.
    assert.equal(canAs(user, 'get', `namespace/${teamB}`), 'no', `${user} may not read the Namespace`);
  }

  const ns = await core.readNamespace({ name: teamB });
  assert.equal(ns.metadata?.annotations?.[PERMIT], '["team-b-*"]', 'the permit is as the cluster admin wrote it');
});

it("refuses the steal under enforce: PERMISSION_DENIED with the admin's command, nothing mounted, fetched or synced", async () => {
  await stageSteal(enforceNode, 'thief');
  const pod = await core.readNamespacedPod({ name: 'thief', namespace: teamB });
  const req = publishRequest(pod, 'steal', enforcing.kubeletRoot);
  await rejectsWith(
    enforcing.kubelet.call('Node', 'NodePublishVolume', req),
    status.PERMISSION_DENIED,
    new RegExp(`^${escape(stealMessage())} \\(namespace policy enforce\\)$`),
  );
  assert.equal(await isMountPoint(req.target_path), false);
  assert.equal(existsSync(req.target_path), false);
  assert.equal(await getSpcps(teamB, `thief-${teamB}-steal`), undefined);
  assert.equal(await readSecret(teamB, 'loot'), undefined);
  assert.equal(emulator.store.counts.get('GET team-a-db-password/v1') ?? 0, 0, 'CSMS was never asked');
  assert.ok(!enforcing.logs.includes(teamAPassword));
});

it('mounts what the permit covers, through a glob and through an exact name', async () => {
  await createServiceAccount(teamA, 'app', ['team-a-db-password', 'team-a-api-key']);
  await createSpc(teamA, 'both', `${object('team-a-db-password')}\n${object('team-a-api-key')}`);
  const pod = await createPod(teamA, 'owner', { nodeName: enforceNode, serviceAccountName: 'app', spc: 'both' });
  const req = publishRequest(pod, 'both', enforcing.kubeletRoot);
  await enforcing.kubelet.call('Node', 'NodePublishVolume', req);
  assert.equal(await readFile(join(req.target_path, 'team-a-db-password'), 'utf8'), teamAPassword);
  assert.equal(await readFile(join(req.target_path, 'team-a-api-key'), 'utf8'), 'api-v1');
  assert.ok(!enforcing.logs.includes(teamAPassword));
});

it('a namespace with no permit mounts nothing under enforce, and mounts with a Warning event, a log line and a metric under audit', async () => {
  await createServiceAccount(bare, 'app', ['team-b-db']);
  await createSpc(bare, 'spc', object('team-b-db'));
  const refused = await createPod(bare, 'refused', { nodeName: enforceNode, serviceAccountName: 'app', spc: 'spc' });
  await rejectsWith(
    enforcing.kubelet.call('Node', 'NodePublishVolume', publishRequest(refused, 'spc', enforcing.kubeletRoot)),
    status.PERMISSION_DENIED,
    new RegExp(
      `^Namespace ${bare} does not permit CSMS secret "team-b-db" \\(it has no ${PERMIT} annotation\\); a cluster admin permits it with: kubectl annotate namespace ${bare} ${PERMIT}='\\["team-b-db"\\]' --overwrite`,
    ),
  );

  await createSpc(bare, 'spc2', object('team-b-db'));
  const audited = await createPod(bare, 'audited', {
    nodeName: auditNode,
    serviceAccountName: 'app',
    volumes: { one: 'spc', two: 'spc2' },
  });
  const reqs = [
    publishRequest(audited, 'spc', auditing.kubeletRoot, { volume: 'one' }),
    publishRequest(audited, 'spc2', auditing.kubeletRoot, { volume: 'two' }),
  ];
  for (const req of reqs) await auditing.kubelet.call('Node', 'NodePublishVolume', req);
  assert.equal(await readFile(join(reqs[0].target_path, 'team-b-db'), 'utf8'), 'b-v1');
  // One event for each of the pod's volumes, not one per pod.
  const events = await eventually('the audit events', async () => {
    const found = (await podEvents(bare, 'audited')).filter((e) => e.reason === 'SecretNotPermitted');
    return found.length === 2 ? found : undefined;
  });
  for (const event of events) {
    assert.equal(event.type, 'Warning');
    assert.match(event.message!, new RegExp(`^Namespace ${bare} does not permit CSMS secret "team-b-db"`));
    assert.match(
      event.message!,
      /Mounted anyway because the namespace policy is audit; under enforce this mount is refused$/,
    );
  }
  assert.match(auditing.logs, /Mounted CSMS secrets that no Namespace permit covers .* secrets="team-b-db"/);
  const gauge = () => auditing.metric('namespace_permit_uncovered_volumes', { namespace: bare, secret: 'team-b-db' });
  assert.equal(await gauge(), 2);
  for (const req of reqs) {
    await auditing.kubelet.call('Node', 'NodeUnpublishVolume', {
      volume_id: req.volume_id,
      target_path: req.target_path,
    });
  }
  assert.equal(await gauge(), 0, 'the series goes with the volume');
});

it('a narrowed permit refuses new mounts within seconds; running volumes keep their files, get no new values and one event; widened, they resume', async () => {
  await createSpc(teamA, 'rotating', object('team-a-api-key', 'latest'));
  const runner = await createPod(teamA, 'runner', {
    nodeName: enforceNode,
    serviceAccountName: 'app',
    spc: 'rotating',
  });
  const req = publishRequest(runner, 'rotating', enforcing.kubeletRoot);
  await enforcing.kubelet.call('Node', 'NodePublishVolume', req);
  const file = join(req.target_path, 'team-a-api-key');
  assert.equal(await readFile(file, 'utf8'), 'api-v1');

  const t0 = Date.now();
  await permit(teamA, '["team-a-db-password"]');
  // The driver watches the Namespaces of its pods: the running volume hears of it first.
  await eventually('the running pod to be told', async () =>
    (await podEvents(teamA, 'runner')).find((e) => e.reason === 'SecretNotPermitted'),
  );
  assert.ok(Date.now() - t0 < 10_000, `${Date.now() - t0} ms`);
  const newcomer = await createPod(teamA, 'newcomer', {
    nodeName: enforceNode,
    serviceAccountName: 'app',
    spc: 'rotating',
  });
  const newReq = publishRequest(newcomer, 'rotating', enforcing.kubeletRoot);
  await rejectsWith(
    enforcing.kubelet.call('Node', 'NodePublishVolume', newReq),
    status.PERMISSION_DENIED,
    /does not permit CSMS secret "team-a-api-key"/,
  );
  assert.equal(await isMountPoint(newReq.target_path), false);

  emulator.store.addVersion('team-a-api-key', { secret_string: 'api-v2' });
  const cycles = await enforcing.metric('rotation_reconcile_total');
  await eventually('three more rotation cycles', async () =>
    (await enforcing.metric('rotation_reconcile_total')) >= cycles + 3 ? true : undefined,
  );
  assert.equal(await readFile(file, 'utf8'), 'api-v1', 'no new value while the permit does not cover it');
  assert.ok(await isMountPoint(req.target_path), 'nothing is taken from a running pod');
  const told = (await podEvents(teamA, 'runner')).filter((e) => e.reason === 'SecretNotPermitted');
  assert.equal(told.length, 1, JSON.stringify(told));
  assert.match(
    told[0].message!,
    /does not permit CSMS secret "team-a-api-key".*the volume keeps its last files and gets no new values/,
  );
  const withheld = () => enforcing.metric('namespace_permit_withheld_volumes', { namespace: teamA });
  assert.equal(await withheld(), 2, "the runner's volume and the owner's (it mounts team-a-api-key too)");

  await permit(teamA, '["team-a-*"]');
  await eventually('the new value once the permit covers it again', async () =>
    (await readFile(file, 'utf8')) === 'api-v2' ? true : undefined,
  );
  assert.equal(await withheld(), 0);
  await eventually('the resumed event', async () =>
    (await podEvents(teamA, 'runner')).find((e) => e.reason === 'SecretPermitted'),
  );
  await enforcing.kubelet.call('Node', 'NodePublishVolume', newReq);
});

it('the provider command behind the upstream driver refuses the steal under enforce and reports it under audit', async () => {
  const providerDir = mkdtempSync(join(tmpdir(), 'cce-permit-providers-'));
  const flags = (policy: string) => [
    `--csms-endpoint=${fx.endpoint}`,
    `--project-id=${TEST_PROJECT_ID}`,
    `--namespace-policy=${policy}`,
  ];
  const upstream = new UpstreamDriver(upstreamNode, providerDir);
  let provider = new ProviderProcess(providerDir, flags('enforce'), TEST_CREDS_ENV);
  const kubeletRoot = mkdtempSync(join(tmpdir(), 'cce-permit-upstream-kubelet-'));
  try {
    await provider.start();
    await upstream.start();
    await stageSteal(upstreamNode, 'thief-upstream');
    const pod = await core.readNamespacedPod({ name: 'thief-upstream', namespace: teamB });
    const req = publishRequest(pod, 'steal', kubeletRoot);
    await assert.rejects(upstream.kubelet.call('Node', 'NodePublishVolume', req), (err: { details: string }) => {
      assert.ok(err.details.includes(`code = PermissionDenied desc = ${stealMessage()}`), err.details);
      return true;
    });
    assert.equal(await isMountPoint(req.target_path), false);
    assert.ok(!provider.logs.includes(teamAPassword));

    await provider.stop();
    provider = new ProviderProcess(providerDir, flags('audit'), TEST_CREDS_ENV);
    await provider.start();
    await eventually('the upstream driver to mount through the audit provider', () =>
      upstream.kubelet.call('Node', 'NodePublishVolume', req).then(() => true),
    );
    const event = await eventually('the audit event from the provider', async () =>
      (await podEvents(teamB, 'thief-upstream')).find((e) => e.reason === 'SecretNotPermitted'),
    );
    assert.match(event.message!, /Mounted anyway because the namespace policy is audit/);
    assert.match(provider.logs, /Mounted CSMS secrets that no Namespace permit covers/);
    await upstream.kubelet.call('Node', 'NodeUnpublishVolume', {
      volume_id: req.volume_id,
      target_path: req.target_path,
    });
  } finally {
    await upstream.stop();
    await provider.stop();
    unmountAll(kubeletRoot);
  }
});

it('the webhook refuses an SPC or an allow-list naming an unpermitted secret under enforce, and warns under audit', async () => {
  const hook = new WebhookHarness();
  const steal = spcObject(teamB, 'steal-at-apply', object('team-a-db-password'));
  try {
    await hook.start(['--namespace-policy=enforce']);
    await hook.register(teamB, 'Fail');
    await waitFor('the webhook to be called', async () => !apply(steal).ok, 15_000);
    const refused = apply(steal);
    assert.ok(refused.out.includes(`denied the request: ${stealMessage()} (namespace policy enforce)`), refused.out);
    await kubectl('create', 'serviceaccount', 'hopeful', '-n', teamB);
    await assert.rejects(
      kubectl('annotate', 'serviceaccount', 'hopeful', '-n', teamB, 'cce.io/dew-resource=["team-a-db-password"]'),
      new RegExp(
        `ServiceAccount ${teamB}/hopeful: annotation cce.io/dew-resource: Namespace ${teamB} does not permit CSMS secret "team-a-db-password"`,
      ),
    );
    await kubectl('annotate', 'serviceaccount', 'hopeful', '-n', teamB, 'cce.io/dew-resource=["team-b-db"]');
    assert.equal(apply(spcObject(teamB, 'own', object('team-b-db'))).ok, true);

    await hook.stop();
    await hook.start(['--namespace-policy=audit']);
    const warned = await eventually('the audit webhook to answer', async () => {
      const r = apply(steal);
      return r.ok ? r : undefined;
    });
    assert.match(
      warned.out,
      new RegExp(
        `Warning: SecretProviderClass ${teamB}/steal-at-apply: Namespace ${teamB} does not permit CSMS secret "team-a-db-password".*under enforce they are refused`,
      ),
    );
  } finally {
    await hook.unregister(teamB);
    await hook.stop();
  }
});

/** `kubectl auth can-i` as `user`: "yes" or "no" (its exit code is 1 for no). */
function canAs(user: string, verb: string, resource: string, namespace?: string): string {
  const args = ['--kubeconfig', kubeconfigPath, 'auth', 'can-i', verb, resource, '--as', user];
  const r = spawnSync(join(binDir, 'kubectl'), namespace ? [...args, '-n', namespace] : args, { encoding: 'utf8' });
  return r.stdout.trim();
}
