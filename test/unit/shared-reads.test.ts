// Shared reads and cancellation: a caller that gives up stops waiting at once, the shared
// request is cancelled only when every caller has, and a new caller after that starts afresh.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { SecretVersion } from '../../src/provider/secret-source.js';
import { SharedReads } from '../../src/provider/shared-reads.js';

const creds = { accessKey: 'AK', secretKey: 'SK' };
const object = { name: 's1', version: 'latest' };

/** A store whose reads wait until told; it records each read's signal. */
function gatedStore() {
  const started: AbortSignal[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const readOne = async (_: unknown, signal: AbortSignal): Promise<SecretVersion> => {
    started.push(signal);
    const aborted = new Promise((_, reject) =>
      signal.addEventListener('abort', () =>
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')),
      ),
    );
    await Promise.race([gate, aborted]);
    return { name: 's1', versionId: 'v1', value: Buffer.from('value') };
  };
  return { started, readOne, open: () => open() };
}

const cases: { callers: number; abort: number[]; read: 'goes on' | 'cancelled' }[] = [
  { callers: 2, abort: [], read: 'goes on' },
  { callers: 2, abort: [0], read: 'goes on' },
  { callers: 3, abort: [0, 2], read: 'goes on' },
  { callers: 2, abort: [0, 1], read: 'cancelled' },
  { callers: 1, abort: [0], read: 'cancelled' },
];
for (const { callers, abort, read } of cases) {
  it(`${callers} callers of one read, ${abort.length} giving up: one request, which ${read}`, async () => {
    const store = gatedStore();
    const shared = new SharedReads();
    const controllers = Array.from({ length: callers }, () => new AbortController());
    const results = controllers.map((c) => shared.fetch([object], creds, store.readOne, c.signal));
    for (const i of abort) controllers[i].abort(new Error(`caller ${i} gave up`));
    for (const i of abort) await assert.rejects(results[i], new RegExp(`caller ${i} gave up`));
    assert.equal(store.started.length, 1, 'identical reads share one request');
    assert.equal(store.started[0].aborted, read === 'cancelled');
    store.open();
    for (const [i, r] of results.entries()) {
      if (!abort.includes(i)) assert.equal((await r)[0].value.toString(), 'value', `caller ${i} gets the value`);
    }
    if (read === 'cancelled') {
      const again = shared.fetch([object], creds, store.readOne);
      assert.equal((await again)[0].versionId, 'v1');
      assert.equal(store.started.length, 2, 'a caller after the cancel starts a new read');
    }
  });
}

it('a caller whose signal has already fired starts nothing', async () => {
  const store = gatedStore();
  const gone = AbortSignal.abort(new Error('too late'));
  await assert.rejects(async () => new SharedReads().fetch([object], creds, store.readOne, gone), /too late/);
  assert.equal(store.started.length, 0);
});
