// The rotation cycle: every interval, each volume mounted on this node is brought up
// to date through the publisher's own refresh path (refresh-volumes.ts). A volume whose
// values did not change costs no file, SPCPS or Secret write. A volume whose refresh keeps
// failing backs off across cycles (failure-backoff.ts). Stopping aborts a cycle between
// volumes rather than waiting for it to end.
import type { Publisher } from '../driver/publisher.js';
import { errorType } from '../errors.js';
import type { EventRecorder } from '../kube/events.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SecretSource } from '../provider/secret-source.js';
import { sharedAbortController } from '../util/async.js';
import { FailureBackoff } from './failure-backoff.js';
import { refreshVolumes, type PassResult } from './refresh-volumes.js';

export interface RotationOptions {
  publisher: Publisher;
  source: SecretSource;
  events: EventRecorder;
  log: Logger;
  metrics: Metrics;
  intervalMs: number;
  /** Volumes refreshed at once; CSMS reads are bounded separately by `storeConcurrency`. */
  volumeConcurrency?: number;
  storeConcurrency?: number;
  /** For the backoff's jitter (tests make it fixed). */
  random?: () => number;
}

export interface CycleResult extends PassResult {
  durationMs: number;
  /** Volumes left out of this cycle while their failures back off. */
  backingOff: number;
}

export class RotationReconciler {
  private timer?: NodeJS.Timeout;
  private readonly stopping = sharedAbortController();
  private running?: Promise<CycleResult>;
  private readonly backoff: FailureBackoff;

  constructor(private readonly opts: RotationOptions) {
    this.backoff = new FailureBackoff(opts.random);
  }

  start(): void {
    this.opts.log.info('starting rotation reconciler', { rotationPollInterval: `${this.opts.intervalMs / 1000}s` });
    this.schedule();
  }

  /** A refresh outside the cycle (an SPC edit) that rewrote a volume ends its backoff. */
  refreshed(targetPath: string): void {
    this.backoff.record(targetPath, false);
  }

  /** Stops the timer and the cycle under way (after the volumes being refreshed now). */
  async stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  // A timer re-armed after each cycle keeps the interval exact for any length (node-cron
  // cannot say "every 90 minutes") and never overlaps two cycles.
  private schedule(): void {
    if (this.stopping.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.running = this.runCycle();
      this.running.catch(() => undefined).finally(() => this.schedule());
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async runCycle(): Promise<CycleResult> {
    const { publisher, log, metrics, events } = this.opts;
    const t0 = performance.now();
    const spc = (v: { request: { spcName: string } }) => `SecretProviderClass ${v.request.spcName}`;
    const all = publisher.volumes.all();
    this.backoff.retain(all.map((v) => v.request.targetPath));
    const volumes = all.filter((v) => this.backoff.due(v.request.targetPath));
    const pass = await refreshVolumes({
      publisher,
      events,
      log,
      volumes,
      onResult: (v, outcome) => this.backoff.record(v.request.targetPath, outcome === 'failed'),
      source: this.opts.source,
      specOnly: false,
      signal: this.stopping.signal,
      concurrency: this.opts.volumeConcurrency,
      storeConcurrency: this.opts.storeConcurrency,
      onShared: () => metrics.sharedReads.inc(),
      updated: {
        log: 'Rotated mounted contents',
        reason: 'SecretRotationComplete',
        message: (v) => `successfully rotated mounted contents for ${spc(v)}`,
        count: () => metrics.rotationUpdated.inc(),
      },
      failed: {
        log: 'Secret rotation failed; the volume keeps its last good files',
        reason: 'SecretRotationFailed',
        message: (v, error) => `failed to rotate mounted contents for ${spc(v)}: ${error}`,
        count: (err) => metrics.rotationReconcileError.inc({ error_type: errorType(err) }),
      },
    });
    const result = { ...pass, durationMs: performance.now() - t0, backingOff: all.length - volumes.length };
    metrics.rotationReconcile.inc();
    metrics.rotationDuration.observe(result.durationMs / 1000);
    log.v(2).info('Rotation cycle finished', { ...result, durationMs: result.durationMs.toFixed(0) });
    return result;
  }
}
