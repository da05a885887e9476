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
