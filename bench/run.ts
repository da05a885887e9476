// Benchmarks against the same real control plane as the tests; they print numbers.
// Usage: npm run bench [-- publish|rotation|mounts|provider|upstream|webhook|scale|sync|investigations/api-write|investigations/grpc-rtt]
// Runs itself with the driver's production Node flags (bench/node-flags.ts), so the
// in-process benchmarks measure memory as the driver would use it.
import { spawnSync } from 'node:child_process';
import { installTools, startControlPlane } from '../test/cluster/control-plane.js';
import { DRIVER_NODE_ENV, DRIVER_NODE_FLAGS } from './node-flags.js';
import { provenance } from './stats.js';

if (!process.env.CCE_BENCH_CHILD) {
  const r = spawnSync(
    '/usr/bin/env',
    [...DRIVER_NODE_ENV, process.execPath, ...DRIVER_NODE_FLAGS, process.argv[1], ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, CCE_BENCH_CHILD: '1' } },
  );
  process.exit(r.status ?? 1);
}

const which = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['publish', 'rotation'];
const plane = await startControlPlane(installTools());
process.env.CCE_TEST_KUBECONFIG = plane.kubeconfig;
process.env.CCE_TEST_BIN = plane.binDir;
console.log(`Taken on ${provenance()}`);
try {
  for (const name of which) {
    console.log(`--- ${name}`);
    const mod = (await import(`./${name}.js`)) as { run(): Promise<void> };
    await mod.run();
  }
} finally {
  await plane.stop();
}
