// No image builder runs here, so the Dockerfile is kept honest another way: its runtime
// stage is assembled from the same sources into a folder with no node_modules at all, and
// that layout is started with the ENTRYPOINT's own Node flags.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { it } from 'node:test';
import { kubeconfigPath } from '../helpers/cluster.js';
import { Kubelet } from '../helpers/csi-client.js';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../../..');

/** The Dockerfile's runtime stage, assembled into a folder: the executable and node's flags. */
async function assembleRuntime(): Promise<{ main: string; node: string[] }> {
  const dockerfile = await readFile(join(repo, 'Dockerfile'), 'utf8');
  const runtime = dockerfile.split(/^FROM /m).at(-1)!;
  const copies = [...runtime.matchAll(/^COPY (?:--from=build \/src\/)?(\S+) \.\/(\S+)$/gm)].map(
    (m) => [m[1], m[2]] as const,
  );
  assert.deepEqual(copies.map(([from]) => from).sort(), ['csi-proto', 'dist/cce-secrets-manager.mjs', 'package.json']);
  // The build stage installs koffi alone (its platform binary comes with it) into /koffi.
  assert.match(runtime, /^COPY --from=build \/koffi\/node_modules \.\/node_modules$/m);
  const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(runtime)![1]) as string[];
  assert.deepEqual(entry.slice(0, 3), ['tini', '--', 'node']);

  const app = mkdtempSync(join(tmpdir(), 'cce-image-app-'));
  for (const [from, to] of copies) cpSync(join(repo, from), join(app, to), { recursive: true });
  for (const pkg of ['koffi', '@koromix']) {
    cpSync(join(repo, 'node_modules', pkg), join(app, 'node_modules', pkg), { recursive: true });
  }
  assert.deepEqual(readdirSync(join(app, 'node_modules')).sort(), ['@koromix', 'koffi']);
  const main = join(app, entry.at(-1)!.replace(/^\/app\//, ''));
  const node = entry.slice(3, -1); // node flags from ENTRYPOINT
  assert.ok(
    node.every((a) => a.startsWith('--')),
    `unexpected ENTRYPOINT ${entry.join(' ')}`,
  );
  return { main, node };
}

it("the Dockerfile's runtime layout (bundle, protos, package.json, koffi only) serves CSI", async () => {
  const { main, node } = await assembleRuntime();
  const { stdout: version } = await run(process.execPath, [...node, main, '--version'], { cwd: tmpdir() });
  assert.match(version, /^cce-secrets-manager \d+\.\d+\.\d+/);

  const socket = join(mkdtempSync(join(tmpdir(), 'cce-image-sock-')), 'csi.sock');
  const child = spawn(
    process.execPath,
    [
      ...node,
      main,
      'serve',
      `--endpoint=unix://${socket}`,
      '--nodeid=image-node',
      `--kubeconfig=${kubeconfigPath}`,
      '--csms-endpoint=http://127.0.0.1:9',
      '--project-id=p',
      '--metrics-addr=',
    ],
    { cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let logs = '';
  child.stderr.on('data', (d: Buffer) => {
    logs += d.toString();
  });
  const kubelet = new Kubelet(socket);
  try {
    for (let i = 0; ; i++) {
      const probe = await kubelet.call<{ ready?: { value: boolean } }>('Identity', 'Probe', {}).catch(() => undefined);
      if (probe?.ready?.value) break;
      assert.ok(i < 300 && child.exitCode === null, `the image layout did not become ready:\n${logs}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(
      (await kubelet.call<{ name: string }>('Identity', 'GetPluginInfo', {})).name,
      'secrets-store.csi.k8s.io',
    );
  } finally {
    kubelet.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  assert.equal(child.exitCode, 0, logs);
});
