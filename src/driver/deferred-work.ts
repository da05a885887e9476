// Work that follows a kubelet call but that kubelet does not wait for (the SPCPS delete
// after an unpublish): it runs once no kubelet call has been in flight for a moment, or
// after at most `maxDelayMs`, a few tasks at a time, so that a burst of calls is not slowed
// by the clean-up of the calls before it. A call for the same volume runs its task first.
import { forEachLimit } from '../util/async.js';

export interface DeferredWorkOptions {
  /** How long no call may have been in flight before tasks run. */
  quietMs: number;
  /** The longest a task waits, however busy the driver is. */
  maxDelayMs: number;
  concurrency: number;
  /** How a task runs when its time comes (the publisher: under the volume's lock). */
  run?: (key: string, task: () => Promise<void>) => Promise<void>;
}

export class DeferredWork {
  private readonly pending = new Map<string, { task: () => Promise<void>; since: number }>();
  private inFlight = 0;
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly opts: DeferredWorkOptions) {}

  /** Runs a kubelet call; deferred tasks wait while any is in flight. */
  async during<T>(call: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await call();
    } finally {
      this.inFlight--;
      this.arm();
    }
  }

  /** Defers `task` for the volume `key` (replacing one already deferred for it). */
  add(key: string, task: () => Promise<void>): void {
    this.pending.set(key, { task, since: Date.now() });
    this.arm();
  }

  /** Takes back the task deferred for `key`, to run it now, before a new call for that volume. */
  take(key: string): (() => Promise<void>) | undefined {
    const entry = this.pending.get(key);
    this.pending.delete(key);
    return entry?.task;
  }

  /** Runs everything deferred now and resolves once it is done (shutdown, tests). */
  async settled(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.runPending();
  }

  private arm(): void {
    if (this.timer || this.pending.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const oldest = Math.min(...[...this.pending.values()].map((e) => e.since));
      if (this.inFlight > 0 && Date.now() - oldest < this.opts.maxDelayMs) this.arm();
      else void this.runPending();
    }, this.opts.quietMs);
    this.timer.unref();
  }

  private runPending(): Promise<void> {
    this.running = this.running.then(async () => {
      while (this.pending.size > 0) {
        const tasks = [...this.pending];
        this.pending.clear();
        const run = this.opts.run ?? ((_key: string, task: () => Promise<void>) => task());
        // Each task reports its own failure; one failing never stops the others.
        await forEachLimit(tasks, this.opts.concurrency, ([key, { task }]) => run(key, task).catch(() => undefined));
      }
    });
    return this.running;
  }
}
