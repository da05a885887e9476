// Rotation's memory of failing volumes: one that keeps failing (a deleted secret, a provider
// that refuses) is retried after 1, 2, 4 ... at most 32 cycles, a random part of each so that
// volumes failing together spread out, and is back to every cycle once a refresh succeeds.
// Without it, each failing object took the node's shared CSMS quota again every cycle.

const MAX_CYCLES = 32;

export class FailureBackoff {
  private readonly failing = new Map<string, { failures: number; skip: number }>();

  constructor(private readonly random: () => number = Math.random) {}

  /** Whether `key` is refreshed this cycle; a volume backing off sits it out. */
  due(key: string): boolean {
    const f = this.failing.get(key);
    if (!f || f.skip === 0) return true;
    f.skip--;
    return false;
  }

  record(key: string, failed: boolean): void {
    if (!failed) {
      this.failing.delete(key);
      return;
    }
    const f = this.failing.get(key) ?? { failures: 0, skip: 0 };
    f.failures++;
    const ceiling = Math.min(2 ** (f.failures - 1), MAX_CYCLES);
    // Between half the ceiling and all of it: the first failure retries next cycle.
    f.skip = Math.ceil(ceiling * (0.5 + this.random() / 2)) - 1;
    this.failing.set(key, f);
  }

  /** Forgets volumes that are gone. */
  retain(keys: Iterable<string>): void {
    const live = new Set(keys);
    for (const k of this.failing.keys()) if (!live.has(k)) this.failing.delete(k);
  }

  get size(): number {
    return this.failing.size;
  }
}
