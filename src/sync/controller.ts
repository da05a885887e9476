// Keeps every SecretSync's Secret in step, while this process leads: a SecretSync is synced
// when it appears, when its spec changes, when its SPC, ServiceAccount or Namespace permit
// changes, and every rotation interval (one shared read per distinct secret per cycle). Each
// SecretSync is synced by one task at a time; a failed one is tried again after a backoff
// (at most the rotation interval). Losing the lead stops every sync in flight.
import { RefreshPassSource } from '../provider/refresh-pass-source.js';
import type { SecretSource } from '../provider/secret-source.js';
import type { SecretSync } from '../crds/types.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { SyncMetrics } from '../metrics.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { syncErrorReason, type SecretSyncer } from './secret-syncer.js';
import { kept } from './sync-view.js';

export interface SyncControllerDeps {
  syncer: SecretSyncer;
  /** The SecretSyncs as the cache now has them. */
  list: () => readonly SecretSync[];
  current: (namespace: string, name: string) => SecretSync | undefined;
  source: SecretSource;
  intervalMs: number;
  concurrency?: number;
  metrics?: SyncMetrics;
  log: Logger;
  clock?: Clock;
  random?: () => number;
}

interface Pending {
  values?: SecretSource;
  done: (() => void)[];
}

const keyOf = (ss: SecretSync) => `${ss.metadata.namespace}/${ss.metadata.name}`;
const namespaceOf = (key: string) => key.slice(0, key.indexOf('/'));
const FIRST_RETRY_MS = 5_000;

export class SyncController {
  /** Waiting syncs by namespace, in the order namespaces take turns. */
  private readonly pending = new Map<string, Map<string, Pending>>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, { count: number; timer: Timer }>();
  /** SecretSyncs as our own status writes left them, until the cache has caught up. */
  private readonly written = new Map<string, SecretSync>();
  private readonly clock: Clock;
  private active?: AbortController;
  private cycleTimer?: Timer;
  private pumping = false;

  constructor(private readonly deps: SyncControllerDeps) {
    this.clock = deps.clock ?? systemClock;
  }

  get leading(): boolean {
    return this.active !== undefined;
  }

  /** Starts syncing (this process now leads): everything once, then by events and the interval. */
  start(): Promise<void> {
    if (this.active) return Promise.resolve();
    this.active = new AbortController();
    this.scheduleCycle();
    return this.cycle();
  }

  /** Stops syncing: aborts what is in flight and waits for it to end. */
  async stop(): Promise<void> {
    this.active?.abort();
    this.active = undefined;
    this.cycleTimer?.cancel();
    for (const f of this.failures.values()) f.timer.cancel();
    this.failures.clear();
    for (const keys of this.pending.values()) for (const p of keys.values()) for (const d of p.done) d();
    this.pending.clear();
    await Promise.allSettled(this.running.values());
  }

  /** The SecretSync appeared or changed. */
  changed(ss: SecretSync): void {
    if (this.active) void this.schedule(keyOf(ss));
  }

  gone(ss: SecretSync): void {
    const key = keyOf(ss);
    this.written.delete(key);
    this.failures.get(key)?.timer.cancel();
    this.failures.delete(key);
  }

  /** Something the SecretSyncs of `namespace` read changed: those that use it are due. */
  inputChanged(namespace: string, change: { spc?: string; serviceAccount?: string }): void {
    if (!this.active) return;
    // The SecretSyncs one edit makes due read each secret once between them.
    const values = new RefreshPassSource(this.deps.source);
    for (const ss of this.deps.list()) {
      if (ss.metadata.namespace !== namespace) continue;
      if (change.spc !== undefined && ss.spec?.secretProviderClassName !== change.spc) continue;
      if (change.serviceAccount !== undefined && ss.spec?.serviceAccountName !== change.serviceAccount) continue;
      void this.schedule(keyOf(ss), values);
    }
  }

  /** Our status write's result, which the cache will hear of only later. */
  wrote(ss: SecretSync): void {
    this.written.set(keyOf(ss), kept(ss));
  }

  /** Every SecretSync, with one read of each distinct secret; resolves when all are done. */
  async cycle(): Promise<void> {
    const started = this.clock.now();
    const values = new RefreshPassSource(this.deps.source);
    await Promise.all(this.deps.list().map((ss) => this.schedule(keyOf(ss), values)));
    this.deps.metrics?.cycleDuration.observe((this.clock.now() - started) / 1000);
    this.deps.log.v(2).info('SecretSync cycle done', { secretSyncs: this.deps.list().length, reads: values.reads });
  }

  private scheduleCycle(): void {
    this.cycleTimer = this.clock.after(this.deps.intervalMs, () => {
      if (!this.active) return;
      this.scheduleCycle();
      void this.cycle();
    });
  }

  /** Resolves when a sync of `key` that started after this call has ended (or syncing stopped). */
  private schedule(key: string, values?: SecretSource): Promise<void> {
    if (!this.active) return Promise.resolve();
    return new Promise((resolve) => {
      const ns = namespaceOf(key);
      const keys = this.pending.get(ns) ?? new Map<string, Pending>();
      const p = keys.get(key) ?? { done: [] };
      // The newest cycle's source: an older one holds values read before it.
      p.values = values ?? p.values;
      p.done.push(resolve);
      keys.set(key, p);
      this.pending.set(ns, keys);
      this.pumpSoon();
    });
  }

  /** One pump for everything scheduled in this turn (a cycle's keys all compete for the slots). */
  private pumpSoon(): void {
    if (this.pumping) return;
    this.pumping = true;
    queueMicrotask(() => {
      this.pumping = false;
      this.pump();
    });
  }

  /**
   * Starts what is pending, up to the limit, one SecretSync per namespace in turn: one team's
   * many, slow or failing SecretSyncs cannot hold up another's.
   */
  private pump(): void {
    const limit = this.deps.concurrency ?? 4;
    for (let started = true; started && this.running.size < limit;) {
      started = false;
      for (const [ns, keys] of this.pending) {
        if (this.running.size >= limit) return;
        let next: [string, Pending] | undefined;
        for (const entry of keys) {
          if (this.running.has(entry[0])) continue;
          next = entry;
          break;
        }
        if (!next) continue;
        keys.delete(next[0]);
        // To the back of the turn order.
        this.pending.delete(ns);
        if (keys.size > 0) this.pending.set(ns, keys);
        this.begin(...next);
        started = true;
      }
    }
  }

  private begin(key: string, p: Pending): void {
    const run = this.run(key, p).finally(() => {
      this.running.delete(key);
      for (const d of p.done) d();
      this.pump();
    });
    this.running.set(key, run);
  }

  private async run(key: string, p: Pending): Promise<void> {
    const signal = this.active?.signal;
    const ss = this.latest(key);
    // Being deleted: the garbage collector takes its Secret, nothing is written for it any more.
    if (!ss || ss.metadata.deletionTimestamp || !signal || signal.aborted) return;
    try {
      const result = await this.deps.syncer.sync(ss, p.values ?? this.deps.source, signal);
      this.deps.metrics?.syncs.inc({ outcome: result });
      this.failures.get(key)?.timer.cancel();
      this.failures.delete(key);
    } catch (err) {
      if (signal.aborted) return;
      this.deps.metrics?.syncErrors.inc({ reason: syncErrorReason(err) });
      this.retryLater(key, err);
    }
  }

  /** The newest of what the cache holds and what our own last status write returned. */
  private latest(key: string): SecretSync | undefined {
    const [namespace, name] = key.split('/');
    const cached = this.deps.current(namespace, name);
    const ours = this.written.get(key);
    if (!cached || !ours || ours.metadata.uid !== cached.metadata.uid) {
      this.written.delete(key);
      return cached;
    }
    if (newerOrSame(cached.metadata.resourceVersion, ours.metadata.resourceVersion)) {
      this.written.delete(key);
      return cached;
    }
    return ours;
  }

  private retryLater(key: string, err: unknown): void {
    const f = this.failures.get(key);
    f?.timer.cancel();
    const count = (f?.count ?? 0) + 1;
    const ceiling = Math.min(FIRST_RETRY_MS * 2 ** (count - 1), this.deps.intervalMs);
    const ms = Math.round(ceiling * (0.5 + (this.deps.random ?? Math.random)() / 2));
    this.deps.log.v(2).info('SecretSync sync retries later', { secretSync: key, inMs: ms, error: errorMessage(err) });
    const timer = this.clock.after(ms, () => void this.schedule(key));
    this.failures.set(key, { count, timer });
  }
}

/** resourceVersions are etcd revisions: comparable as numbers, though Kubernetes promises nothing. */
function newerOrSame(a: string | undefined, b: string | undefined): boolean {
  try {
    return BigInt(a ?? '0') >= BigInt(b ?? '0');
  } catch {
    return true;
  }
}
