// Clean-up that kubelet does not wait for: held back while calls are in flight, never forever.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { DeferredWork } from '../../src/driver/deferred-work.js';
import { sleep } from '../../src/util/async.js';

const work = (maxDelayMs = 5_000) => new DeferredWork({ quietMs: 20, maxDelayMs, concurrency: 2 });

it('runs a task once no call has been in flight for a moment', async () => {
  const w = work();
  const ran: string[] = [];
  let release!: () => void;
  const call = w.during(() => new Promise<void>((r) => (release = r)));
  w.add('a', async () => void ran.push('a'));
  await sleep(60);
  assert.deepEqual(ran, [], 'held back while a call is in flight');
  release();
  await call;
  await sleep(60);
  assert.deepEqual(ran, ['a']);
});

it('runs a task after maxDelayMs even while calls keep coming', async () => {
  const w = work(80);
  const ran: string[] = [];
  w.add('a', async () => void ran.push('a'));
  const busyUntil = Date.now() + 300;
  while (Date.now() < busyUntil && ran.length === 0) await w.during(() => sleep(5));
  assert.deepEqual(ran, ['a']);
});

it('gives a task back to a call for the same volume, and settles the rest at once', async () => {
  const w = work();
  const ran: string[] = [];
  w.add('a', async () => void ran.push('a'));
  w.add('b', async () => void ran.push('b'));
  const mine = w.take('a');
  assert.ok(mine);
  assert.equal(w.take('a'), undefined);
  await w.settled();
  assert.deepEqual(ran, ['b']);
  await mine();
  assert.deepEqual(ran, ['b', 'a']);
});

it('keeps going when a task fails', async () => {
  const w = work();
  const ran: string[] = [];
  w.add('a', async () => {
    throw new Error('boom');
  });
  w.add('b', async () => void ran.push('b'));
  await w.settled();
  assert.deepEqual(ran, ['b']);
});
