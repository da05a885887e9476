// Small promise helpers shared across layers: bounded concurrency, settle-then-fail,
// a semaphore, sleeps that end early when their AbortSignal fires, and signals many listen to.
import { setMaxListeners } from 'node:events';

/**
 * An AbortController whose signal many operations in flight listen to at once: the driver's
 * shutdown (every call), a rotation cycle (every volume), one call (every object it reads).
 * Node warns of a leak past 10 listeners; here the count follows the load and is released
 * as each operation ends, so the warning would be noise in the operator's log.
 */
export function sharedAbortController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

/** Runs `fn` over `items`, at most `limit` at a time; with `signal`, starts no new item once it is aborted. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !signal?.aborted) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Like forEachLimit, with no group (`keyOf`) holding more than `perKey` of the `limit`
 * places: groups take turns, so one group's slow items cannot hold every place while
 * another's wait. With `signal`, starts no new item once it is aborted.
 */
export function forEachFairly<T>(
  items: readonly T[],
  keyOf: (item: T) => string,
  opts: { limit: number; perKey: number },
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const queues = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const q = queues.get(k);
    if (q) q.push(item);
    else queues.set(k, [item]);
  }
  const keys = [...queues.keys()];
  const running = new Map<string, number>();
  let active = 0;
  let turn = 0;
  const pick = (): [string, T] | undefined => {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[(turn + i) % keys.length];
      const q = queues.get(k)!;
      if (q.length > 0 && (running.get(k) ?? 0) < opts.perKey) {
        turn = (turn + i + 1) % keys.length;
        return [k, q.shift()!];
      }
    }
    return undefined;
  };
  return new Promise((resolve) => {
    const pump = () => {
      while (active < opts.limit && !signal?.aborted) {
        const next = pick();
        if (!next) break;
        const [k, item] = next;
        active++;
        running.set(k, (running.get(k) ?? 0) + 1);
        const done = () => {
          active--;
          running.set(k, running.get(k)! - 1);
          pump();
        };
        // fn reports its own failures (refresh-volumes.ts): one never stops the others.
        fn(item).then(done, done);
      }
      if (active === 0) resolve();
    };
    pump();
  });
}

/** At most `limit` holders at once; a lowered limit takes effect as holders release. */
export class Semaphore {
  private held = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(public limit: number) {}

  /** Resolves to the release function once a place is free. */
  async acquire(): Promise<() => void> {
    while (this.held >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.held++;
    return () => {
      this.held--;
      this.waiting.shift()?.();
    };
  }
}

/** Like Promise.all, but waits for every promise to settle before failing. */
export async function settleAll<T extends readonly unknown[]>(promises: {
  [K in keyof T]: Promise<T[K]>;
}): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** Resolves after `ms`; rejects with the signal's reason as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const done = () => {
      signal?.removeEventListener('abort', aborted);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const aborted = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

/** `promise`, or a rejection with the signal's reason as soon as `signal` aborts (the work itself goes on). */
export function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const aborted = () => reject(abortReason(signal));
    signal.addEventListener('abort', aborted, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', aborted);
        resolve(value);
      },
      (err: Error) => {
        signal.removeEventListener('abort', aborted);
        reject(err);
      },
    );
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('the operation was cancelled');
}
