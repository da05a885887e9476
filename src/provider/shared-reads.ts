// Reads of the same (credentials, secret, version) share one request. A caller that
// gives up (its AbortSignal fires) stops waiting at once; the request itself is
// cancelled only when every caller has given up, so one cancelled mount never fails
// another that shares its read.
import { untilAborted } from '../util/async.js';
import type { Credentials } from './signer.js';
import { readKey, type ObjectRequest, type SecretVersion } from './secret-source.js';

interface Shared {
  promise: Promise<SecretVersion>;
  controller: AbortController;
  waiting: number;
  settled: boolean;
}

export interface SharedReadsOptions {
  /** Keep finished reads (one rotation cycle sees one value), rather than only those in flight. */
  keepFinished?: boolean;
  /** Called for each read served by one already made or under way. */
  onShared?: () => void;
}

export class SharedReads {
  private readonly reads = new Map<string, Shared>();

  constructor(private readonly opts: SharedReadsOptions = {}) {}

  /** Every object of `objects`, each read through `readOne` unless a read of it can be shared. */
  fetch(
    objects: ObjectRequest[],
    creds: Credentials,
    readOne: (o: ObjectRequest, signal: AbortSignal) => Promise<SecretVersion>,
    signal?: AbortSignal,
  ): Promise<SecretVersion[]> {
    return Promise.all(objects.map((o) => this.read(readKey(o, creds), (s) => readOne(o, s), signal)));
  }

  private read(
    key: string,
    start: (signal: AbortSignal) => Promise<SecretVersion>,
    signal?: AbortSignal,
  ): Promise<SecretVersion> {
    signal?.throwIfAborted();
    let entry = this.reads.get(key);
    if (entry) this.opts.onShared?.();
    else entry = this.start(key, start);
    const shared = entry;
    shared.waiting++;
    if (!signal) return shared.promise;
    const release = () => {
      if (--shared.waiting > 0 || shared.settled) return;
      shared.controller.abort(signal.reason);
      this.forget(key, shared);
    };
    signal.addEventListener('abort', release, { once: true });
    return untilAborted(shared.promise, signal).finally(() => signal.removeEventListener('abort', release));
  }

  private start(key: string, start: (signal: AbortSignal) => Promise<SecretVersion>): Shared {
    const controller = new AbortController();
    const entry: Shared = { promise: start(controller.signal), controller, waiting: 0, settled: false };
    const settle = () => {
      entry.settled = true;
      if (!this.opts.keepFinished) this.forget(key, entry);
    };
    entry.promise.then(settle, settle);
    this.reads.set(key, entry);
    return entry;
  }

  private forget(key: string, entry: Shared): void {
    if (this.reads.get(key) === entry) this.reads.delete(key);
  }
}
