// The Node.js flags the driver runs with are written in places that cannot share code (the
// executable's shebang, the image's ENTRYPOINT, the chart's commands): they must say the same
// thing. The benches read them from the shebang (bench/node-flags.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { it } from 'node:test';

const repo = resolve(import.meta.dirname, '../../..');
const read = (path: string) => readFileSync(join(repo, path), 'utf8');
/** Every flag but the heap size, which the chart sets per command (heapMiB, the webhook's 96). */
const FLAGS = ['--max-semi-space-size=1', '--disable-warning=DEP0169'];

it('the shebang, the ENTRYPOINT and the chart run node with the same flags', () => {
  const places: Record<string, string> = {
    'src/main.ts': read('src/main.ts').split('\n')[0],
    Dockerfile: /^ENTRYPOINT .*$/m.exec(read('Dockerfile'))![0],
    'templates/daemonset.yaml': read('charts/cce-secrets-manager/templates/daemonset.yaml'),
    'templates/provider-daemonset.yaml': read('charts/cce-secrets-manager/templates/provider-daemonset.yaml'),
    'templates/webhook.yaml': /command: \[tini.*\]/.exec(read('charts/cce-secrets-manager/templates/webhook.yaml'))![0],
  };
  for (const [where, text] of Object.entries(places)) {
    for (const flag of FLAGS) assert.ok(text.includes(flag), `${where} lacks ${flag}`);
    assert.match(text, /--max-old-space-size=/, `${where} sets no heap limit`);
  }
  assert.match(read('src/main.ts').split('\n')[0], /MALLOC_ARENA_MAX=2/);
  assert.match(read('Dockerfile'), /^ENV MALLOC_ARENA_MAX=2$/m);
});

it("the benches run node with the shebang's flags", async () => {
  const { DRIVER_NODE_ENV, DRIVER_NODE_FLAGS } = await import('../../bench/node-flags.js');
  assert.deepEqual(DRIVER_NODE_ENV, ['MALLOC_ARENA_MAX=2']);
  for (const flag of FLAGS) assert.ok(DRIVER_NODE_FLAGS.includes(flag), `the benches lack ${flag}`);
  assert.ok(DRIVER_NODE_FLAGS.some((f) => f.startsWith('--max-old-space-size=')));
});
