// The SecretSync controller at scale: N SecretSyncs over D distinct `latest` secrets, one
// controller process (as in production) against the emulator in its own process. For each
// size: the time until every Secret exists, a rotation cycle with nothing changed (its time,
// its CSMS calls, its API writes), and the time for a change of every secret in CSMS to reach
// all N Secrets (the wait for the next cycle included), with that cycle's calls and writes.
import { forEachLimit } from '../src/util/async.js';
import {
  core,
  createNamespace,
  createServiceAccount,
  createSpc,
  deleteNamespace,
  eventually,
} from '../test/helpers/cluster.js';
import { createSecretSync, secretSyncManifest } from '../test/helpers/secret-syncs.js';
import { SyncProcess } from '../test/helpers/sync-process.js';
import { TEST_CREDS, TEST_PROJECT_ID } from '../test/helpers/with-driver.js';
import { apiWritesOf } from './api-writes.js';
import { startEmulatorProcess, type EmulatorProcess } from './emulator-process.js';
import { printTable, rssMiB } from './stats.js';

const SIZES: [number, number][] = (process.env.BENCH_SYNC_SIZES ?? '100x10,500x10,500x100,1000x50')
  .split(',')
  .map((s) => s.split('x').map(Number) as [number, number]);
const INTERVAL_S = 5;
/** BENCH_SYNC_ARGS: more flags for the controller, e.g. --concurrency=16. */
const EXTRA_ARGS = (process.env.BENCH_SYNC_ARGS ?? '').split(' ').filter(Boolean);
const WRITTEN = ['secrets', 'secretsyncs'];

/** Creates and patches: the controller's writes (a namespace another size left is deleted meanwhile). */
async function writes(): Promise<number> {
  const w = await apiWritesOf(WRITTEN, ['POST', 'PUT', 'PATCH']);
  return w.secrets + w.secretsyncs;
}

/** The controller's cycle count and total cycle seconds, from its /metrics. */
async function cycles(c: SyncProcess): Promise<{ count: number; seconds: number }> {
  return {
    count: await c.metric('secretsync_rotation_duration_seconds_count'),
    seconds: await c.metric('secretsync_rotation_duration_seconds_sum'),
  };
}

/** Waits for a cycle to end after the count `before` (default: now); returns its mean duration in ms. */
async function cycleAfter(c: SyncProcess, before?: { count: number; seconds: number }): Promise<number> {
  before ??= await cycles(c);
  const done = await eventually(
    'a cycle to end',
    async () => {
      const now = await cycles(c);
      return now.count > before.count ? now : undefined;
    },
    120_000,
  );
  // More than one may have ended while we polled: the mean of those.
  return ((done.seconds - before.seconds) / (done.count - before.count)) * 1000;
}

/** Secrets of the namespace whose value is `v`. */
async function holding(ns: string, v: string): Promise<number> {
  const list = await core.listNamespacedSecret({ namespace: ns, labelSelector: 'secrets-store.sync.x-k8s.io' });
  const want = Buffer.from(v).toString('base64');
  return list.items.filter((s) => s.data?.v === want).length;
}

/** N SecretSyncs, 16 at a time, the i-th reading secret i mod D. */
async function createSyncs(ns: string, n: number, d: number): Promise<void> {
  await forEachLimit(
    Array.from({ length: n }, (_, i) => i),
    16,
    async (i) => {
      const data = [{ sourcePath: `s${i % d}`, targetKey: 'v' }];
      await createSecretSync(ns, secretSyncManifest(`sync-${i}`, `spc-${i % d}`, 'app', { data }));
    },
  );
}

async function measure(emulator: EmulatorProcess, n: number, d: number): Promise<(string | number)[]> {
  const ns = await createNamespace(`bench-sync-${n}-${d}`);
  const controller = new SyncProcess({
    csmsEndpoint: emulator.url,
    extraArgs: [`--rotation-poll-interval=${INTERVAL_S}s`, '--namespace-policy=off', ...EXTRA_ARGS],
  });
  try {
    await createServiceAccount(
      ns,
      'app',
      Array.from({ length: d }, (_, i) => `s${i}`),
    );
    for (let i = 0; i < d; i++)
      await createSpc(ns, `spc-${i}`, `- {objectName: s${i}, objectType: csms, objectVersion: latest}`);
    // Each size starts from values of its own.
    const tag = `${n}x${d}`;
    for (let i = 0; i < d; i++) await emulator.addVersion(`s${i}`, tag);
    await controller.start();
    const t0 = performance.now();
    await createSyncs(ns, n, d);
    await eventually('every Secret', async () => ((await holding(ns, tag)) === n ? true : undefined), 300_000);
    const firstSync = (performance.now() - t0) / 1000;
    // A cycle that may have overlapped the creates, then one with nothing changed.
    await cycleAfter(controller);
    const [calls0, writes0] = [await emulator.total(), await writes()];
    const quiet = await cycleAfter(controller);
    const quietCalls = (await emulator.total()) - calls0;
    const quietWrites = (await writes()) - writes0;
    // Every secret changes at once; the clock runs from the change to the last Secret written.
    const [writes1, cycles1] = [await writes(), await cycles(controller)];
    const t1 = performance.now();
    for (let i = 0; i < d; i++) await emulator.addVersion(`s${i}`, `${tag}-new`);
    await eventually(
      'the change in every Secret',
      async () => ((await holding(ns, `${tag}-new`)) === n ? true : undefined),
      300_000,
    );
    const reached = (performance.now() - t1) / 1000;
    // That cycle's time; its status writes are done when it ends.
    const changeCycle = await cycleAfter(controller, cycles1);
    const changeWrites = (await writes()) - writes1;
    const rss = controller.pid ? rssMiB(controller.pid) : NaN;
    return [
      n,
      d,
      firstSync.toFixed(1),
      quiet.toFixed(0),
      quietCalls,
      quietWrites,
      reached.toFixed(1),
      changeCycle.toFixed(0),
      changeWrites,
      rss.toFixed(1),
    ];
  } finally {
    await controller.stop();
    await deleteNamespace(ns);
  }
}

export async function run(): Promise<void> {
  const most = Math.max(...SIZES.map(([, d]) => d));
  const emulator = await startEmulatorProcess({
    projectId: TEST_PROJECT_ID,
    credentials: [TEST_CREDS],
    secrets: Array.from({ length: most }, (_, i) => ({ name: `s${i}`, versions: ['v0'] })),
  });
  try {
    const rows: (string | number)[][] = [];
    for (const [n, d] of SIZES) rows.push(await measure(emulator, n, d));
    console.log(
      `Rotation interval ${INTERVAL_S} s (a change waits for the next cycle); API writes count Secrets and SecretSync status.`,
    );
    printTable(
      [
        'SecretSyncs',
        'distinct secrets',
        'all created (s)',
        'cycle, nothing changed (ms)',
        'CSMS calls',
        'API writes',
        'change → all Secrets (s)',
        'cycle with the change (ms)',
        'API writes for the change',
        'RSS (MiB)',
      ],
      rows,
    );
  } finally {
    emulator.stop();
  }
}
