// A SecretSource for one rotation cycle: each distinct (credentials, secret, version)
// is read once however many volumes use it, at most `concurrency` reads run at a
// time, and throttling from the store halves that and spaces the reads out.
import { ProductError } from '../errors.js';
import type { SecretVersion } from './csms-client.js';
import type { Credentials } from './signer.js';
import { readKey, sharedRead, type ObjectRequest, type SecretSource } from './source.js';

export interface SharedSourceOptions {
  concurrency?: number;
  /** Pause between reads once the store has throttled us in this cycle. */
  throttlePauseMs?: number;
}

export class SharedSource implements SecretSource {
  private readonly results = new Map<string, Promise<SecretVersion>>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private concurrency: number;
  private throttled = false;
  /** Distinct reads asked of the inner source (the store calls this cycle caused). */
  reads = 0;

  constructor(
    private readonly inner: SecretSource,
    private readonly opts: SharedSourceOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 8;
  }

  fetch(objects: ObjectRequest[], creds: Credentials): Promise<SecretVersion[]> {
    return Promise.all(objects.map((o) => this.fetchOne(o, creds)));
  }

  private fetchOne(o: ObjectRequest, creds: Credentials): Promise<SecretVersion> {
    // Kept for the whole cycle: every volume of the cycle sees the same value.
    return sharedRead(this.results, readKey(o, creds), () =>
      this.limited(() => this.inner.fetch([o], creds).then((r) => r[0])),
    );
  }

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      while (this.running >= this.concurrency) await new Promise<void>((r) => this.waiting.push(r));
      this.running++;
      try {
        if (this.throttled) await new Promise((r) => setTimeout(r, this.opts.throttlePauseMs ?? 500));
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
