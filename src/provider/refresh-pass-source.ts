// A SecretSource for one refresh pass (a rotation cycle, an SPC edit): each distinct
// (credentials, secret, version) is read once however many volumes use it, at most
// `concurrency` reads run at a time, and throttling from the store halves that and
// spaces the reads out.
import { StoreThrottledError } from '../errors.js';
import { Semaphore, sleep } from '../util/async.js';
import { SharedReads } from './shared-reads.js';
import type { Credentials } from './signer.js';
import type { ObjectRequest, SecretSource, SecretVersion } from './secret-source.js';

export interface RefreshPassSourceOptions {
  concurrency?: number;
  /** Pause between reads once the store has throttled us in this cycle. */
  throttlePauseMs?: number;
  onShared?: () => void;
}

export class RefreshPassSource implements SecretSource {
  // Kept for the whole cycle: every volume of the cycle sees the same value.
  private readonly results: SharedReads;
  private readonly slots: Semaphore;
  private throttled = false;
  /** Distinct reads asked of the inner source (the store calls this cycle caused). */
  reads = 0;

  constructor(
    private readonly inner: SecretSource,
    private readonly opts: RefreshPassSourceOptions = {},
  ) {
    this.slots = new Semaphore(opts.concurrency ?? 8);
    this.results = new SharedReads({ keepFinished: true, onShared: opts.onShared });
  }

  fetch(objects: ObjectRequest[], creds: Credentials, signal?: AbortSignal): Promise<SecretVersion[]> {
    const readOne = (o: ObjectRequest, s: AbortSignal) =>
      this.limited(s, async () => (await this.inner.fetch([o], creds, s))[0]);
    return this.results.fetch(objects, creds, readOne, signal);
  }

  private async limited<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const release = await this.slots.acquire();
      try {
        signal.throwIfAborted();
        if (this.throttled) await sleep(this.opts.throttlePauseMs ?? 500, signal);
        this.reads++;
        return await work();
      } catch (err) {
        if (!(err instanceof StoreThrottledError) || attempt >= 3) throw err;
        // Throttled even after the client's own retries: slow the whole cycle down, then retry.
        this.throttled = true;
        this.slots.limit = Math.max(1, Math.floor(this.slots.limit / 2));
      } finally {
        release();
      }
    }
  }
}
