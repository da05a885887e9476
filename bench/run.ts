// Benchmarks against the same real control plane as the tests; prints numbers.
// Usage: npm run bench [-- publish]
import { installTools, startControlPlane } from '../test/cluster/control-plane.js';

const which = process.argv[2] ?? 'publish';
const plane = await startControlPlane(installTools());
process.env.CCE_TEST_KUBECONFIG = plane.kubeconfig;
process.env.CCE_TEST_BIN = plane.binDir;
try {
  const mod = (await import(`./${which}.js`)) as { run(): Promise<void> };
  await mod.run();
} finally {
  await plane.stop();
}
