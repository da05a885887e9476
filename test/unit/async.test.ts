// The signal many operations listen to at once: no leak warning for a crowd of listeners, and
// still an ordinary signal.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sharedAbortController } from '../../src/util/async.js';

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

test('a plain AbortController warns past 10 listeners; the shared one does not, and still aborts them all', async () => {
  const plain = new AbortController();
  const warned = await warningsDuring(() => {
    for (let i = 0; i < 11; i++) plain.signal.addEventListener('abort', () => undefined);
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
