// A list+watch cache of one resource that restarts itself after errors and says
// when it has synced, so reads hit memory and the API only sees watches. With `keep`, it
// holds only the fields that function returns of each object, listed or watched.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { sleep } from '../util/async.js';
import { Backoff } from './backoff.js';
import { apiErrorText, budgetedWatch } from './client.js';
import { logOversized, OVERSIZED } from './object-budget.js';

export type ListFn<T extends k8s.KubernetesObject> = () => Promise<k8s.KubernetesListObject<T>>;

/**
 * A watch whose events carry only what `keep` returns of each object (what client-node's
 * ListWatch stores), and that decodes none over the object budget (logged, then skipped).
 */
class KeepingWatch<T> extends k8s.Watch {
  private readonly budgeted: k8s.Watch;

  constructor(
    kc: k8s.KubeConfig,
    private readonly kind: string,
    private readonly log: Logger,
    private readonly keep: (obj: T) => T = (obj) => obj,
  ) {
    super(kc);
    this.budgeted = budgetedWatch(kc);
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const kept = (phase: string, obj: unknown, watchObj?: unknown) => {
      if (phase === OVERSIZED) {
        logOversized(this.log, obj, { kind: this.kind });
        return;
      }
      callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? obj : this.keep(obj as T), watchObj);
    };
    return this.budgeted.watch(path, queryParams, kept, done);
  }
}

export interface ResourceCacheOptions<T> {
  selectors?: { label?: string; field?: string };
  /** Told how many objects are cached, whenever that changes. */
  onSize?: (size: number) => void;
  /** Keeps only the fields this returns of each object. */
  keep?: (obj: T) => T;
  /** Told of each object that appears. */
  onAdd?: (obj: T) => void;
  /** Told of each object that changed (its new self). */
  onUpdate?: (obj: T) => void;
  /** Told of each object that went. */
  onDelete?: (obj: T) => void;
}

export class ResourceCache<T extends k8s.KubernetesObject> {
  private readonly informer: k8s.ListWatch<T>;
  private syncedOnce = false;
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private readonly backoff = new Backoff();

  constructor(
    readonly kind: string,
    kc: k8s.KubeConfig,
    path: string,
    list: ListFn<T>,
    private readonly log: Logger,
    { selectors = {}, onSize, keep, onAdd, onUpdate, onDelete }: ResourceCacheOptions<T> = {},
  ) {
    const watch = new KeepingWatch(kc, kind, log, keep);
    const listKept: ListFn<T> = keep ? async () => keptList(await list(), keep) : list;
    this.informer = new k8s.ListWatch<T>(path, watch, listKept, false, selectors.label, selectors.field);
    this.informer.on('error', (err) => this.retry(err));
    // Events flowing again mean the API server is back: the next failure starts from a short delay.
    this.informer.on('update', (obj) => {
      this.backoff.reset();
      onUpdate?.(obj);
    });
    for (const verb of ['add', 'delete'] as const) {
      this.informer.on(verb, (obj) => {
        this.backoff.reset();
        onSize?.(this.informer.list().length);
        if (verb === 'add') onAdd?.(obj);
        else onDelete?.(obj);
      });
    }
  }

  get synced(): boolean {
    return this.syncedOnce;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  /** Resolves once the first list has landed (retrying until it does). */
  async start(): Promise<void> {
    while (!this.stopped) {
      await this.informer.start();
      if (this.informer.latestResourceVersion()) {
        this.syncedOnce = true;
        return;
      }
      await sleep(this.backoff.next());
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.informer.stop();
  }

  private retry(err: unknown): void {
    if (this.stopped) return;
    this.log.warn('Watch failed, restarting', { kind: this.kind, error: apiErrorText(err) });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.syncedOnce && !this.stopped) this.informer.start().catch((e: unknown) => this.retry(e));
    }, this.backoff.next());
  }
}

function keptList<T extends k8s.KubernetesObject>(
  list: k8s.KubernetesListObject<T>,
  keep: (obj: T) => T,
): k8s.KubernetesListObject<T> {
  return { ...list, items: list.items.map(keep) };
}
