// Our driver with its built-in CSMS provider beside the upstream driver v1.6.0 (as shipped,
// and with its client rate limit lifted) with upstream's fake provider: the same pods, one
// API server. Our side does more per mount: 3 signed HTTP reads from the CSMS emulator (its
// own process, standing in for remote CSMS, not counted as our CPU), the allow-list and the
// pod checks. BENCH_ROUNDS rounds (default 3); see side-by-side.ts. BENCH_CPU_PROF=<dir> writes
// a CPU profile of our driver there; BENCH_NODE_FLAGS tries other V8 settings, and
// BENCH_NODE_FLAGS_B adds more sides of ours with those (";" between sides).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSpc } from '../test/helpers/cluster.js';
import { DriverProcess, executable } from '../test/helpers/driver.js';
import { BENCH_CREDS, BENCH_CREDS_ENV, BENCH_PROJECT_ID, startEmulatorProcess } from './emulator-process.js';
import { startFakeProvider, upstreamSides } from './provider.js';
import { benchNode, BENCH_SPC, ourMemory, sideBySide, type Side } from './side-by-side.js';
import { DRIVER_NODE_ENV, DRIVER_NODE_FLAGS } from './node-flags.js';

const objects = ['db:latest', 'api:v1', 'tls:latest']
  .map((o) => o.split(':'))
  .map(([name, version]) => `- {objectName: ${name}, objectType: csms, objectVersion: ${version}}\n`)
  .join('');

/**
 * The image's command with other Node flags: `--cpu-prof` (BENCH_CPU_PROF=<dir>, the profile
 * is written when the driver exits) and/or V8 settings replacing those of src/main.ts.
 */
function driverWrapper(
  flags: string | undefined,
  bundle = executable,
  nodePath = process.execPath,
): string | undefined {
  const profDir = process.env.BENCH_CPU_PROF;
  if (!profDir && !flags && bundle === executable && nodePath === process.execPath) return undefined;
  const path = join(mkdtempSync(join(tmpdir(), 'cce-bench-node-')), 'driver');
  const prof = profDir ? `--cpu-prof --cpu-prof-dir=${profDir}` : '';
  // Words such as MALLOC_TRIM_THRESHOLD_=131072 among the flags set the environment instead.
  const words = flags ? flags.split(' ').filter(Boolean) : DRIVER_NODE_FLAGS;
  const env = [...DRIVER_NODE_ENV, ...words.filter((w) => /^[A-Z_]+=/.test(w))].join(' ');
  const node = `${nodePath} ${prof} ${words.filter((w) => !/^[A-Z_]+=/.test(w)).join(' ')}`;
  writeFileSync(path, `#!/bin/sh\n${env} exec ${node} ${bundle} "$@"\n`, { mode: 0o755 });
  return path;
}

/** Our driver with its CSMS provider, on its own node, as a side of the comparison. */
async function ourSide(name: string, node: string, csms: string, flags?: string, bundle?: string, nodePath?: string) {
  const driver = new DriverProcess({
    nodeId: node,
    csmsEndpoint: csms,
    projectId: BENCH_PROJECT_ID,
    env: BENCH_CREDS_ENV,
    executable: driverWrapper(flags, bundle, nodePath),
    extraArgs: ['-v=0'],
  });
  await driver.start();
  const side: Side = {
    name,
    node,
    kubelet: driver.kubelet,
    pid: () => driver.pid!,
    root: driver.kubeletRoot,
    makeSpc: (ns) => createSpc(ns, BENCH_SPC, objects),
    memory: () => ourMemory(driver),
  };
  return { side, stop: () => driver.stop() };
}

export async function run(): Promise<void> {
  const emulator = await startEmulatorProcess({
    projectId: BENCH_PROJECT_ID,
    credentials: [BENCH_CREDS],
    secrets: ['db', 'api', 'tls'].map((name) => ({ name, versions: [`${name}-value-1`, `${name}-value-2`] })),
  });
  const providerDir = mkdtempSync(join(tmpdir(), 'cce-bench-providers-'));
  const provider = await startFakeProvider(providerDir);
  const ours = [await ourSide('ours (cce, CSMS)', benchNode('ours'), emulator.url, process.env.BENCH_NODE_FLAGS)];
  // BENCH_NODE_FLAGS_B="...": more sides of ours with other Node flags (words like X=1 set the
  // environment), separated by ";", to compare them in one run.
  const flagsB = (process.env.BENCH_NODE_FLAGS_B ?? '').split(';').filter((f) => f.trim());
  for (const [i, flags] of flagsB.entries()) {
    // Named by what differs from the shipped flags.
    const label = flags
      .split(' ')
      .filter((w) => w && !DRIVER_NODE_FLAGS.includes(w))
      .join(' ');
    ours.push(await ourSide(`ours with ${label}`, benchNode(`ours-${'bcdefg'[i]}`), emulator.url, flags));
  }
  // BENCH_BUNDLE_B=<other build's dist/cce-secrets-manager.mjs>: a second side of ours running
  // another build (an earlier commit's, say), to compare before and after in one run.
  const bundleB = process.env.BENCH_BUNDLE_B;
  if (bundleB) ours.push(await ourSide('ours, other build', benchNode('ours-b'), emulator.url, undefined, bundleB));
  // BENCH_NODE_B=<another node binary>: a second side of ours on that Node.js (runtime upgrades).
  const nodeB = process.env.BENCH_NODE_B;
  if (nodeB) {
    const version = execFileSync(nodeB, ['--version'], { encoding: 'utf8' }).trim();
    ours.push(
      await ourSide(`ours on Node.js ${version}`, benchNode('ours-b'), emulator.url, undefined, undefined, nodeB),
    );
  }
  // BENCH_OURS_ONLY=1: our sides alone.
  const upstream = process.env.BENCH_OURS_ONLY
    ? { sides: [], stop: async () => undefined }
    : await upstreamSides(providerDir, provider);
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const sides = [...ours.map((o) => o.side), ...upstream.sides];
    await sideBySide(sides, Number(process.env.BENCH_ROUNDS ?? 3));
  } finally {
    for (const o of ours) await o.stop();
    await upstream.stop();
    await provider.stop();
    emulator.stop();
  }
}
