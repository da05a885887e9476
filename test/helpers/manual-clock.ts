// A Clock that moves only when the test says so: timers due by the new time fire in time
// order, each seeing the time it was due at, and promises they settle run in between.
import type { Clock, Timer } from '../../src/util/clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

export class ManualClock implements Clock {
  private time = 1_000_000;
  private seq = 0;
  private pending: Pending[] = [];

  now(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): Timer {
    const p = { at: this.time + Math.max(0, ms), seq: this.seq++, fn };
    this.pending.push(p);
    return { cancel: () => (this.pending = this.pending.filter((x) => x !== p)) };
  }

  /** How many timers wait to fire. */
  get waiting(): number {
    return this.pending.length;
  }

  /** Moves time on by `ms`, firing what falls due, in order; settles promises after each. */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    await settle();
    for (;;) {
      const next = this.pending.filter((p) => p.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.pending = this.pending.filter((p) => p !== next);
      this.time = next.at;
      next.fn();
      await settle();
    }
    this.time = until;
  }
}

/** Lets every promise chain already started run to where it waits on I/O or a timer. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}
