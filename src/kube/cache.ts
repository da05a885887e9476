// A list+watch cache of one resource that restarts itself after errors and says
// when it has synced, so reads hit memory and the API only sees watches.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { sleep } from '../util/async.js';
import { Backoff } from './backoff.js';
import { apiErrorText } from './client.js';

export type ListFn<T extends k8s.KubernetesObject> = () => Promise<k8s.KubernetesListObject<T>>;

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
    selectors: { label?: string; field?: string } = {},
    /** Told how many objects are cached, whenever that changes. */
    onSize?: (size: number) => void,
  ) {
    this.informer = new k8s.ListWatch<T>(path, new k8s.Watch(kc), list, false, selectors.label, selectors.field);
    this.informer.on('error', (err) => this.retry(err));
    // Events flowing again mean the API server is back: the next failure starts from a short delay.
    this.informer.on('update', () => this.backoff.reset());
    for (const verb of ['add', 'delete'] as const) {
      this.informer.on(verb, () => {
        this.backoff.reset();
        onSize?.(this.informer.list().length);
      });
    }
  }

  get synced(): boolean {
    return this.syncedOnce;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
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
