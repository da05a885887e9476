// Rotation backs off from volumes that keep failing, across cycles, and comes back on its own:
// the backoff alone, then a RotationReconciler over in-memory parts.
import assert from 'node:assert/strict';
import { afterEach, it } from 'node:test';
import { createMetrics } from '../../src/metrics.js';
import { FailureBackoff } from '../../src/reconciler/failure-backoff.js';
import { RotationReconciler } from '../../src/reconciler/rotation.js';
import { Parts } from '../helpers/publisher-parts.js';
import type { EventRecorder } from '../../src/kube/events.js';

let parts: Parts;
afterEach(() => parts?.cleanup());

/** The cycles at which a volume that always fails is tried, over `cycles` cycles. */
function attempts(random: () => number, cycles: number): number[] {
  const b = new FailureBackoff(random);
  const tried: number[] = [];
  for (let c = 1; c <= cycles; c++) {
    if (!b.due('v')) continue;
    tried.push(c);
    b.record('v', true);
  }
  return tried;
}

it('waits 1, 2, 4 ... at most 32 cycles between tries, each between half and all of its ceiling', () => {
  assert.deepEqual(
    attempts(() => 0.999, 200),
    [1, 2, 4, 8, 16, 32, 64, 96, 128, 160, 192],
  );
  assert.deepEqual(
    attempts(() => 0, 40),
    [1, 2, 3, 5, 9, 17, 33],
  );
  const b = new FailureBackoff(() => 0.999);
  for (let i = 0; i < 5; i++) b.record('v', true);
  b.record('v', false);
  assert.equal(b.due('v'), true, 'a success ends the backoff');
  b.record('gone', true);
  b.retain(['v']);
  assert.equal(b.size, 0, 'volumes that are gone are forgotten');
});

it('a volume whose secret is gone is read ever more rarely, and rotates again once it is back', async () => {
  parts = new Parts();
  const publisher = parts.publisher();
  const req = parts.request();
  await publisher.publish(req);
  const quiet = () => undefined;
  const rotation = new RotationReconciler({
    publisher,
    source: parts.source(),
    events: { emit: quiet } as unknown as EventRecorder,
    log: { info: quiet, warn: quiet, error: quiet, v: () => ({ info: quiet }) },
    metrics: createMetrics(),
    intervalMs: 60_000,
    random: () => 0.999,
  });
  const reads = () => parts.fetched.filter((o) => o.name === 'secret_1').length;
  const kept = parts.store.get('secret_1')!;
  parts.store.delete('secret_1');
  const before = reads();
  let backingOff = 0;
  for (let i = 0; i < 12; i++) backingOff += (await rotation.runCycle()).backingOff;
  assert.equal(reads() - before, 4, 'tried at cycles 1, 2, 4 and 8 of 12');
  assert.equal(backingOff, 8);
  rotation.refreshed(req.targetPath); // an SPC edit rewrote it: no more waiting
  const tried = reads();
  await rotation.runCycle();
  assert.equal(reads(), tried + 1, 'tried at once');
  parts.store.set('secret_1', [...kept, 'one-v3']);
  for (let i = 0; i < 8 && (await rotation.runCycle()).updated === 0; i++);
  assert.equal((await import('node:fs')).readFileSync(`${req.targetPath}/secret_1`, 'utf8'), 'one-v3');
  const after = reads();
  await rotation.runCycle();
  assert.equal(reads(), after + 1, 'every cycle again');
});
