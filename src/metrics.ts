// The driver's Prometheus metrics: the upstream driver's names, so existing dashboards
// keep working, plus what operators of this driver need. Built per driver and passed to
// the parts that count, so a test reads its own numbers.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const seconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The metrics of one driver, registered in `registry` (a fresh one unless given). */
export function createMetrics(registry = new Registry()) {
  return {
    registry,
    nodePublish: new Counter({
      name: 'node_publish_total',
      help: 'Successful NodePublishVolume calls',
      labelNames: ['provider'],
      registers: [registry],
    }),
    nodePublishError: new Counter({
      name: 'node_publish_error_total',
      help: 'Failed NodePublishVolume calls by gRPC code',
      labelNames: ['provider', 'error_type'],
      registers: [registry],
    }),
    nodeUnpublish: new Counter({
      name: 'node_unpublish_total',
      help: 'Successful NodeUnpublishVolume calls',
      registers: [registry],
    }),
    nodeUnpublishError: new Counter({
      name: 'node_unpublish_error_total',
      help: 'Failed NodeUnpublishVolume calls by gRPC code',
      labelNames: ['error_type'],
      registers: [registry],
    }),
    publishDuration: new Histogram({
      name: 'node_publish_duration_seconds',
      help: 'NodePublishVolume latency',
      buckets: seconds,
      registers: [registry],
    }),
    rotationReconcile: new Counter({
      name: 'rotation_reconcile_total',
      help: 'Rotation cycles run',
      registers: [registry],
    }),
    rotationReconcileError: new Counter({
      name: 'rotation_reconcile_error_total',
      help: 'Volume refreshes that failed during rotation',
      labelNames: ['error_type'],
      registers: [registry],
    }),
    rotationDuration: new Histogram({
      name: 'rotation_reconcile_duration_sec',
      help: 'Wall time of one rotation cycle',
      buckets: seconds,
      registers: [registry],
    }),
    rotationUpdated: new Counter({
      name: 'rotation_volumes_updated_total',
      help: 'Volumes whose content a rotation changed',
      registers: [registry],
    }),
    spcUpdateError: new Counter({
      name: 'spc_update_error_total',
      help: 'SPC edits that could not be applied to a running volume',
      registers: [registry],
    }),
    csmsRequests: new Counter({
      name: 'csms_requests_total',
      help: 'HTTP requests sent to CSMS by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    csmsDuration: new Histogram({
      name: 'csms_request_duration_seconds',
      help: 'CSMS request latency by outcome',
      labelNames: ['outcome'],
      buckets: seconds,
      registers: [registry],
    }),
    sharedReads: new Counter({
      name: 'csms_shared_reads_total',
      help: 'Secret reads served by a read already made or in flight (no CSMS call)',
      registers: [registry],
    }),
    eventsSuppressed: new Counter({
      name: 'events_suppressed_total',
      help: 'Pod events not sent because one with the same reason was sent within the last minute',
      registers: [registry],
    }),
    cachedObjects: new Gauge({
      name: 'kube_cached_objects',
      help: 'Kubernetes objects the driver holds in memory, by kind',
      labelNames: ['kind'],
      registers: [registry],
    }),
    mountedVolumes: new Gauge({
      name: 'mounted_volumes',
      help: 'Volumes this driver has mounted on the node',
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** A registry that also has Node's own metrics (heap, CPU, event loop lag), for `serve`. */
export function createProcessMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return createMetrics(registry);
}
