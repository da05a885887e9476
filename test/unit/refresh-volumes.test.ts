// One refresh pass over many volumes, with in-memory parts: a warning logged once per
// distinct error, an Event per pod, and a stop between volumes when the signal fires.
import assert from 'node:assert/strict';
import { afterEach, it } from 'node:test';
import type { Publisher } from '../../src/driver/publisher.js';
import { refreshVolumes, type RefreshPass } from '../../src/reconciler/refresh-volumes.js';
import { Parts } from '../helpers/publisher-parts.js';

let parts: Parts;
afterEach(() => parts?.cleanup());

async function mounted(count: number): Promise<Publisher> {
  parts = new Parts();
  const publisher = parts.publisher();
  for (let i = 0; i < count; i++) await publisher.publish(parts.request(`aaaa-${String(i).padStart(4, '0')}`));
  return publisher;
}

/** A pass that records what it said (log lines and Events) into `said`. */
function pass(publisher: Publisher, said: string[], extra: Partial<RefreshPass> = {}): RefreshPass {
  const quiet = () => undefined;
  return {
    publisher,
    events: { emit: (pod, _type, reason) => void said.push(`${reason} ${pod.name}`) },
    log: { info: quiet, error: quiet, warn: (msg) => void said.push(`log: ${msg}`), v: () => ({ info: quiet }) },
    volumes: publisher.volumes.all(),
    source: parts.source(),
    specOnly: false,
    concurrency: 1,
    updated: { log: 'rotated', reason: 'Rotated', message: () => 'rotated' },
    failed: { log: 'rotation failed', reason: 'RotationFailed', message: (_, e) => e, count: quiet },
    ...extra,
  };
}

it('a pass refreshes every volume, logging one warning for one error shared by all', async () => {
  const publisher = await mounted(4);
  parts.store.get('secret_1')!.push('one-v3');
  const said: string[] = [];
  assert.deepEqual(await refreshVolumes(pass(publisher, said)), { volumes: 4, updated: 4, failed: 0, storeReads: 1 });
  assert.equal(said.filter((s) => s.startsWith('Rotated')).length, 4);

  parts.store.get('secret_1')!.push('one-v4');
  parts.store.delete('secret_1');
  said.length = 0;
  const result = await refreshVolumes(pass(publisher, said));
  assert.deepEqual([result.updated, result.failed], [0, 4]);
  assert.deepEqual(
    said.filter((s) => s.startsWith('log:')),
    ['log: rotation failed'],
  );
  assert.equal(said.filter((s) => s.startsWith('RotationFailed')).length, 4);
});

it('an aborted pass stops between volumes and reports no failure for the volume it left', async () => {
  const publisher = await mounted(5);
  parts.store.get('secret_1')!.push('one-v3');
  const stopping = new AbortController();
  const said: string[] = [];
  const result = await refreshVolumes(
    pass(publisher, said, {
      signal: stopping.signal,
      updated: { log: 'rotated', reason: 'Rotated', message: () => 'rotated', count: () => stopping.abort() },
    }),
  );
  assert.equal(result.updated, 1, 'the volume under way finishes; no other starts');
  assert.equal(result.failed, 0);
  assert.equal(said.filter((s) => s.startsWith('RotationFailed')).length, 0);
});
