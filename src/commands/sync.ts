// `cce-secrets-manager sync`: the SecretSync controller (secret-sync.x-k8s.io/v1alpha1), run
// as a Deployment. The replicas elect a leader on a Lease; the leader keeps each
// SecretSync's Secret in step with CSMS, the others keep their caches warm to take over.
// It reads SecretSyncs, SPCs, ServiceAccounts and (for the permit) Namespaces; it writes
// Secrets (create and patch only, never read), SecretSync status, Events and its Lease.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import {
  ConfigError,
  CSMS_FLAGS,
  LOG_FLAGS,
  mountingCsmsSettings,
  POD_IDENTITY_FLAGS,
  SERVE_FLAGS,
  VOLUME_FLAGS,
  volumeLimits,
} from '../config.js';
import { flagHelp, parseFlags, required, duration, boolean, text, wholeNumber } from '../flags.js';
import { loadKubeConfig } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { createLogger, type Logger } from '../log.js';
import { createSyncMetrics, type SyncMetrics } from '../metrics.js';
import { startOpsServer } from '../ops-server.js';
import { version } from '../package-info.js';
import { setUpCsms } from '../provider/csms-setup.js';
import { SyncController } from '../sync/controller.js';
import { LeaderElection } from '../sync/leader-election.js';
import { SecretSyncer } from '../sync/secret-syncer.js';
import { SyncedSecretWriter } from '../sync/secret-writer.js';
import { SecretSyncStatusWriter } from '../sync/status-writer.js';
import { SyncView } from '../sync/sync-view.js';
import { TokenRequests } from '../sync/token-requests.js';
import { errorMessage } from '../errors.js';

const SYNC_FLAGS = {
  hashKeyFile: {
    name: 'hash-key-file',
    metavar: 'PATH',
    help: "the key (any bytes, at least 32) of the HMAC in each SecretSync's status.syncHash; every replica needs the same",
    parse: required('the chart mounts one from a Secret it generates'),
  },
  leaderElect: {
    name: 'leader-elect',
    metavar: 'BOOL',
    default: 'true',
    help: 'elect a leader on a Lease (false: this process syncs alone; run one replica)',
    parse: boolean,
  },
  leaseNamespace: {
    name: 'leader-election-namespace',
    metavar: 'NAME',
    env: 'POD_NAMESPACE',
    default: '',
    help: "namespace of the Lease (the chart's release namespace)",
    parse: text(),
  },
  leaseName: {
    name: 'leader-election-lease',
    metavar: 'NAME',
    default: 'cce-secrets-manager-sync',
    help: 'name of the Lease',
    parse: required('a Lease name'),
  },
  leaseDurationMs: {
    name: 'leader-lease-duration',
    metavar: 'DURATION',
    default: '15s',
    help: 'how long a leader that stopped renewing keeps the Lease; it stops syncing at 2/3 of it',
    parse: duration(3000, 300_000, '3s and 5m'),
  },
  identity: {
    name: 'identity',
    metavar: 'NAME',
    env: 'POD_NAME',
    default: '',
    help: "this replica's name in the Lease (default: host name and a random suffix)",
    parse: text(),
  },
  concurrency: {
    name: 'concurrency',
    metavar: 'N',
    default: '4',
    help: 'SecretSyncs synced at a time, one namespace in turn (BENCHMARKS.md)',
    parse: (value: string | undefined, flag: string) => {
      const n = wholeNumber(value, flag);
      if (n < 1 || n > 64) throw new ConfigError(`${flag} "${value}" must be between 1 and 64`);
      return n;
    },
  },
  metricsAddr: { ...SERVE_FLAGS.metricsAddr, default: ':8096' },
  kubeconfig: SERVE_FLAGS.kubeconfig,
  maxObjectBytes: SERVE_FLAGS.maxObjectBytes,
  rotationEnabled: SERVE_FLAGS.rotationEnabled,
  rotationIntervalMs: SERVE_FLAGS.rotationIntervalMs,
  namespacePolicy: SERVE_FLAGS.namespacePolicy,
};

const SYNC_TABLE = { ...SYNC_FLAGS, ...VOLUME_FLAGS, ...CSMS_FLAGS, ...POD_IDENTITY_FLAGS, ...LOG_FLAGS };

export const SYNC_HELP = `Usage: cce-secrets-manager sync [flags]

Keeps the Secret of each SecretSync (secret-sync.x-k8s.io/v1alpha1) in step with CSMS: the
Secret of the same name in its namespace, built from its SecretProviderClass (provider cce)
with the same checks as a mount: the ServiceAccount allow-list, the Namespace permit, pod
identity and the volume limits. Re-reads "latest" objects every --rotation-poll-interval.

Flags:
${flagHelp(SYNC_TABLE)}
`;

/** Whoever reads the status may guess values: the key makes the hash worthless to them. */
function readHashKey(path: string): Buffer {
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (err) {
    throw new ConfigError(`--hash-key-file ${path}: ${errorMessage(err)}`);
  }
  if (key.length < 32) throw new ConfigError(`--hash-key-file ${path} holds ${key.length} bytes; it needs at least 32`);
  return key;
}

type SyncValues = Exclude<ReturnType<typeof parseFlags<typeof SYNC_TABLE>>, 'help'>;

/** The controller's parts, wired together but not started. */
function build(o: SyncValues, log: Logger, metrics: SyncMetrics) {
  const csms = mountingCsmsSettings(o);
  const kc = loadKubeConfig(o.kubeconfig, o.maxObjectBytes);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const { source, volumeCredentials } = setUpCsms(csms, metrics);
  const hooks: { controller?: SyncController } = {};
  const view = new SyncView(
    kc,
    log,
    {
      onSync: (ss) => hooks.controller?.changed(ss),
      onGone: (ss) => hooks.controller?.gone(ss),
      onInput: (namespace, change) => hooks.controller?.inputChanged(namespace, change),
      onCount: (n) => metrics.secretSyncs.set(n),
    },
    { namespaces: o.namespacePolicy !== 'off' },
  );
  const syncer = new SecretSyncer({
    reads: {
      spc: (ns, name) => view.spcs.get(ns, name),
      serviceAccount: (ns, name) => view.serviceAccounts.get(ns, name),
      namespace: (name) => view.namespaces!.get('', name),
    },
    credentials: volumeCredentials,
    tokens: csms.podIdentity ? new TokenRequests(core) : undefined,
    writer: new SyncedSecretWriter(core, FIELD_MANAGER),
    status: new SecretSyncStatusWriter(custom),
    hashKey: readHashKey(o.hashKeyFile),
    limits: volumeLimits(o),
    namespacePolicy: o.namespacePolicy,
    events: new EventRecorder(core, log, () => metrics.eventsSuppressed.inc(), 60_000, FIELD_MANAGER),
    log,
    onWritten: (ss) => hooks.controller?.wrote(ss),
  });
  hooks.controller = new SyncController({
    syncer,
    list: () => view.syncs.list(),
    current: (ns, name) => view.current(ns, name),
    source,
    // Without rotation a SecretSync syncs on changes only; the cycle then comes once a day.
    intervalMs: o.rotationEnabled ? o.rotationIntervalMs : 24 * 3_600_000,
    concurrency: o.concurrency,
    metrics,
    log,
  });
  return { view, controller: hooks.controller, custom, csmsEndpoint: csms.csmsEndpoint };
}

/** Syncs while this replica leads (or always, without leader election) until `stop`; 'lost' when the lead was lost. */
async function syncWhileLeading(
  o: SyncValues,
  parts: ReturnType<typeof build>,
  metrics: SyncMetrics,
  log: Logger,
  stop: AbortSignal,
): Promise<'stopped' | 'lost'> {
  const lead = async (until: AbortSignal) => {
    metrics.leader.set(1);
    void parts.controller.start();
    await new Promise((resolve) => until.addEventListener('abort', resolve, { once: true }));
    await parts.controller.stop();
    metrics.leader.set(0);
  };
  if (!o.leaderElect) {
    await lead(stop);
    return 'stopped';
  }
  const election = new LeaderElection({
    custom: parts.custom,
    namespace: o.leaseNamespace!,
    name: o.leaseName,
    identity: o.identity || `${hostname()}-${randomBytes(4).toString('hex')}`,
    timing: {
      leaseDurationMs: o.leaseDurationMs,
      renewDeadlineMs: Math.round((o.leaseDurationMs * 2) / 3),
      retryPeriodMs: Math.max(500, Math.round(o.leaseDurationMs / 7.5)),
    },
    log,
  });
  return election.run(lead, stop);
}

export async function syncCommand(argv: string[]): Promise<void> {
  const o = parseFlags('sync', SYNC_TABLE, argv);
  if (o === 'help') {
    process.stdout.write(SYNC_HELP);
    return;
  }
  if (o.leaderElect && !o.leaseNamespace)
    throw new ConfigError('--leader-election-namespace is required with --leader-elect (or set POD_NAMESPACE)');
  const log = createLogger({ verbosity: o.verbosity, json: o.logJson, name: 'sync' });
  const metrics = createSyncMetrics();
  const parts = build(o, log, metrics);
  const ops = o.metricsAddr
    ? await startOpsServer(o.metricsAddr, () => parts.view.synced, metrics.registry)
    : undefined;
  const opsAddr = ops?.address();
  if (opsAddr && typeof opsAddr === 'object') {
    log.info('Serving metrics and health checks', { address: `${opsAddr.address}:${opsAddr.port}` });
  }
  log.info('Starting the SecretSync controller', {
    ...{ version, csmsEndpoint: parts.csmsEndpoint, namespacePolicy: o.namespacePolicy },
    rotationPollInterval: `${o.rotationIntervalMs / 1000}s`,
  });
  await parts.view.start();
  log.info('Kubernetes caches synced', { secretSyncs: parts.view.syncs.list().length });
  const shutdown = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      log.info('Shutting down', { signal });
      shutdown.abort();
    });
  }
  const outcome = await syncWhileLeading(o, parts, metrics, log, shutdown.signal);
  ops?.close();
  await parts.view.stop();
  // A replica that lost the lead restarts (as client-go's do): its caches and timers start clean.
  process.exit(outcome === 'lost' ? 1 : 0);
}

const FIELD_MANAGER = 'cce-secrets-manager-sync';
