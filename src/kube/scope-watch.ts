// One watch over one scope of a kind: a namespace's collection, or the whole kind. Its
// starting point comes from a one-object list taken before anything in the scope is read,
// so no change after a read is missed. It restarts after errors and server timeouts, and
// starts over from a new list when its starting point has expired (410 Gone).
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { Backoff } from './backoff.js';
import { apiErrorText, budgetedWatch } from './client.js';
import { logOversized, OVERSIZED } from './object-budget.js';

/** Starts a watch (client-node's Watch.watch); injected so that tests drive the events. */
export type WatchFn = (
  path: string,
  query: Record<string, string | boolean | undefined>,
  onEvent: (type: string, obj: unknown) => void,
  done: (err: unknown) => void,
) => Promise<{ abort(): void }>;

/** client-node's Watch, decoding no event over the object budget. */
export function watchFn(kc: k8s.KubeConfig): WatchFn {
  const watch = budgetedWatch(kc);
  return (path, query, onEvent, done) => watch.watch(path, query, onEvent, done);
}

export interface ScopeWatchOptions {
  kind: string;
  scope: string;
  path: string;
  /** A list of at most one object in the scope: its resourceVersion is where the watch starts. */
  listOne: () => Promise<{ metadata?: { resourceVersion?: string } }>;
  watch: WatchFn;
  onEvent: (type: string, obj: unknown) => void;
  /** The starting point expired: events may have been lost, and reads wait for a new one. */
  onExpired: () => void;
  log: Logger;
  /** A watch that ran this long ended normally (server timeout), not by failing. */
  healthyMs?: number;
  clock?: Clock;
  /** How long to wait before trying again; its jitter is random unless a test fixes it. */
  backoff?: Backoff;
}

export class ScopeWatch {
  private resourceVersion?: string;
  private starting?: Promise<void>;
  /** The last failed attempt at a starting point, answered again until its backoff has passed. */
  private failed?: { err: Error; until: number };
  private request?: { abort(): void };
  /** Which watch call is the current one: events and ends of an older one are ignored. */
  private generation = 0;
  private watching = false;
  private retryTimer?: Timer;
  private readonly backoff: Backoff;
  private stopped = false;
  private readonly clock: Clock;

  constructor(private readonly opts: ScopeWatchOptions) {
    this.clock = opts.clock ?? systemClock;
    this.backoff = opts.backoff ?? new Backoff();
  }

  /**
   * Resolves once the watch has its starting point; rejects when the last attempt to take it
   * failed (the watch keeps trying in the background, with backoff), so a read is never held
   * forever and reads during an outage do not each send a list.
   */
  started(): Promise<void> {
    if (this.resourceVersion) return Promise.resolve();
    if (this.failed && this.clock.now() < this.failed.until) return Promise.reject(this.failed.err);
    this.starting ??= this.takeStartingPoint();
    return this.starting;
  }

  stop(): void {
    this.stopped = true;
    this.retryTimer?.cancel();
    this.request?.abort();
  }

  private async takeStartingPoint(): Promise<void> {
    this.retryTimer?.cancel();
    try {
      const rv = (await this.opts.listOne()).metadata?.resourceVersion;
      if (!rv) throw new Error(`the list of ${this.opts.kind} gave no resourceVersion`);
      this.resourceVersion = rv;
      this.failed = undefined;
    } catch (err) {
      this.opts.log.warn('Listing failed, retrying', { kind: this.opts.kind, error: apiErrorText(err) });
      const delay = this.backoff.next();
      this.failed = { err: err instanceof Error ? err : new Error(String(err)), until: this.clock.now() + delay };
      this.later(() => void this.retry(), delay);
      throw err;
    } finally {
      this.starting = undefined;
    }
    if (!this.watching) void this.watch();
  }

  private async retry(): Promise<void> {
    this.failed = undefined;
    await this.started().catch(() => undefined);
  }

  private async watch(): Promise<void> {
    if (this.stopped || this.watching) return;
    this.watching = true;
    const generation = ++this.generation;
    const startedAt = this.clock.now();
    const ended = (err: unknown) => this.ended(err, startedAt, generation);
    try {
      // The API server ends each watch after a while (as client-go asks, 5 to 10 minutes), so a
      // connection that died without a word is replaced within that time.
      const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
      this.request = await this.opts.watch(
        this.opts.path,
        { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: String(timeoutSeconds) },
        (type, obj) => (generation === this.generation ? this.event(type, obj) : undefined),
        ended,
      );
      if (this.stopped) this.request.abort();
    } catch (err) {
      ended(err);
    }
  }

  private event(type: string, obj: unknown): void {
    if (type === OVERSIZED) {
      // Some object of the scope changed into one too large to read: what was kept is read again on use (and refused).
      logOversized(this.opts.log, obj, { kind: this.opts.kind, scope: this.opts.scope });
      this.opts.onExpired();
      return;
    }
    if (type === 'ERROR') {
      // 410 Gone: the starting point is too old. This watch is done; the next starts from a new list.
      this.resourceVersion = undefined;
      this.request?.abort();
      this.opts.onExpired();
      return;
    }
    const rv = (obj as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (type !== 'BOOKMARK') this.opts.onEvent(type, obj);
  }

  private ended(err: unknown, startedAt: number, generation: number): void {
    if (generation !== this.generation || !this.watching) return;
    this.watching = false;
    this.request = undefined;
    if (this.stopped) return;
    if (err && !isAbort(err))
      this.opts.log.warn('Watch failed, restarting', { kind: this.opts.kind, error: apiErrorText(err) });
    const ran = this.clock.now() - startedAt;
    if (ran > (this.opts.healthyMs ?? 60_000)) this.backoff.reset();
    // A watch that ended on its own after a while (its timeout) starts again at once; one that
    // failed, or ended right away (a proxy that cuts watches), waits.
    const failed = err && !isAbort(err);
    const delay = failed || !this.resourceVersion || ran < 1_000 ? this.backoff.next() : 0;
    this.later(() => (this.resourceVersion ? void this.watch() : void this.retry()), delay);
  }

  private later(fn: () => void, ms: number): void {
    if (this.stopped) return;
    this.retryTimer?.cancel();
    this.retryTimer = this.clock.after(ms, fn);
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}
