// Objects of one kind (SPCs, ServiceAccounts, Namespaces) read on demand and kept only
// while this node uses them: a GET on first use (shared while in flight, kept a few
// seconds), kept fresh by a watch over the object's scope that updates what is kept and
// drops every other event. A namespaced kind is watched only in the namespaces of this
// node's pods, so neither memory nor the events a node receives grow with what other
// namespaces hold or rewrite.
import type { Logger } from '../log.js';
import { delay, systemClock, type Clock, type Timer } from '../util/clock.js';
import { ScopeWatch, type WatchFn } from './scope-watch.js';

export interface WatchedObjectsOptions<T> {
  kind: string;
  /** Watched per namespace (only where this node's pods are), or the kind as a whole (scope ''). */
  scope: 'namespace' | 'kind';
  /** Collection path of a scope, for its watch. */
  pathOf: (scope: string) => string;
  /** Reads one object; `namespace` is '' for a cluster-scoped kind. */
  read: (namespace: string, name: string) => Promise<T>;
  /** A list of at most one object of a scope: its resourceVersion is where the scope's watch starts. */
  listOne: (scope: string) => Promise<{ metadata?: { resourceVersion?: string } }>;
  /** Whether a volume on this node uses the object; unused ones are dropped after `ttlMs`. */
  inUse: (namespace: string, name: string) => boolean;
  /** Whether this node still needs a scope watched (a pod of this node is in it). */
  scopeInUse: (scope: string) => boolean;
  watch: WatchFn;
  ttlMs?: number;
  /** How often scopes and objects that are no longer used are let go. */
  sweepMs?: number;
  /** Told how many objects are kept, whenever that changes. */
  onSize?: (size: number) => void;
  /** Told of each event a watch delivered (decoded), kept or not. */
  onEvent?: () => void;
  clock?: Clock;
}

interface Entry<T> {
  obj?: T;
  reading?: Promise<T>;
  readAt: number;
}

interface Scope {
  watch: ScopeWatch;
  usedAt: number;
}

type Meta = { metadata?: { name?: string; namespace?: string } };

export class WatchedObjects<T extends Meta> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly scopes = new Map<string, Scope>();
  private readonly changeListeners: ((obj: T) => void)[] = [];
  private readonly resyncListeners: ((scope: string) => void)[] = [];
  private readonly ttlMs: number;
  private sweepTimer?: Timer;
  private readonly clock: Clock;
  private started = false;

  constructor(
    private readonly opts: WatchedObjectsOptions<T>,
    private readonly log: Logger,
  ) {
    this.ttlMs = opts.ttlMs ?? 5_000;
    this.clock = opts.clock ?? systemClock;
  }

  /** An object this node uses changed (not called for objects it does not keep). */
  onChange(cb: (obj: T) => void): void {
    this.changeListeners.push(cb);
  }

  /** Events of a scope may have been missed (its watch expired): what it kept is read again on use. */
  onResync(cb: (scope: string) => void): void {
    this.resyncListeners.push(cb);
  }

  get synced(): boolean {
    return this.started;
  }

  /** The scopes watched now (for tests and metrics). */
  get watchedScopes(): string[] {
    return [...this.scopes.keys()];
  }

  async get(namespace: string, name: string): Promise<T> {
    const key = `${namespace}/${name}`;
    const now = this.clock.now();
    const scope = this.scope(this.scopeOf(namespace), now);
    const entry = this.entries.get(key);
    if (entry?.obj && (now - entry.readAt < this.ttlMs || this.opts.inUse(namespace, name))) return entry.obj;
    if (entry?.reading) return entry.reading;
    const fresh: Entry<T> = { readAt: now };
    fresh.reading = scope.watch
      .started()
      .then(() => this.opts.read(namespace, name))
      .then(
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

  /** Starts watching a scope ahead of its first read (a pod of this node appeared in it). */
  watchScope(scope: string): void {
    this.scope(scope, this.clock.now())
      .watch.started()
      .catch(() => undefined);
  }

  /** Starts letting go of what is no longer used; a kind watched as a whole starts its watch (retrying until it has). */
  async start(): Promise<void> {
    this.sweepSoon();
    if (this.opts.scope === 'kind') await this.wholeKindWatched();
    this.started = true;
  }

  private async wholeKindWatched(): Promise<void> {
    const whole = this.scope('', this.clock.now()).watch;
    for (;;) {
      try {
        return await whole.started();
      } catch {
        // ScopeWatch has logged it.
        await delay(this.clock, 1_000);
      }
    }
  }

  private sweepSoon(): void {
    this.sweepTimer = this.clock.after(this.opts.sweepMs ?? 30_000, () => {
      this.sweep(this.clock.now());
      this.sweepSoon();
    });
  }

  stop(): void {
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    for (const s of this.scopes.values()) s.watch.stop();
    this.scopes.clear();
  }

  private scope(name: string, now: number): Scope {
    let scope = this.scopes.get(name);
    if (!scope) {
      const watch = new ScopeWatch({
        kind: this.opts.kind,
        scope: name,
        path: this.opts.pathOf(name),
        listOne: () => this.opts.listOne(name),
        watch: this.opts.watch,
        onEvent: (type, obj) => this.event(type, obj as T),
        onExpired: () => this.expired(name),
        log: this.log,
        clock: this.clock,
      });
      scope = { watch, usedAt: now };
      this.scopes.set(name, scope);
    }
    scope.usedAt = now;
    return scope;
  }

  private event(type: string, obj: T): void {
    this.opts.onEvent?.();
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
    entry.readAt = this.clock.now();
    if (this.opts.inUse(namespace, obj.metadata!.name!)) for (const cb of this.changeListeners) cb(obj);
  }

  private expired(scope: string): void {
    this.forget((key) => this.scopeOfKey(key) === scope);
    for (const cb of this.resyncListeners) cb(scope);
  }

  /** Lets go of objects unused for `ttlMs`, and of scopes with no pod of this node and nothing in use. */
  private sweep(now: number): void {
    const used = new Set<string>();
    for (const [key, e] of this.entries) {
      const [namespace, name] = splitKey(key);
      if (e.reading || now - e.readAt < this.ttlMs || this.opts.inUse(namespace, name)) used.add(this.scopeOfKey(key));
      else this.entries.delete(key);
    }
    for (const [name, scope] of this.scopes) {
      if (used.has(name) || now - scope.usedAt < this.ttlMs || this.opts.scopeInUse(name)) continue;
      scope.watch.stop();
      this.scopes.delete(name);
      this.forget((key) => this.scopeOfKey(key) === name);
    }
    this.counted();
  }

  private forget(which: (key: string) => boolean): void {
    for (const key of this.entries.keys()) if (which(key)) this.entries.delete(key);
    this.counted();
  }

  private scopeOf(namespace: string): string {
    return this.opts.scope === 'kind' ? '' : namespace;
  }

  private scopeOfKey(key: string): string {
    return this.scopeOf(splitKey(key)[0]);
  }

  private counted(): void {
    this.opts.onSize?.(this.entries.size);
  }
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}
