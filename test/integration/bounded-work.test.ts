// Bounded work (SECURITY.md promise 5): what a namespace user's SPC can make the driver
// compute or write, against the real driver (the shipped bundle, under its production heap
// cap), the API server and the CSMS emulator. Each case crashed or stalled the driver before.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  GROUP,
  core,
  createNamespace,
  custom,
  createPod,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
  getSpcps,
} from '../helpers/cluster.js';
import { rejectsWith } from '../helpers/csi-client.js';
import { publishRequest, type DriverProcess } from '../helpers/driver.js';
import { rssMiB } from '../helpers/proc.js';
import { withDriver } from '../helpers/with-driver.js';

/** A JSON secret of about 100 KB, well within what CSMS stores. */
const doc = JSON.stringify({ items: Array.from({ length: 3500 }, (_, i) => ({ n: i, s: `value-${i}` })) });
/** About 600 KB: sorting it by a computed key takes tens of milliseconds. */
const bigDoc = JSON.stringify({ items: Array.from({ length: 20_000 }, (_, i) => ({ n: i, s: `value-${i}` })) });
const fx = withDriver({
  name: 'bounded',
  secrets: [
    { name: 'doc', versions: [doc] },
    { name: 'half-a', versions: ['a'.repeat(800_000)] },
    { name: 'half-b', versions: ['b'.repeat(800_000)] },
    { name: 'big-doc', versions: [bigDoc] },
  ],
});
const { emulator } = fx;
const drivers: DriverProcess[] = [];
let driver: DriverProcess;
let ns: string;

const startDriver = async (nodeId: string, flags: string[]) => {
  const d = await fx.start({ nodeId, extraArgs: ['--namespace-policy=off', ...flags] });
  drivers.push(d);
  return d;
};
const doubled = (times: number) => Array(times).fill('[@,@]').join(' | ');
const jmesSpc = (name: string, path: string, secret = 'doc') =>
  createSpc(
    ns,
    name,
    `- objectName: ${secret}\n  objectType: csms\n  objectVersion: v1\n  jmesPath:\n    - path: ${JSON.stringify(path)}\n      objectAlias: out\n`,
  );
/** Publishes a fresh pod's volume of `spc` on `d`'s node. */
const publishFresh = async (d: DriverProcess, pod: string, spc: string) => {
  const p = await createPod(ns, pod, { nodeName: d.opts.nodeId, serviceAccountName: 'app', spc });
  const req = publishRequest(p, spc, d.kubeletRoot);
  return { req, call: d.kubelet.call('Node', 'NodePublishVolume', req) };
};

before(async () => {
  await fx.ready;
  driver = await startDriver('node-bounded', [
    '--max-file-bytes=1000000',
    '--max-volume-bytes=1500000',
    '--jmespath-budget=5s',
  ]);
  ns = await createNamespace('bounded');
  await createServiceAccount(ns, 'app', ['doc', 'half-a', 'half-b', 'big-doc']);
});
after(async () => {
  await deleteNamespace(ns);
});

it('refuses an expression that multiplies its input (the pipe of [@,@]), reading nothing and mounting nothing', async () => {
  await jmesSpc('exponential', doubled(40));
  const { req, call } = await publishFresh(driver, 'exponential', 'exponential');
  await rejectsWith(
    call,
    status.INVALID_ARGUMENT,
    /^SecretProviderClass \S+\/exponential: object "doc": jmesPath\[0\]\.path ".*" could build up to \d+ copies of the secret's value; at most 64 are allowed/,
  );
  assert.equal(existsSync(req.target_path), false);
  assert.equal(emulator.store.counts.get('GET doc/v1') ?? 0, 0, 'refused before CSMS is asked');
});

it('refuses a computed file over --max-file-bytes with RESOURCE_EXHAUSTED, and one that could grow past 4 times it before computing it', async () => {
  await jmesSpc('thirty-two', doubled(5));
  const big = await publishFresh(driver, 'thirty-two', 'thirty-two');
  await rejectsWith(
    big.call,
    status.RESOURCE_EXHAUSTED,
    /^SecretProviderClass \S+\/thirty-two: object "doc": jmesPath ".*" makes a file of \d+ bytes, over the file limit of 1000000 bytes \(--max-file-bytes\); select less$/,
  );
  assert.equal(existsSync(big.req.target_path), false);
  assert.equal(await getSpcps(ns, `thirty-two-${ns}-thirty-two`), undefined);

  await jmesSpc('sixty-four', doubled(6));
  const bigger = await publishFresh(driver, 'sixty-four', 'sixty-four');
  await rejectsWith(
    bigger.call,
    status.RESOURCE_EXHAUSTED,
    /jmesPath ".*" could build values of up to \d+ bytes from this \d+-byte value, over 4 times the file limit of 1000000 bytes/,
  );
});

it('refuses a volume over --max-volume-bytes, however its files are each within the file limit', async () => {
  await createSpc(
    ns,
    'two-halves',
    '- {objectName: half-a, objectType: csms, objectVersion: v1}\n- {objectName: half-b, objectType: csms, objectVersion: v1}\n',
  );
  const { req, call } = await publishFresh(driver, 'two-halves', 'two-halves');
  await rejectsWith(
    call,
    status.RESOURCE_EXHAUSTED,
    /the volume's 2 files are 1600000 bytes together, over the volume limit of 1500000 bytes \(--max-volume-bytes\)/,
  );
  assert.equal(existsSync(req.target_path), false);
});

it('stops expressions past the volume’s --jmespath-budget, and serves a small one beside them', async () => {
  const strict = await startDriver('node-bounded-time', ['--jmespath-budget=10ms']);
  await jmesSpc('slow', 'sort_by(items, &to_string(@))', 'big-doc');
  const slow = await publishFresh(strict, 'slow', 'slow');
  await rejectsWith(
    slow.call,
    status.RESOURCE_EXHAUSTED,
    /jmesPath "sort_by\(items, &to_string\(@\)\)" took longer than the 10 ms the volume's expressions may take together; simplify it/,
  );
  assert.equal(existsSync(slow.req.target_path), false);
  await jmesSpc('quick', 'items[0].s', 'big-doc');
  const quick = await publishFresh(strict, 'quick', 'quick');
  await quick.call;
  assert.equal(readFileSync(`${quick.req.target_path}/out`, 'utf8'), 'value-0');
});

it('counts SPCs for the limit by their metadata only: forty of 1.4 MB each in one namespace leave a publish cheap', async () => {
  const blob = 'p'.repeat(1_400_000);
  for (let i = 0; i < 40; i++) await createSpc(ns, `heavy-${i}`, '', { provider: 'vault', parameters: { blob } });
  await jmesSpc('light', 'items[1].s');
  const before = rssMiB(driver.pid!);
  const { req, call } = await publishFresh(driver, 'light', 'light');
  await call;
  assert.equal(readFileSync(`${req.target_path}/out`, 'utf8'), 'value-1');
  assert.ok((await driver.metric('secretproviderclasses_counted')) >= 40);
  assert.equal(await driver.metric('secretproviderclasses_limit'), 500);
  // Reading their 56 MB would take the driver's memory up by about as much: it reads a few KB.
  const grown = rssMiB(driver.pid!) - before;
  assert.ok(grown < 20, `RSS grew by ${grown.toFixed(0)} MiB while counting ${40 * 1.4} MB of SPCs`);
});

it("keeps only the fields it reads of its node's pods: thirty pods of 1 MB each leave its memory as it was", async () => {
  const before = rssMiB(driver.pid!);
  const cached = await driver.metric('kube_cached_objects', { kind: 'Pod' });
  const big = 'e'.repeat(1_000_000);
  for (let i = 0; i < 30; i++) {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: `bulky-${i}` },
        spec: {
          nodeName: driver.opts.nodeId,
          containers: [{ name: 'c', image: 'x', env: [{ name: 'BIG', value: big }] }],
        },
      },
    });
  }
  await eventually('the pods in the cache', async () =>
    (await driver.metric('kube_cached_objects', { kind: 'Pod' })) >= cached + 30 ? true : undefined,
  );
  const grown = rssMiB(driver.pid!) - before;
  assert.ok(grown < 15, `RSS grew by ${grown.toFixed(0)} MiB with 30 MB of pods on the node`);
});

it("receives no watch events for other namespaces' ServiceAccounts and SPCs, however much they churn", async () => {
  const other = await createNamespace('churn');
  const events = async () =>
    (await driver.metric('kube_watch_events_total', { kind: 'ServiceAccount' })) +
    (await driver.metric('kube_watch_events_total', { kind: 'SecretProviderClass' }));
  const before = await events();
  const blob = 'c'.repeat(100_000);
  try {
    for (let i = 0; i < 40; i++) {
      await createServiceAccount(other, `churn-${i}`, blob);
      await createSpc(other, `churn-${i}`, blob);
    }
    await deleteNamespace(other);
    // The control: one ServiceAccount in the namespace of this node's pods is seen.
    await createServiceAccount(ns, 'control', []);
    await eventually('the control event', async () => ((await events()) > before ? true : undefined));
    await new Promise((r) => setTimeout(r, 1_000));
    const received = (await events()) - before;
    assert.ok(received <= 2, `${received} watch events decoded for 80 objects written in another namespace`);
  } finally {
    await deleteNamespace(other);
  }
});

it('reads no object over --max-object-bytes: such an SPC is refused by name, and a watch event of one is skipped with a log line', async () => {
  const tight = await startDriver('node-bounded-objects', ['--max-object-bytes=100000']);
  const fat = 'f'.repeat(150_000);
  const objects = '- {objectName: doc, objectType: csms, objectVersion: v1}';
  await createSpc(ns, 'fat', objects, {}, { annotations: { padding: fat } });
  const refused = await publishFresh(tight, 'fat', 'fat');
  await rejectsWith(
    refused.call,
    status.RESOURCE_EXHAUSTED,
    /^SecretProviderClass \S+\/fat is larger than the driver reads of one object; make it smaller \(the answer is over the 100000-byte object limit \(--max-object-bytes\)\)$/,
  );
  assert.equal(existsSync(refused.req.target_path), false);

  await createSpc(ns, 'slim', objects);
  const slim = await publishFresh(tight, 'slim', 'slim');
  await slim.call;
  const spcApi = { group: GROUP, version: 'v1', plural: 'secretproviderclasses', namespace: ns, name: 'slim' };
  const live = (await custom.getNamespacedCustomObject(spcApi)) as {
    metadata: { annotations?: Record<string, string> };
  };
  live.metadata.annotations = { padding: fat };
  await custom.replaceNamespacedCustomObject({ ...spcApi, body: live });
  await eventually('the skipped event in the log', async () =>
    /Skipped a watch event over the object limit \(--max-object-bytes\).*kind="?SecretProviderClass.*bytes="?1\d{5}/.test(
      tight.logs,
    )
      ? true
      : undefined,
  );
  assert.equal(readFileSync(`${slim.req.target_path}/doc`, 'utf8'), doc, 'the running pod keeps its files');
});

it('is alive and within its memory after all of it', async () => {
  for (const d of drivers) {
    const probe = await d.kubelet.call<{ ready?: { value: boolean } }>('Identity', 'Probe', {});
    assert.equal(probe.ready?.value, true);
    assert.equal(d.exitCode, null);
    const rss = rssMiB(d.pid!);
    assert.ok(rss < 200, `RSS ${rss.toFixed(0)} MiB`);
  }
  assert.doesNotMatch(driver.logs, /Reached heap limit|heap out of memory/);
});
