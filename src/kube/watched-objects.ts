// Objects of one kind across the cluster (SPCs, ServiceAccounts, Namespaces) read on demand and kept only
// while this node uses them: a GET on first use (shared while in flight, kept a few
// seconds), then a watch over the kind that updates what is kept and drops every other
// event. Memory follows what this node's volumes use, not what the cluster holds.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { sleep } from '../util/async.js';
import { Backoff } from './backoff.js';
import { apiErrorText } from './client.js';

export interface WatchedObjectsOptions<T> {
  kind: string;
  /** Collection path of the kind across namespaces, for the watch. */
  path: string;
  /** Reads one object; `namespace` is '' for a cluster-scoped kind. */
  read: (namespace: string, name: string) => Promise<T>;
  /** A list of at most one object: its resourceVersion is where the watch starts. */
  listOne: () => Promise<{ metadata?: { resourceVersion?: string } }>;
  /** Whether a volume on this node uses the object; unused ones are dropped after `ttlMs`. */
  inUse: (namespace: string, name: string) => boolean;
  ttlMs?: number;
  /** Told how many objects are kept, whenever that changes. */
  onSize?: (size: number) => void;
}

interface Entry<T> {
  obj?: T;
  reading?: Promise<T>;
  readAt: number;
}

type Meta = { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };

export class WatchedObjects<T extends Meta> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly changeListeners: ((obj: T) => void)[] = [];
  private readonly resyncListeners: (() => void)[] = [];
  private readonly backoff = new Backoff();
  private readonly ttlMs: number;
  private resourceVersion?: string;
  private request?: { abort(): void };
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  private started = false;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly opts: WatchedObjectsOptions<T>,
    private readonly log: Logger,
  ) {
    this.ttlMs = opts.ttlMs ?? 5_000;
  }

  get synced(): boolean {
    return this.started;
  }

  /** An object this node uses changed (not called for objects it does not keep). */
  onChange(cb: (obj: T) => void): void {
    this.changeListeners.push(cb);
  }

  /** Events may have been missed (the watch expired): what was kept is read again on use. */
  onResync(cb: () => void): void {
    this.resyncListeners.push(cb);
  }

  async get(namespace: string, name: string): Promise<T> {
    const key = `${namespace}/${name}`;
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry?.obj && (now - entry.readAt < this.ttlMs || this.opts.inUse(namespace, name))) return entry.obj;
    if (entry?.reading) return entry.reading;
    this.sweep(now);
    const fresh: Entry<T> = { readAt: now };
    fresh.reading = this.opts.read(namespace, name).then(
      (obj) => {
        // A watch event may have brought a newer one while we read.
        if (this.entries.get(key) === fresh && !fresh.obj) fresh.obj = obj;
        fresh.reading = undefined;
        return fresh.obj ?? obj;
      },
      (err) => {
        if (this.entries.get(key) === fresh) this.entries.delete(key);
        this.counted();
        throw err;
      },
    );
    this.entries.set(key, fresh);
    this.counted();
    return fresh.reading;
  }

  /** Resolves once the watch has its starting point (retrying until it has). */
  async start(): Promise<void> {
    while (!this.stopped && !this.resourceVersion) {
      try {
        this.resourceVersion = (await this.opts.listOne()).metadata?.resourceVersion;
      } catch (err) {
        this.log.warn('Listing failed, retrying', { kind: this.opts.kind, error: apiErrorText(err) });
        await sleep(this.backoff.next());
      }
    }
    this.started = true;
    void this.watch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.request?.abort();
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    const startedAt = Date.now();
    try {
      this.request = await new k8s.Watch(this.kc).watch(
        this.opts.path,
        { resourceVersion: this.resourceVersion, allowWatchBookmarks: true },
        (type, obj) => this.event(type, obj as T),
        (err) => this.ended(err, startedAt),
      );
    } catch (err) {
      this.ended(err, startedAt);
    }
  }

  private event(type: string, obj: T): void {
    if (type === 'ERROR') {
      // 410 Gone: the starting point is too old; start again from now and re-read what we keep.
      this.resourceVersion = undefined;
      return;
    }
    const rv = obj.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (type === 'BOOKMARK') return;
    const namespace = obj.metadata?.namespace ?? '';
    const key = `${namespace}/${obj.metadata?.name}`;
    const entry = this.entries.get(key);
    if (!entry) return;
    if (type === 'DELETED') {
      this.entries.delete(key);
      this.counted();
      return;
    }
    entry.obj = obj;
    entry.readAt = Date.now();
    if (this.opts.inUse(namespace, obj.metadata!.name!)) for (const cb of this.changeListeners) cb(obj);
  }

  private ended(err: unknown, startedAt: number): void {
    this.request = undefined;
    if (this.stopped) return;
    if (err && !isAbort(err))
      this.log.warn('Watch failed, restarting', { kind: this.opts.kind, error: apiErrorText(err) });
    // A watch that ran a while ended normally (server timeout): restart at once.
    if (Date.now() - startedAt > 60_000) this.backoff.reset();
    const delay = err || !this.resourceVersion ? this.backoff.next() : 0;
    this.retryTimer = setTimeout(() => void this.restart(), delay);
  }

  private async restart(): Promise<void> {
    if (!this.resourceVersion) {
      this.entries.clear();
      this.counted();
      this.started = false;
      await this.start();
      for (const cb of this.resyncListeners) cb();
      return;
    }
    await this.watch();
  }

  private sweep(now: number): void {
    if (this.entries.size < 64) return;
    for (const [key, e] of this.entries) {
      const [namespace, name] = key.split('/');
      if (e.obj && now - e.readAt >= this.ttlMs && !this.opts.inUse(namespace, name)) this.entries.delete(key);
    }
    this.counted();
  }

  private counted(): void {
    this.opts.onSize?.(this.entries.size);
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}
