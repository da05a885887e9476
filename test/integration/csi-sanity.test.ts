// kubernetes-csi's conformance suite, csi-sanity, against the shipped executable's
// `serve` with the real API server: every Identity and Node spec that applies to a
// node-only, ephemeral-only driver passes. Specs that cannot apply are skipped, each
// with its reason below.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { binDir } from '../helpers/cluster.js';
import { DriverProcess, unmountAll } from '../helpers/driver.js';

const run = promisify(execFile);

/**
 * Specs that cannot apply to this driver, by the text ginkgo matches, and why. The
 * specs csi-sanity skips by itself (staging, stats, expansion, controller publish...)
 * follow from the capabilities the driver reports and are not listed.
 */
const SKIPPED: Record<string, string> = {
  ValidateVolumeCapabilities:
    'a Controller RPC: csi-sanity runs it whenever the Controller service answers ControllerGetCapabilities, ' +
    "but a node-only driver has no volumes to validate and answers UNIMPLEMENTED, as upstream's node-only drivers do",
  'should remove target path':
    'starts with CreateVolume, a Controller RPC a node-only, ephemeral driver does not have; ' +
    'test/integration/mount.test.ts checks that NodeUnpublishVolume removes the target path',
};

let driver: DriverProcess;
before(async () => {
  driver = new DriverProcess({ nodeId: 'node-sanity', csmsEndpoint: 'http://127.0.0.1:9', projectId: 'p' });
  await driver.start();
});
after(async () => {
  await driver.stop();
  unmountAll(driver.kubeletRoot);
});

it('passes csi-sanity', async () => {
  const work = mkdtempSync(join(tmpdir(), 'cce-sanity-'));
  const args = [
    `--csi.endpoint=unix://${driver.socket}`,
    `--csi.mountdir=${join(work, 'mount')}`,
    `--csi.stagingdir=${join(work, 'staging')}`,
    '--ginkgo.no-color',
    '--ginkgo.v',
  ];
  const skip = Object.keys(SKIPPED);
  if (skip.length) args.push(`--ginkgo.skip=${skip.join('|')}`);
  const r = await run(join(binDir, 'csi-sanity'), args, { maxBuffer: 64 * 1024 * 1024 }).then(
    (x) => ({ code: 0, out: x.stdout + x.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  );
  assert.equal(r.code, 0, r.out.slice(-20000));
  const summary = /(\d+) Passed \| (\d+) Failed \| \d+ Pending \| \d+ Skipped/.exec(r.out);
  assert.ok(summary, r.out.slice(-2000));
  assert.equal(summary[2], '0');
  // With -v, ginkgo prints each spec between rules of dashes: its name first, then "•" if it
  // ran (and passed, failures being none) or "S [SKIPPED]".
  const ran = r.out
    .split(/^\s*-{20,}\s*$/m)
    .filter((chunk) => /^\s*• \[/m.test(chunk))
    .map((chunk) => chunk.trim().split('\n')[0]);
  assert.equal(ran.length, Number(summary[1]));
  for (const spec of ['GetPluginInfo', 'Probe', 'ControllerGetCapabilities', 'NodeGetCapabilities', 'NodeGetInfo']) {
    assert.ok(
      ran.some((t) => t.includes(spec)),
      `a ${spec} spec ran: ${ran.join('; ')}`,
    );
  }
  for (const rpc of ['NodePublishVolume', 'NodeUnpublishVolume']) {
    assert.ok(ran.filter((t) => t.includes(rpc)).length >= 2, `the ${rpc} argument checks ran: ${ran.join('; ')}`);
  }
});
