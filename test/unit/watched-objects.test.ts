// WatchedObjects over a watch and a clock the test drives: namespaces are watched only while
// used, a read never starts before its namespace's watch has a starting point, events for
// objects not kept are dropped, what is kept lives as long as its TTL or its use, and an
// expired watch re-reads only its own namespace.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Logger } from '../../src/log.js';
import type { WatchFn } from '../../src/kube/scope-watch.js';
import { WatchedObjects } from '../../src/kube/watched-objects.js';
import { ManualClock } from '../helpers/manual-clock.js';

type Obj = { metadata: { namespace: string; name: string; resourceVersion: string }; value: string };

const quiet: Logger = { info() {}, warn() {}, error() {}, v: () => ({ info() {} }) };

/** Watches the test can feed, and a log of every call in order. */
class FakeCluster {
  readonly calls: string[] = [];
  readonly watches = new Map<string, { onEvent: (t: string, o: unknown) => void; done: (e: unknown) => void }>();
  readonly aborted: string[] = [];
  objects = new Map<string, Obj>();
  rv = 10;
  failList = false;
  podNamespaces = new Set<string>();
  used = new Set<string>();
  readonly clock = new ManualClock();

  watch: WatchFn = async (path, query, onEvent, done) => {
    this.calls.push(`watch ${path}@${query.resourceVersion}`);
    this.watches.set(path, { onEvent, done });
    return {
      abort: () => {
        this.aborted.push(path);
        // As client-node's Watch: an aborted request ends with an AbortError.
        setImmediate(() => done(Object.assign(new Error('aborted'), { name: 'AbortError' })));
      },
    };
  };

  make(opts: { sweepMs?: number; ttlMs?: number; onSize?: (n: number) => void } = {}): WatchedObjects<Obj> {
    return new WatchedObjects<Obj>(
      {
        kind: 'Thing',
        scope: 'namespace',
        pathOf: (ns) => `/ns/${ns}`,
        read: async (ns, name) => {
          this.calls.push(`read ${ns}/${name}`);
          const o = this.objects.get(`${ns}/${name}`);
          if (!o) throw new Error('not found');
          return o;
        },
        listOne: async (ns) => {
          this.calls.push(`list ${ns}`);
          if (this.failList) throw new Error('API server down');
          return { metadata: { resourceVersion: String(this.rv) } };
        },
        inUse: (ns, name) => this.used.has(`${ns}/${name}`),
        scopeInUse: (ns) => this.podNamespaces.has(ns),
        watch: this.watch,
        ttlMs: opts.ttlMs ?? 0,
        sweepMs: opts.sweepMs ?? 1_000_000,
        onSize: opts.onSize,
        clock: this.clock,
      },
      quiet,
    );
  }

  put(ns: string, name: string, value: string): Obj {
    const o = { metadata: { namespace: ns, name, resourceVersion: String(++this.rv) }, value };
    this.objects.set(`${ns}/${name}`, o);
    return o;
  }
}

const tick = () => new Promise((r) => setImmediate(r));

it('a read takes its namespace starting point first, and only that namespace is watched', async () => {
  const c = new FakeCluster();
  c.put('a', 'x', 'one');
  const w = c.make();
  assert.equal((await w.get('a', 'x')).value, 'one');
  await tick();
  assert.deepEqual(c.calls, ['list a', 'watch /ns/a@11', 'read a/x']);
  assert.deepEqual(w.watchedScopes, ['a']);
  w.stop();
});

it('keeps a used object fresh from events, tells listeners, and drops events of objects it does not keep', async () => {
  const c = new FakeCluster();
  c.put('a', 'x', 'one');
  c.used.add('a/x');
  const w = c.make();
  const changed: string[] = [];
  w.onChange((o) => changed.push(`${o.metadata.name}=${o.value}`));
  await w.get('a', 'x');
  await tick();
  const feed = c.watches.get('/ns/a')!;
  feed.onEvent('MODIFIED', c.put('a', 'x', 'two'));
  feed.onEvent('MODIFIED', c.put('a', 'other', 'big'));
  assert.deepEqual(changed, ['x=two']);
  c.calls.length = 0;
  assert.equal((await w.get('a', 'x')).value, 'two', 'served from what the watch brought');
  assert.equal((await w.get('a', 'other').catch(() => undefined))?.value, 'big', 'not kept: read on use');
  assert.deepEqual(c.calls, ['read a/other']);
  w.stop();
});

it('a failed starting point fails the read (not held); reads during its backoff send no list', async () => {
  const c = new FakeCluster();
  c.put('a', 'x', 'one');
  c.failList = true;
  const w = c.make();
  await assert.rejects(w.get('a', 'x'), /API server down/);
  assert.equal(c.calls.includes('read a/x'), false, 'no read without a starting point');
  c.failList = false;
  for (let i = 0; i < 5; i++) await assert.rejects(w.get('a', 'x'), /API server down/);
  assert.deepEqual(
    c.calls.filter((x) => x === 'list a'),
    ['list a'],
    'one list, however many reads',
  );
  w.stop();
});

it('a namespace with no pod of this node and nothing in use is let go; one with a pod is kept', async () => {
  const c = new FakeCluster();
  c.put('a', 'x', 'one');
  c.put('b', 'y', 'one');
  c.podNamespaces.add('b');
  const w = c.make({ sweepMs: 20 });
  await w.start();
  await w.get('a', 'x');
  await w.get('b', 'y');
  await tick();
  await c.clock.advance(60);
  assert.deepEqual(w.watchedScopes, ['b']);
  assert.deepEqual(c.aborted, ['/ns/a']);
  w.stop();
});

it('an expired watch forgets and re-reads only its own namespace', async () => {
  const c = new FakeCluster();
  c.put('a', 'x', 'one');
  c.put('b', 'y', 'one');
  c.used.add('a/x').add('b/y');
  const w = c.make();
  const resynced: string[] = [];
  w.onResync((ns) => resynced.push(ns));
  await w.get('a', 'x');
  await w.get('b', 'y');
  await tick();
  c.watches.get('/ns/a')!.onEvent('ERROR', { code: 410 });
  assert.deepEqual(resynced, ['a']);
  c.calls.length = 0;
  c.put('a', 'x', 'two');
  assert.equal((await w.get('a', 'x')).value, 'two');
  assert.equal((await w.get('b', 'y')).value, 'one');
  assert.deepEqual(c.calls, ['list a', 'read a/x'], 'a new starting point, then the read; b untouched');
  assert.deepEqual(c.aborted, ['/ns/a'], 'the expired watch is ended');
  w.stop();
});

const TTL = 5_000;
const kept: { what: string; used: boolean; firstReadAgoMs: number; eventAgoMs?: number; readAgain: boolean }[] = [
  { what: 'unused, read within its TTL: served as kept', used: false, firstReadAgoMs: 1_000, readAgain: false },
  { what: 'unused, read longer ago than its TTL: read again', used: false, firstReadAgoMs: 6_000, readAgain: true },
  {
    what: 'in use, read an hour ago: served as kept (its watch keeps it fresh)',
    used: true,
    firstReadAgoMs: 3_600_000,
    readAgain: false,
  },
  {
    what: 'unused, but an event brought it within its TTL: served as kept',
    used: false,
    firstReadAgoMs: 6_000,
    eventAgoMs: 1_000,
    readAgain: false,
  },
];

for (const row of kept) {
  it(`TTL: ${row.what}`, async () => {
    const c = new FakeCluster();
    c.put('a', 'x', 'one');
    if (row.used) c.used.add('a/x');
    const w = c.make({ ttlMs: TTL });
    await w.get('a', 'x');
    await tick();
    if (row.eventAgoMs === undefined) await c.clock.advance(row.firstReadAgoMs);
    else {
      await c.clock.advance(row.firstReadAgoMs - row.eventAgoMs);
      c.watches.get('/ns/a')!.onEvent('MODIFIED', c.put('a', 'x', 'two'));
      await c.clock.advance(row.eventAgoMs);
    }
    c.calls.length = 0;
    await w.get('a', 'x');
    assert.deepEqual(c.calls, row.readAgain ? ['read a/x'] : []);
    w.stop();
  });
}

it('TTL: the sweep lets go of what is unused past its TTL and keeps what is used', async () => {
  const c = new FakeCluster();
  c.put('a', 'x', 'one');
  c.put('a', 'y', 'one');
  c.used.add('a/y');
  const sizes: number[] = [];
  const w = c.make({ ttlMs: TTL, sweepMs: 1_000, onSize: (n) => sizes.push(n) });
  await w.start();
  await w.get('a', 'x');
  await w.get('a', 'y');
  await c.clock.advance(TTL - 1_000);
  assert.equal(sizes.at(-1), 2, 'both kept within the TTL');
  await c.clock.advance(2_000);
  assert.equal(sizes.at(-1), 1, 'the unused one let go');
  assert.deepEqual(w.watchedScopes, ['a'], 'its namespace still watched: an object in it is used');
  w.stop();
});
