// The rotation cycle: every interval, each volume mounted on this node is brought up
// to date through the publisher's own refresh path. One SharedSource per cycle means
// each distinct secret is read from CSMS once however many volumes use it; a volume
// whose values did not change costs no file, SPCPS or Secret write.
import type { Publisher, RefreshOutcome } from '../driver/publisher.js';
import { errorMessage, ProductError } from '../errors.js';
import { metrics } from '../metrics.js';
import type { EventRecorder } from '../kube/events.js';
import type { Logger } from '../log.js';
import { SharedSource } from '../provider/shared-source.js';
import type { SecretSource } from '../provider/source.js';

export interface RotationOptions {
  publisher: Publisher;
  source: SecretSource;
  events: EventRecorder;
  log: Logger;
  intervalMs: number;
  /** Volumes refreshed at once; CSMS reads are bounded separately by the SharedSource. */
  volumeConcurrency?: number;
  storeConcurrency?: number;
}

export interface CycleResult {
  volumes: number;
  updated: number;
  failed: number;
  /** Reads the cycle asked of CSMS (distinct secret versions, plus throttled retries). */
  storeReads: number;
  durationMs: number;
}

export class RotationReconciler {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private running?: Promise<CycleResult>;

  constructor(private readonly opts: RotationOptions) {}

  start(): void {
    this.opts.log.info('starting rotation reconciler', { rotationPollInterval: `${this.opts.intervalMs / 1000}s` });
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  // A timer re-armed after each cycle keeps the interval exact for any length (node-cron
  // cannot say "every 90 minutes") and never overlaps two cycles.
  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runCycle();
      void this.running.finally(() => this.schedule());
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async runCycle(): Promise<CycleResult> {
    const { publisher, log, events } = this.opts;
    const t0 = performance.now();
    const source = new SharedSource(this.opts.source, { concurrency: this.opts.storeConcurrency ?? 8 });
    const volumes = publisher.volumes.all();
    const logged = new Set<string>();
    let updated = 0;
    let failed = 0;
    await forEachLimit(volumes, this.opts.volumeConcurrency ?? 16, async (v) => {
      const pod = { name: v.request.podName, namespace: v.request.podNamespace, uid: v.request.podUid };
      let outcome: RefreshOutcome;
      try {
        outcome = await publisher.refresh(v.request.targetPath, source);
      } catch (err) {
        failed++;
        metrics.rotationReconcileError.inc({ error_type: err instanceof ProductError ? err.kind : 'internal' });
        const message = errorMessage(err);
        // One store outage fails many volumes with the same message: log it once per cycle.
        if (!logged.has(message)) {
          logged.add(message);
          log.warn('Secret rotation failed; the volume keeps its last good files', {
            spc: `${pod.namespace}/${v.request.spcName}`,
            error: message,
          });
        }
        events.emit(
          pod,
          'Warning',
          'SecretRotationFailed',
          `failed to rotate mounted contents for SecretProviderClass ${v.request.spcName}: ${message}`,
        );
        return;
      }
      if (outcome === 'updated') {
        updated++;
        metrics.rotationUpdated.inc();
        events.emit(
          pod,
          'Normal',
          'SecretRotationComplete',
          `successfully rotated mounted contents for SecretProviderClass ${v.request.spcName}`,
        );
      }
    });
    const result = {
      volumes: volumes.length,
      updated,
      failed,
      storeReads: source.reads,
      durationMs: performance.now() - t0,
    };
    metrics.rotationReconcile.inc();
    metrics.rotationDuration.observe(result.durationMs / 1000);
    log.v(2).info('Rotation cycle finished', { ...result, durationMs: result.durationMs.toFixed(0) });
    return result;
  }
}

export async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
