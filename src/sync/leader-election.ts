// Leader election on a coordination.k8s.io Lease, with client-go's rules: a holder renews
// every retry period and gives up leading when it could not renew for the renew deadline;
// another process takes the Lease only once its record has stood unchanged, by that
// process's own clock, for the lease duration (so clocks need not agree), or when the holder
// released it on shutdown. Renew deadline < lease duration: the old leader has stopped
// before anyone else may start.
import type * as k8s from '@kubernetes/client-node';
import { errorMessage } from '../errors.js';
import { apiErrorText, apiStatus } from '../kube/client.js';
import type { Logger } from '../log.js';
import { delay, systemClock, type Clock } from '../util/clock.js';

export interface LeaseTiming {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

export interface LeaderElectionOptions {
  /** CustomObjectsApi reaches any group's objects, Leases too, as plain JSON. */
  custom: k8s.CustomObjectsApi;
  namespace: string;
  name: string;
  identity: string;
  timing?: LeaseTiming;
  log: Logger;
  clock?: Clock;
}

const LEASES = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' };

/** MicroTime as the API server writes it: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElection {
  private readonly timing: LeaseTiming;
  private readonly clock: Clock;
  /** The last record seen of another holder, and when (our clock) it was first seen so. */
  private observed?: { record: string; at: number };
  private lease?: Lease;
  /** The Lease's place, as every call names it. */
  private readonly where: typeof LEASES & { namespace: string; name: string };

  constructor(private readonly opts: LeaderElectionOptions) {
    this.timing = opts.timing ?? DEFAULT_LEASE_TIMING;
    this.where = { ...LEASES, namespace: opts.namespace, name: opts.name };
    this.clock = opts.clock ?? systemClock;
  }

  /**
   * Waits until this process holds the Lease, then calls `lead` with a signal that aborts
   * when the lead is lost (not renewed for the renew deadline) or `stop` aborts. Resolves
   * once `lead` has returned after that; a stop releases the Lease for the next holder.
   */
  async run(lead: (lost: AbortSignal) => Promise<void>, stop: AbortSignal): Promise<'stopped' | 'lost'> {
    while (!stop.aborted) {
      if (await this.tryAcquireOrRenew()) break;
      await delay(this.clock, this.timing.retryPeriodMs);
    }
    if (stop.aborted) return 'stopped';
    this.opts.log.info('Became the leader', {
      lease: `${this.opts.namespace}/${this.opts.name}`,
      identity: this.opts.identity,
    });
    const leading = new AbortController();
    const onStop = () => leading.abort();
    stop.addEventListener('abort', onStop);
    const leadDone = lead(leading.signal);
    let outcome: 'stopped' | 'lost' = 'stopped';
    let renewedAt = this.clock.now();
    while (!leading.signal.aborted) {
      await waitOrAbort(this.clock, this.timing.retryPeriodMs, leading.signal);
      if (leading.signal.aborted) break;
      // The deadline holds even while a renew call hangs: past it this process stops leading.
      const left = Math.max(0, this.timing.renewDeadlineMs - (this.clock.now() - renewedAt));
      const deadline = waitOrAbort(this.clock, left, leading.signal).then(() =>
        leading.signal.aborted ? ('stopped' as const) : ('late' as const),
      );
      const renewed = await Promise.race([this.tryAcquireOrRenew(), deadline]);
      if (renewed === true) renewedAt = this.clock.now();
      else if (renewed === 'stopped' || stop.aborted) break;
      else if (renewed === 'late' || this.clock.now() - renewedAt >= this.timing.renewDeadlineMs) {
        outcome = 'lost';
        this.opts.log.error('Lost the leader Lease: it could not be renewed in time; syncing stops', {
          lease: `${this.opts.namespace}/${this.opts.name}`,
        });
        leading.abort();
      }
    }
    stop.removeEventListener('abort', onStop);
    await leadDone;
    if (outcome === 'stopped') await this.release();
    return outcome;
  }

  /** True when this process holds the Lease after the call. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.clock.now();
    const me = this.opts.identity;
    try {
      const live = await this.read();
      if (!live) {
        this.lease = await this.create(now);
        return true;
      }
      const spec = live.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      if (holder !== '' && holder !== me) {
        const record = JSON.stringify([holder, spec.renewTime, spec.leaseDurationSeconds, spec.leaseTransitions]);
        if (this.observed?.record !== record) this.observed = { record, at: now };
        const durationMs = (spec.leaseDurationSeconds ?? this.timing.leaseDurationMs / 1000) * 1000;
        if (now - this.observed.at < durationMs) return false;
      }
      const transitions = (spec.leaseTransitions ?? 0) + (holder === me ? 0 : 1);
      const next: Lease = {
        ...live,
        spec: {
          holderIdentity: me,
          leaseDurationSeconds: Math.ceil(this.timing.leaseDurationMs / 1000),
          acquireTime: holder === me ? spec.acquireTime : microTime(now),
          renewTime: microTime(now),
          leaseTransitions: transitions,
        },
      };
      // The resourceVersion makes this a compare-and-swap: two candidates cannot both win.
      this.lease = (await this.opts.custom.replaceNamespacedCustomObject({
        ...this.where,
        body: next,
      })) as Lease;
      this.observed = undefined;
      return true;
    } catch (err) {
      if (apiStatus(err) !== 409) {
        this.opts.log.warn('Leader Lease could not be read or written', { error: apiErrorText(err) });
      }
      return false;
    }
  }

  private async read(): Promise<Lease | undefined> {
    try {
      return (await this.opts.custom.getNamespacedCustomObject(this.where)) as Lease;
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }

  private async create(now: number): Promise<Lease> {
    return (await this.opts.custom.createNamespacedCustomObject({
      ...LEASES,
      namespace: this.opts.namespace,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.opts.name, namespace: this.opts.namespace },
        spec: {
          holderIdentity: this.opts.identity,
          leaseDurationSeconds: Math.ceil(this.timing.leaseDurationMs / 1000),
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      },
    })) as Lease;
  }

  /** On shutdown: the Lease says nobody holds it, so the next candidate takes it at once. */
  private async release(): Promise<void> {
    if (!this.lease) return;
    try {
      await this.opts.custom.replaceNamespacedCustomObject({
        ...this.where,
        body: { ...this.lease, spec: { ...this.lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } },
      });
      this.opts.log.info('Released the leader Lease');
    } catch (err) {
      this.opts.log.warn('Releasing the leader Lease failed; another process takes it once it expires', {
        error: errorMessage(err),
      });
    }
  }
}

/** Resolves after `ms`, or at once when `signal` aborts; leaves no timer or listener behind. */
function waitOrAbort(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      timer.cancel();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.after(ms, done);
    signal.addEventListener('abort', done, { once: true });
  });
}
