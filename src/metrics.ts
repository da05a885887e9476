// The driver's Prometheus metrics: the upstream driver's names, so existing dashboards
// keep working, plus what operators of this driver need. Built per driver and passed to
// the parts that count, so a test reads its own numbers.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const seconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Makers of metrics registered in `registry`. */
function makers(registry: Registry) {
  const registers = [registry];
  return {
    counter: <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Counter<L>({ name, help, labelNames, registers }),
    gauge: <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers }),
    histogram: <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Histogram<L>({ name, help, labelNames, buckets: seconds, registers }),
  };
}

type Makers = ReturnType<typeof makers>;

/** What every command that reads CSMS counts. */
function csmsMetrics(counter: Makers['counter'], histogram: Makers['histogram']) {
  return {
    csmsRequests: counter('csms_requests_total', 'HTTP requests sent to CSMS by outcome', ['outcome']),
    csmsDuration: histogram('csms_request_duration_seconds', 'CSMS request latency by outcome', ['outcome']),
    sharedReads: counter(
      'csms_shared_reads_total',
      'Secret reads served by a read already made or in flight (no CSMS call)',
    ),
  };
}

/** The metrics of one driver, registered in `registry` (a fresh one unless given). */
export function createMetrics(registry = new Registry()) {
  const registers = [registry];
  const { counter, gauge, histogram } = makers(registry);
  return {
    registry,
    nodePublish: counter('node_publish_total', 'Successful NodePublishVolume calls', ['provider']),
    nodePublishError: counter('node_publish_error_total', 'Failed NodePublishVolume calls by gRPC code', [
      'provider',
      'error_type',
    ]),
    nodeUnpublish: counter('node_unpublish_total', 'Successful NodeUnpublishVolume calls'),
    nodeUnpublishError: counter('node_unpublish_error_total', 'Failed NodeUnpublishVolume calls by gRPC code', [
      'error_type',
    ]),
    publishDuration: histogram('node_publish_duration_seconds', 'NodePublishVolume latency'),
    rotationReconcile: counter('rotation_reconcile_total', 'Rotation cycles run'),
    rotationReconcileError: counter('rotation_reconcile_error_total', 'Volume refreshes that failed during rotation', [
      'error_type',
    ]),
    rotationDuration: histogram('rotation_reconcile_duration_sec', 'Wall time of one rotation cycle'),
    rotationUpdated: counter('rotation_volumes_updated_total', 'Volumes whose content a rotation changed'),
    spcUpdateError: counter('spc_update_error_total', 'SPC edits that could not be applied to a running volume'),
    ...csmsMetrics(counter, histogram),
    eventsSuppressed: counter(
      'events_suppressed_total',
      'Pod events not sent because one with the same reason was sent within the last minute',
    ),
    cachedObjects: gauge('kube_cached_objects', 'Kubernetes objects the driver holds in memory, by kind', ['kind']),
    watchEvents: counter(
      'kube_watch_events_total',
      "Watch events the driver received and decoded for SPCs and ServiceAccounts (of its pods' namespaces only), by kind",
      ['kind'],
    ),
    mountedVolumes: gauge('mounted_volumes', 'Volumes this driver has mounted on the node'),
    kubeletRegistered: gauge(
      'kubelet_plugin_registered',
      'Whether kubelet said it registered the driver (1) or refused it (0), with --plugin-registration-dir',
    ),
    ...permitGauges(registers),
  };
}

/** What a volume holds against its Namespace permit, as the permit gauges count it. */
export interface PermitState {
  namespace: string;
  unpermitted?: string[];
  withheld: boolean;
}

/**
 * Gauges of the live volumes, read at each scrape (countPermitStates says from where): their
 * series are bounded by what this node mounts, and vanish with the volumes.
 */
function permitGauges(registers: Registry[]) {
  let states: () => Iterable<PermitState> = () => [];
  return {
    unpermittedVolumes: new Gauge({
      name: 'namespace_permit_uncovered_volumes',
      help: 'Volumes on this node mounting a CSMS secret that no Namespace permit covers (namespace policy audit), by namespace and secret',
      labelNames: ['namespace', 'secret'],
      registers,
      collect() {
        this.reset();
        for (const v of states())
          for (const secret of v.unpermitted ?? []) this.inc({ namespace: v.namespace, secret });
      },
    }),
    withheldVolumes: new Gauge({
      name: 'namespace_permit_withheld_volumes',
      help: 'Volumes on this node that keep their files but get no new values because the Namespace permit no longer covers them (namespace policy enforce)',
      labelNames: ['namespace'],
      registers,
      collect() {
        this.reset();
        for (const v of states()) if (v.withheld) this.inc({ namespace: v.namespace });
      },
    }),
    /** Where the permit gauges find the volumes. */
    countPermitStates(volumes: () => Iterable<PermitState>): void {
      states = volumes;
    },
  };
}

/**
 * The SPC limit beside the count it is checked against (any provider's SPCs, at the last
 * count), for the driver and the webhook; returns what the census calls after each count.
 */
export function spcLimitGauges(registry: Registry, limit: number): (counted: number) => void {
  const registers = [registry];
  new Gauge({ name: 'secretproviderclasses_limit', help: 'The SPC limit (0 = none)', registers }).set(limit);
  const counted = new Gauge({
    name: 'secretproviderclasses_counted',
    help: 'SecretProviderClasses in the cluster, of any provider, at the last count for the SPC limit',
    registers,
  });
  return (n) => counted.set(n);
}

export type Metrics = ReturnType<typeof createMetrics>;

/** What the CSMS side of any command counts (provider/csms-setup.ts). */
export type CsmsMetrics = ReturnType<typeof csmsMetrics>;

/** The sync controller's metrics (`sync`), with Node's own. */
export function createSyncMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  const { counter, gauge, histogram } = makers(registry);
  return {
    registry,
    ...csmsMetrics(counter, histogram),
    syncs: counter(
      'secretsync_sync_total',
      'SecretSync syncs that succeeded, by outcome (created, updated, unchanged)',
      ['outcome'],
    ),
    syncErrors: counter('secretsync_sync_error_total', "SecretSync syncs that failed, by the condition's reason", [
      'reason',
    ]),
    cycleDuration: histogram(
      'secretsync_rotation_duration_seconds',
      'Wall time of one rotation cycle over every SecretSync',
    ),
    leader: gauge('secretsync_leader', 'Whether this controller holds the leader Lease (1) and syncs, or waits (0)'),
    secretSyncs: gauge('secretsync_objects', 'SecretSyncs the controller keeps in step'),
    eventsSuppressed: counter(
      'events_suppressed_total',
      'Events not sent because one with the same reason was sent for the object within the last minute',
    ),
  };
}

export type SyncMetrics = ReturnType<typeof createSyncMetrics>;

/** A registry that also has Node's own metrics (heap, CPU, event loop lag), for `serve`. */
export function createProcessMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return createMetrics(registry);
}
