// The test command: one real control plane for the whole run, then node's test
// runner over the compiled tests, then teardown whatever happened. Given unit tests only,
// just node's test runner.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installTools, startControlPlane, type ControlPlane } from './cluster/control-plane.js';
import { unmountWhere } from './helpers/proc.js';

const here = import.meta.dirname;
// node --test takes files and glob patterns (since Node.js 21, no folders).
const targets =
  process.argv.slice(2).length > 0
    ? process.argv.slice(2)
    : ['unit', 'integration'].filter((d) => existsSync(join(here, d))).map((d) => join(here, d, '**/*.test.js'));

function fail(message: string): never {
  console.error(`test: ERROR: ${message}`);
  process.exit(1);
}

// The suite, the demo, the benches and the image run on the one Node.js of .node-version
// (npm test puts it first on PATH through scripts/with-node.sh).
const pinned = `v${readFileSync(join(here, '../../.node-version'), 'utf8').trim()}`;
if (process.version !== pinned) {
  const message = `running on Node.js ${process.version}, not the project's ${pinned} (.node-version); run npm test, which uses scripts/with-node.sh`;
  if (process.env.CI === 'true') fail(message);
  console.warn(`test: WARNING: ${message}`);
}

// Unit tests alone need no root, no tools and no control plane (npm run test:unit).
if (targets.every((t) => /(^|\/)unit\//.test(t))) {
  const unit = spawnSync(process.execPath, ['--enable-source-maps', '--test', ...targets], { stdio: 'inherit' });
  process.exit(unit.status ?? 1);
}

if (process.getuid?.() !== 0) {
  fail('the tests mount tmpfs volumes as kubelet would and must run as root (e.g. sudo npm test)');
}

let t0 = Date.now();
let binDir: string;
try {
  binDir = installTools();
} catch {
  fail('could not install the Kubernetes test tools (see the install-tools messages above)');
}
console.log(`test: tools ready in ${((Date.now() - t0) / 1000).toFixed(1)}s at ${binDir}`);

t0 = Date.now();
let plane: ControlPlane;
try {
  plane = await startControlPlane(binDir);
} catch (err) {
  fail(`could not start the control plane: ${err instanceof Error ? err.message : String(err)}`);
}
console.log(`test: control plane ready in ${((Date.now() - t0) / 1000).toFixed(1)}s at ${plane.server}`);

// Its own process group, so drivers that a failed test left running can be ended with it.
// One file at a time: the files share one control plane, and the real node's bridge, addresses
// and buildah storage are the host's.
const runner = spawn(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=1', ...targets], {
  stdio: 'inherit',
  detached: true,
  env: { ...process.env, CCE_TEST_KUBECONFIG: plane.kubeconfig, CCE_TEST_BIN: binDir },
});

/** tmpfs mounts that tests made under the temp folder and did not take down. */
const leftoverMount = (point: string) => point.startsWith(join(tmpdir(), 'cce-'));

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    try {
      process.kill(-runner.pid!, 'SIGKILL');
    } catch {
      // the group is already gone
    }
    const unmounted = unmountWhere(leftoverMount);
    if (unmounted > 0) console.log(`test: unmounted ${unmounted} tmpfs left by tests`);
    await plane.stop();
  }
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void shutdown(130));
runner.on('exit', (code, signal) => void shutdown(code ?? (signal ? 1 : 0)));
