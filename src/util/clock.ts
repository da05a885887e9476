// Time as the watch state machines see it: what the time is, and "call me after". Injected
// (as client-node's ListWatch takes a delayFn) so that unit tests move time by hand and see
// TTLs, backoffs and restarts happen in order, without sleeping.
export interface Clock {
  now(): number;
  /** Calls `fn` once after `ms`. The timer never keeps the process alive. */
  after(ms: number, fn: () => void): Timer;
}

export interface Timer {
  cancel(): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Resolves after `ms` on `clock`. */
export function delay(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.after(ms, resolve));
}
