// The test command: one real control plane for the whole run, then node's test
// runner over the compiled tests, then teardown whatever happened.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { installTools, startControlPlane, type ControlPlane } from './cluster/control-plane.js';

const here = import.meta.dirname;
const targets = process.argv.slice(2).length > 0
  ? process.argv.slice(2)
  : ['unit', 'integration'].map((d) => join(here, d)).filter((d) => existsSync(d));

function fail(message: string): never {
  console.error(`test: ERROR: ${message}`);
  process.exit(1);
}

if (process.getuid?.() !== 0) {
  fail('the tests mount tmpfs volumes as kubelet would and must run as root (try: sudo npm test)');
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
  fail(`could not start the control plane: ${(err as Error).message}`);
}
console.log(`test: control plane ready in ${((Date.now() - t0) / 1000).toFixed(1)}s at ${plane.server}`);

const runner = spawn(process.execPath, ['--enable-source-maps', '--test', ...targets], {
  stdio: 'inherit',
  env: { ...process.env, CCE_TEST_KUBECONFIG: plane.kubeconfig, CCE_TEST_BIN: binDir },
});

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    runner.kill('SIGTERM');
    await plane.stop();
  }
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void shutdown(130));
runner.on('exit', (code, signal) => void shutdown(code ?? (signal ? 1 : 0)));
