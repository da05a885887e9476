// No image builder runs here, so the Dockerfile is kept honest another way: its runtime
// stage's COPY sources are built as that stage would hold them (production dependencies
// only, compiled output, protos), and that layout is started.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { it } from 'node:test';
import { kubeconfigPath } from '../helpers/cluster.js';
import { Kubelet } from '../helpers/driver.js';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../../..');

it('the Dockerfile\'s runtime layout installs production dependencies only and serves CSI', async () => {
  const dockerfile = await readFile(join(repo, 'Dockerfile'), 'utf8');
  const runtime = dockerfile.split(/^FROM /m).at(-1)!;
  const copies = [...runtime.matchAll(/^COPY --from=build \/src\/(\S+) \.\/(\S+)$/gm)].map((m) => [m[1], m[2]]);
  assert.deepEqual(copies.map(([from]) => from).sort(), ['csi-proto', 'dist/src', 'node_modules', 'package.json']);
  const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(runtime)![1]) as string[];
  assert.deepEqual(entry.slice(0, 2), ['tini', '--']);

  // The build stage: sources, then `npm ci --omit=dev` as `npm prune --omit=dev` leaves it.
  const app = mkdtempSync(join(tmpdir(), 'cce-image-app-'));
  for (const f of ['package.json', 'package-lock.json']) cpSync(join(repo, f), join(app, f));
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app });
  cpSync(join(repo, 'dist/src'), join(app, 'dist/src'), { recursive: true });
  cpSync(join(repo, 'csi-proto'), join(app, 'csi-proto'), { recursive: true });
  const { stdout: deps } = await run('npm', ['ls', '--omit=dev', '--depth=0'], { cwd: app });
  assert.doesNotMatch(deps, /typescript|@types\//, 'no dev dependency in the image');

  const node = [...entry.slice(3)].filter((a) => !a.startsWith('/app/')); // node flags from ENTRYPOINT
  const main = join(app, 'dist/src/main.js');
  const { stdout: version } = await run(process.execPath, [...node, main, '--version']);
  assert.match(version, /^cce-secrets-manager \d+\.\d+\.\d+/);

  const socket = join(mkdtempSync(join(tmpdir(), 'cce-image-sock-')), 'csi.sock');
  const child = spawn(process.execPath, [...node, main, 'serve', `--endpoint=unix://${socket}`, '--nodeid=image-node', `--kubeconfig=${kubeconfigPath}`,
    '--csms-endpoint=http://127.0.0.1:9', '--project-id=p', '--metrics-addr='], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stderr.on('data', (d: Buffer) => { logs += d.toString(); });
  const kubelet = new Kubelet(socket);
  try {
    for (let i = 0; ; i++) {
      const probe = await kubelet.call<{ ready?: { value: boolean } }>('Identity', 'Probe', {}).catch(() => undefined);
      if (probe?.ready?.value) break;
      assert.ok(i < 300 && child.exitCode === null, `the image layout did not become ready:\n${logs}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await kubelet.call<{ name: string }>('Identity', 'GetPluginInfo', {})).name, 'secrets-store.csi.k8s.io');
  } finally {
    kubelet.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  assert.equal(child.exitCode, 0, logs);
});
