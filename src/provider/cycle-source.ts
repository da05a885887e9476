// A SecretSource for one refresh pass (a rotation cycle, an SPC edit): each distinct
// (credentials, secret, version) is read once however many volumes use it, at most
// `concurrency` reads run at a time, and throttling from the store halves that and
// spaces the reads out.
import { ProductError } from '../errors.js';
import { sleep } from '../util/async.js';
import { SharedReads } from './shared-reads.js';
import type { Credentials } from './signer.js';
import { readKey, type ObjectRequest, type SecretSource, type SecretVersion } from './source.js';

export interface CycleSourceOptions {
  concurrency?: number;
  /** Pause between reads once the store has throttled us in this cycle. */
  throttlePauseMs?: number;
  onShared?: () => void;
}

export class CycleSource implements SecretSource {
  // Kept for the whole cycle: every volume of the cycle sees the same value.
  private readonly results: SharedReads;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private concurrency: number;
  private throttled = false;
  /** Distinct reads asked of the inner source (the store calls this cycle caused). */
  reads = 0;

  constructor(
    private readonly inner: SecretSource,
    private readonly opts: CycleSourceOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 8;
    this.results = new SharedReads({ keepFinished: true, onShared: opts.onShared });
  }

  fetch(objects: ObjectRequest[], creds: Credentials, signal?: AbortSignal): Promise<SecretVersion[]> {
    return Promise.all(
      objects.map((o) =>
        this.results.read(
          readKey(o, creds),
          (s) => this.limited(s, async () => (await this.inner.fetch([o], creds, s))[0]),
          signal,
        ),
      ),
    );
  }

  private async limited<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      while (this.running >= this.concurrency) await new Promise<void>((r) => this.waiting.push(r));
      this.running++;
      try {
        signal.throwIfAborted();
        if (this.throttled) await sleep(this.opts.throttlePauseMs ?? 500, signal);
        this.reads++;
        return await work();
      } catch (err) {
        if (!isThrottled(err) || attempt >= 3) throw err;
        // Throttled even after the client's own retries: slow the whole cycle down, then retry.
        this.throttled = true;
        this.concurrency = Math.max(1, Math.floor(this.concurrency / 2));
      } finally {
        this.running--;
        this.waiting.shift()?.();
      }
    }
  }
}

function isThrottled(err: unknown): boolean {
  return err instanceof ProductError && err.kind === 'unavailable' && /HTTP 429/.test(err.message);
}
