// The signal many operations listen to at once: no leak warning for a crowd of listeners, and
// still an ordinary signal; namespaces taking turns for a pass's places.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { forEachFairly, sharedAbortController, sleep } from '../../src/util/async.js';

function warningsDuring(fn: () => void): Promise<Error[]> {
  const seen: Error[] = [];
  const onWarning = (w: Error) => seen.push(w);
  process.on('warning', onWarning);
  fn();
  // Node emits process warnings on a later tick.
  return new Promise((resolve) =>
    setImmediate(() => {
      process.off('warning', onWarning);
      resolve(seen);
    }),
  );
}

it('a plain EventTarget warns past 10 listeners; the shared signal does not, and still aborts them all', async () => {
  // An AbortSignal warned as well before Node.js 24; the shared one is still set to not warn.
  const plain = new EventTarget();
  const warned = await warningsDuring(() => {
    for (let i = 0; i < 11; i++) plain.addEventListener('x', () => undefined);
  });
  assert.ok(warned.some((w) => w.name === 'MaxListenersExceededWarning'));

  const shared = sharedAbortController();
  let aborted = 0;
  const quiet = await warningsDuring(() => {
    for (let i = 0; i < 200; i++) shared.signal.addEventListener('abort', () => aborted++, { once: true });
  });
  assert.deepEqual(quiet, []);
  shared.abort(new Error('stop'));
  assert.equal(aborted, 200);
  assert.equal((shared.signal.reason as Error).message, 'stop');
});

it("no group holds more than its share: one namespace's slow items leave the others' places free", async () => {
  const items = [
    ...Array.from({ length: 12 }, (_, i) => ({ ns: 'slow', i })),
    ...Array.from({ length: 12 }, (_, i) => ({ ns: 'fast', i })),
  ];
  const running = new Map<string, number>();
  let most = 0;
  const finished: string[] = [];
  await forEachFairly(
    items,
    (x) => x.ns,
    { limit: 4, perKey: 2 },
    async (x) => {
      running.set(x.ns, (running.get(x.ns) ?? 0) + 1);
      most = Math.max(most, running.get(x.ns)!);
      await sleep(x.ns === 'slow' ? 40 : 1);
      running.set(x.ns, running.get(x.ns)! - 1);
      finished.push(x.ns);
    },
  );
  assert.equal(finished.length, 24, 'every item ran');
  assert.equal(most, 2, 'at most perKey at once for one group');
  assert.ok(finished.lastIndexOf('fast') < 12, `the fast group finished first: ${finished.join(',')}`);
});

it('a failing item does not stop the others, and an aborted pass starts no more', async () => {
  const seen: number[] = [];
  await forEachFairly(
    [1, 2, 3],
    () => 'k',
    { limit: 1, perKey: 1 },
    async (n) => {
      seen.push(n);
      if (n === 1) throw new Error('one fails');
    },
  );
  assert.deepEqual(seen, [1, 2, 3]);
  const stop = new AbortController();
  const started: number[] = [];
  await forEachFairly(
    [1, 2, 3],
    () => 'k',
    { limit: 1, perKey: 1 },
    async (n) => {
      started.push(n);
      stop.abort();
    },
    stop.signal,
  );
  assert.deepEqual(started, [1]);
});
