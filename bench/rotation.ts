// 1,000 mounted volumes x 5 objects drawn from 50 distinct `latest` secrets, on one
// node: the cost of a rotation cycle when nothing changed and when one secret did.
// The driver's object graph runs in this process (started with the production Node
// flags by bench/run.ts) so a cycle can be triggered and timed exactly; the CSMS
// emulator runs as its own process so its memory is not counted.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'node:https';
import { Publisher } from '../src/driver/publisher.js';
import { startMountHelper } from '../src/driver/mounter.js';
import { EventRecorder } from '../src/kube/events.js';
import { SpcpsWriter } from '../src/kube/spcps-writer.js';
import { KubeView } from '../src/kube/view.js';
import { createLogger } from '../src/log.js';
import { CsmsClient } from '../src/provider/csms-client.js';
import { CsmsSecretSource } from '../src/provider/source.js';
import { RotationReconciler, forEachLimit } from '../src/reconciler/rotation.js';
import { SecretSync } from '../src/reconciler/secret-sync.js';
import { createNamespace, createPod, createServiceAccount, createSpc, deleteNamespace, kc } from '../test/helpers/cluster.js';
import { publishRequest } from '../test/helpers/driver.js';
import { parsePublishRequest } from '../src/driver/volume-request.js';
import { rssMiB } from './stats.js';

const VOLUMES = Number(process.env.BENCH_VOLUMES ?? 1000);
const SECRETS = 50;
const SPCS = 50;
const projectId = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';
const creds = { accessKey: 'ROTBENCHAK', secretKey: 'rot-bench-sk' };
const nodeId = 'bench-rotation-node';
const mainJs = resolve(import.meta.dirname, '../src/main.js');

async function startEmulator(): Promise<{ url: string; stop(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'cce-bench-seed-'));
  const seed = { projectId, credentials: [creds], secrets: Array.from({ length: SECRETS }, (_, i) => ({ name: `s${i}`, versions: [`value-${i}-1`] })) };
  writeFileSync(join(dir, 'seed.json'), JSON.stringify(seed));
  const child = spawn(mainJs, ['csms-emulator', '--port', '0', '--seed', join(dir, 'seed.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((res) => child.stdout.on('data', (d: Buffer) => { const m = /listening on (\S+)/.exec(d.toString()); if (m) res(m[1]); }));
  return { url, stop: () => child.kill() };
}

async function emulatorTotal(url: string): Promise<number> {
  return ((await (await fetch(`${url}/_emulator/stats`)).json()) as { total: number }).total;
}

/** Write requests the API server has served, by resource, from its own metrics. */
async function apiWrites(): Promise<Record<string, number>> {
  const cluster = kc.getCurrentCluster()!;
  const token = kc.getCurrentUser()!.token!;
  const text = await new Promise<string>((res, rej) => {
    request(`${cluster.server}/metrics`, { headers: { Authorization: `Bearer ${token}` }, rejectUnauthorized: false }, (r) => {
      let body = '';
      r.on('data', (d) => { body += d; });
      r.on('end', () => res(body));
    }).on('error', rej).end();
  });
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^apiserver_request_total\{([^}]*)\} (\d+)/gm)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(labels.verb) || !['secretproviderclasspodstatuses', 'secrets', 'events'].includes(labels.resource)) continue;
    out[labels.resource] = (out[labels.resource] ?? 0) + Number(m[2]);
  }
  return out;
}

const diff = (a: Record<string, number>, b: Record<string, number>) =>
  Object.fromEntries(['secretproviderclasspodstatuses', 'secrets', 'events'].map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));

export async function run(): Promise<void> {
  startMountHelper();
  const emulator = await startEmulator();
  const log = createLogger({ verbosity: 0, json: false, stream: process.stderr });
  const kube = new KubeView(kc, nodeId, { ...log, warn: () => undefined, info: () => undefined });
  const source = new CsmsSecretSource(new CsmsClient({ endpoint: emulator.url, projectId }));
  const quiet = { info: () => undefined, warn: log.warn, error: log.error, v: () => ({ info: () => undefined }) };
  const publisher = new Publisher({ kube, source, log: quiet, spcps: new SpcpsWriter(kube.custom, kube.spcps), credentials: { credentials: async () => creds }, onContent: (c) => new SecretSync(kube.core, quiet).sync(c) });
  const rotation = new RotationReconciler({ publisher, source, events: new EventRecorder(kube.core, quiet), log: quiet, intervalMs: 3_600_000 });
  const ns = await createNamespace('bench-rot');
  const root = mkdtempSync(join(tmpdir(), 'cce-bench-rot-kubelet-'));
  await kube.start();
  const targets: string[] = [];
  try {
    await createServiceAccount(ns, 'app', Array.from({ length: SECRETS }, (_, i) => `s${i}`));
    for (let i = 0; i < SPCS; i++) {
      await createSpc(ns, `spc-${i}`, Array.from({ length: 5 }, (_, k) => `- {objectName: s${(i + k * 10) % SECRETS}, objectType: csms, objectVersion: latest}`).join('\n'));
    }
    let t0 = performance.now();
    await forEachLimit(Array.from({ length: VOLUMES }, (_, i) => i), 16, async (i) => {
      const pod = await createPod(ns, `p${i}`, { nodeName: nodeId, serviceAccountName: 'app' });
      const req = parsePublishRequest(publishRequest(pod, `spc-${i % SPCS}`, root));
      await publisher.publish(req);
      targets.push(req.targetPath);
    });
    console.log(`setup: ${VOLUMES} volumes x 5 objects mounted in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    const links = () => Promise.all(targets.map((t) => readlink(join(t, '..data'))));

    for (const [label, change] of [['nothing changed', false], ['one secret changed', true]] as const) {
      if (change) await fetch(`${emulator.url}/_emulator/secrets/s7/versions`, { method: 'POST', body: JSON.stringify({ secret_string: 'value-7-2' }) });
      const [calls0, writes0, links0] = [await emulatorTotal(emulator.url), await apiWrites(), await links()];
      t0 = performance.now();
      const result = await rotation.runCycle();
      const wall = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 1000)); // events are recorded in the background
      const [calls1, writes1, links1] = [await emulatorTotal(emulator.url), await apiWrites(), await links()];
      const rewritten = links1.filter((l, i) => l !== links0[i]).length;
      console.log(`cycle (${label}): ${wall.toFixed(0)}ms wall, CSMS calls ${calls1 - calls0}, volumes rewritten ${rewritten}, ` +
        `updated ${result.updated}, failed ${result.failed}, API writes ${JSON.stringify(diff(writes0, writes1))}, RSS ${rssMiB(process.pid).toFixed(1)} MiB`);
    }
  } finally {
    await forEachLimit(targets, 16, (t) => publisher.unpublish(t));
    await kube.stop();
    emulator.stop();
    await deleteNamespace(ns);
  }
}
