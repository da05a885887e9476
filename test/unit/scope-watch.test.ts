// ScopeWatch on a clock the test moves: how each way a watch can end is answered (at once,
// after a backoff, from the same version or from a new list), that an expired starting
// point is reported, and that reads during a failed list's backoff send no list.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Logger } from '../../src/log.js';
import { Backoff } from '../../src/kube/backoff.js';
import { OVERSIZED } from '../../src/kube/object-budget.js';
import { ScopeWatch, type WatchFn } from '../../src/kube/scope-watch.js';
import { ManualClock, settle } from '../helpers/manual-clock.js';

const quiet: Logger = { info() {}, warn() {}, error() {}, v: () => ({ info() {} }) };

/** One scope's API: lists, watch calls and aborts, in order, and the current watch's feed. */
class FakeScope {
  readonly calls: string[] = [];
  rv = 10;
  failList = false;
  feed?: { event: (type: string, obj: unknown) => void; end: (err?: unknown) => void };
  expired = 0;

  watch: WatchFn = async (_path, query, onEvent, done) => {
    this.calls.push(`watch @${query.resourceVersion}`);
    this.feed = { event: onEvent, end: done };
    return {
      abort: () => {
        this.calls.push('abort');
        setImmediate(() => done(Object.assign(new Error('aborted'), { name: 'AbortError' })));
      },
    };
  };

  make(clock: ManualClock): ScopeWatch {
    return new ScopeWatch({
      kind: 'Thing',
      scope: 'a',
      path: '/ns/a',
      listOne: async () => {
        this.calls.push('list');
        if (this.failList) throw new Error('API server down');
        return { metadata: { resourceVersion: String(++this.rv) } };
      },
      watch: this.watch,
      onEvent: () => undefined,
      onExpired: () => this.expired++,
      log: quiet,
      clock,
      // Half the ceiling each time: a first backoff is 250 ms, never zero.
      backoff: new Backoff(500, 30_000, () => 0.5),
    });
  }
}

/** Longer than any backoff after a first failure (its ceiling is 500 ms, doubling). */
const PAST_BACKOFF = 30_000;

const ends: {
  what: string;
  /** How long the watch ran before it ended. */
  ranMs: number;
  end: (s: FakeScope) => void;
  /** Calls made with no time passing, then once any backoff has passed. */
  atOnce: string[];
  afterBackoff: string[];
  expired: number;
}[] = [
  {
    what: 'the server ended a long watch (its timeout): again at once, from the last version seen, a bookmark too',
    ranMs: 300_000,
    end: (s) => {
      s.feed!.event('BOOKMARK', { metadata: { resourceVersion: '15' } });
      s.feed!.end();
    },
    atOnce: ['watch @15'],
    afterBackoff: [],
    expired: 0,
  },
  {
    what: 'a watch ended at once with no error (a proxy that cuts watches): waits its backoff',
    ranMs: 0,
    end: (s) => s.feed!.end(),
    atOnce: [],
    afterBackoff: ['watch @11'],
    expired: 0,
  },
  {
    what: 'a failed watch (connection reset): waits its backoff, then goes on from the same version, no list',
    ranMs: 5_000,
    end: (s) => s.feed!.end(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })),
    atOnce: [],
    afterBackoff: ['watch @11'],
    expired: 0,
  },
  {
    what: '410 Gone: told expired, the watch is ended, and it starts over from a new list',
    ranMs: 5_000,
    end: (s) => s.feed!.event('ERROR', { kind: 'Status', code: 410, reason: 'Expired' }),
    atOnce: ['abort'],
    afterBackoff: ['list', 'watch @12'],
    expired: 1,
  },
  {
    what: 'an object grown over the budget: told expired (kept objects are read again), the watch goes on',
    ranMs: 5_000,
    end: (s) => s.feed!.event(OVERSIZED, { bytes: 10, limit: 5 }),
    atOnce: [],
    afterBackoff: [],
    expired: 1,
  },
];

for (const row of ends) {
  it(row.what, async () => {
    const clock = new ManualClock();
    const s = new FakeScope();
    const w = s.make(clock);
    await w.started();
    await settle();
    assert.deepEqual(s.calls, ['list', 'watch @11']);
    await clock.advance(row.ranMs);
    s.calls.length = 0;
    row.end(s);
    await clock.advance(0);
    assert.deepEqual(s.calls, row.atOnce, 'with no time passing');
    await clock.advance(PAST_BACKOFF);
    assert.deepEqual(s.calls, [...row.atOnce, ...row.afterBackoff], 'once the backoff has passed');
    assert.equal(s.expired, row.expired);
    w.stop();
  });
}

it('a failed list is answered again during its backoff without a new list, then retried by itself', async () => {
  const clock = new ManualClock();
  const s = new FakeScope();
  s.failList = true;
  const w = s.make(clock);
  await assert.rejects(w.started(), /API server down/);
  s.failList = false;
  for (let i = 0; i < 3; i++) await assert.rejects(w.started(), /API server down/);
  assert.deepEqual(s.calls, ['list']);
  await clock.advance(PAST_BACKOFF);
  assert.deepEqual(s.calls, ['list', 'list', 'watch @11'], 'retried when the backoff passed, with no read asking');
  await w.started();
  w.stop();
});

it('a stopped watch is ended and never starts again', async () => {
  const clock = new ManualClock();
  const s = new FakeScope();
  const w = s.make(clock);
  await w.started();
  await settle();
  w.stop();
  await clock.advance(PAST_BACKOFF * 10);
  assert.deepEqual(s.calls, ['list', 'watch @11', 'abort']);
  assert.equal(clock.waiting, 0, 'no timer left behind');
});
