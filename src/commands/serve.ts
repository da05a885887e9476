// `cce-secrets-manager serve`: builds the object graph of the node driver, starts it,
// and stops it on SIGTERM. Start-up fails loudly: if the caches or the take-over of
// mounted volumes cannot start, the process exits rather than serve without rotation.
import * as k8s from '@kubernetes/client-node';
import { reportUnpermitted } from '../access/permit-audit.js';
import type { ServeConfig } from '../config.js';
import { atomicWriter } from '../driver/atomic-writer.js';
import { CsiServer, csiSocketAnswers } from '../driver/csi-server.js';
import { KubeletRegistration } from '../driver/kubelet-registration.js';
import { ExternalProviders } from '../provider-api/client.js';
import { ownMounts, TmpfsMounter } from '../driver/mounter.js';
import { Publisher } from '../driver/publisher.js';
import type { PublishedContent } from '../driver/publisher-deps.js';
import { VolumeRegistry } from '../driver/volumes.js';
import { errorMessage } from '../errors.js';
import { Backoff } from '../kube/backoff.js';
import { loadKubeConfig } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { SpcpsWriter } from '../kube/spcps-writer.js';
import { KubeView } from '../kube/view.js';
import { createLogger, type Logger } from '../log.js';
import { createProcessMetrics, spcLimitGauges, type Metrics } from '../metrics.js';
import { startOpsServer } from '../ops-server.js';
import { version } from '../package-info.js';
import { setUpCsms } from '../provider/csms-setup.js';
import { recoverVolumes } from '../reconciler/recovery.js';
import { RotationReconciler } from '../reconciler/rotation.js';
import { SecretSync } from '../reconciler/secret-sync.js';
import { EditWatcher } from '../reconciler/edit-watch.js';
import { sleep } from '../util/async.js';

/** What the driver writes: Events, synced Secrets, SPCPS (KubeView is what it reads). */
function writers(kc: k8s.KubeConfig, config: ServeConfig, log: Logger, metrics: Metrics) {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const events = new EventRecorder(core, log, () => metrics.eventsSuppressed.inc());
  const secretSync = config.syncSecrets ? new SecretSync(core, log, events) : undefined;
  return { events, secretSync, spcps: new SpcpsWriter(kc.makeApiClient(k8s.CustomObjectsApi)) };
}

/** The parts of a running driver, wired together but not started. */
function build(config: ServeConfig, log: Logger, metrics: Metrics) {
  const mounter = new TmpfsMounter();
  const volumes = new VolumeRegistry();
  // Set once rotation exists (it needs the publisher): a volume that failed for want of a
  // valid token is due again as soon as kubelet's republish brings one.
  const tokensRenewed: { then?: (target: string) => void } = {};
  const kc = loadKubeConfig(config.kubeconfig, config.maxObjectBytes);
  const kube = new KubeView(kc, config.nodeId, log, volumes, {
    maxSpcs: config.maxSecretProviderClasses,
    onCachedObjects: (kind, size) => metrics.cachedObjects.set({ kind }, size),
    onWatchEvent: (kind) => metrics.watchEvents.inc({ kind }),
    namespaces: config.namespacePolicy !== 'off',
    onSpcCount: spcLimitGauges(metrics.registry, config.maxSecretProviderClasses),
  });
  metrics.countPermitStates(() => volumes.permitStates());
  const { source, volumeCredentials: credentials } = setUpCsms(config, metrics);
  const { events, secretSync, spcps } = writers(kc, config, log, metrics);
  const { kubeletRoot, socket, nodeId } = config;
  const onContent = secretSync && ((content: PublishedContent) => secretSync.sync(content));
  const writer = atomicWriter;
  const providers = new ExternalProviders({
    dirs: [config.providerVolume, ...config.additionalProviderPaths],
    maxReceiveBytes: config.maxCallRecvMsgSize,
    timeoutMs: config.providerTimeoutMs,
    log,
  });
  const publisher = new Publisher({
    cluster: kube,
    spcps,
    source,
    credentials,
    providers,
    log,
    volumes,
    kubeletRoot,
    mounter,
    writer,
    onContent,
    namespacePolicy: config.namespacePolicy,
    limits: config.limits,
    onUnpermitted: reportUnpermitted(events, log),
    onNewTokens: (target) => tokensRenewed.then?.(target),
  });
  const ready = () => kube.synced;
  const maxReceiveMessageBytes = config.maxCallRecvMsgSize;
  const server = new CsiServer({
    socket,
    nodeId,
    publisher,
    log,
    metrics,
    kubeletRoot,
    ready,
    maxReceiveMessageBytes,
  });
  const { rotation, editWatch } = reconcilers(config, { kube, publisher, source, events, log, metrics });
  tokensRenewed.then = rotation && ((target) => rotation.refreshed(target));
  return { kube, mounter, publisher, events, server, rotation, editWatch };
}

/** Rotation (unless turned off) and the watch that applies SPC and Namespace edits. */
function reconcilers(config: ServeConfig, parts: Omit<ConstructorParameters<typeof EditWatcher>[0], 'onRefreshed'>) {
  const { publisher, source, events, log, metrics } = parts;
  const intervalMs = config.rotationIntervalMs;
  const rotation = config.rotationEnabled
    ? new RotationReconciler({ publisher, source, events, log, metrics, intervalMs })
    : undefined;
  const onRefreshed = rotation && ((target: string) => rotation.refreshed(target));
  return { rotation, editWatch: new EditWatcher({ ...parts, onRefreshed }) };
}

/** Registration with kubelet by the driver itself, when it is given kubelet's plugins_registry. */
function kubeletRegistration(config: ServeConfig, log: Logger, metrics: Metrics) {
  if (!config.pluginRegistrationDir) return undefined;
  return new KubeletRegistration({
    dir: config.pluginRegistrationDir,
    csiSocket: config.kubeletCsiSocket || config.socket,
    log,
    onStatus: (registered) => metrics.kubeletRegistered.set(registered ? 1 : 0),
  });
}

/** Liveness: the CSI socket answers, and kubelet has not refused the registration (a restart registers again). */
function live(socket: string, registration?: KubeletRegistration): () => Promise<boolean> {
  const answers = csiSocketAnswers(socket);
  return async () => registration?.status?.registered !== false && (await answers());
}

type Driver = ReturnType<typeof build>;

export async function serve(config: ServeConfig): Promise<void> {
  const log = createLogger({ verbosity: config.verbosity, json: config.logJson, name: 'serve' });
  log.info('Initializing Secrets Store CSI Driver', {
    ...{ driver: 'secrets-store.csi.k8s.io', version, node: config.nodeId },
    csmsEndpoint: config.csmsEndpoint,
    namespacePolicy: config.namespacePolicy,
  });
  process.on('unhandledRejection', (err) => log.error('Unhandled rejection', { error: errorMessage(err) }));
  const metrics = createProcessMetrics();
  const shutdown = new AbortController();
  const driver = build(config, log, metrics);

  await driver.mounter.start();
  // Listen first so kubelet's registration and Probe work while the caches fill.
  await driver.server.start();
  const registration = kubeletRegistration(config, log, metrics);
  await registration?.start();
  const ops = config.metricsAddr
    ? await startOpsServer(
        config.metricsAddr,
        () => driver.kube.synced,
        metrics.registry,
        live(config.socket, registration),
      )
    : undefined;
  const opsAddr = ops?.address();
  if (opsAddr && typeof opsAddr === 'object') {
    log.info('Serving metrics and health checks', { address: `${opsAddr.address}:${opsAddr.port}` });
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('Shutting down', { signal });
    shutdown.abort();
    driver.editWatch.stop();
    // Unregistered first: kubelet stops sending mounts to a driver that is going away.
    await registration?.stop();
    await driver.rotation?.stop();
    await driver.server.stop();
    await driver.publisher.settled();
    ops?.close();
    await driver.kube.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  await startReconcilers(config, driver, log, shutdown.signal);
}

/** Fills the caches, takes over volumes mounted before a restart, then starts rotation. */
async function startReconcilers(config: ServeConfig, driver: Driver, log: Logger, shutdown: AbortSignal) {
  const { kube, publisher, events } = driver;
  await kube.start();
  log.info('Kubernetes caches synced');
  driver.editWatch.start();
  const backoff = new Backoff(1000);
  for (let attempt = 1; !shutdown.aborted; attempt++) {
    try {
      const adopted = await recoverVolumes({
        ...{ kube, publisher, events, log, kubeletRoot: config.kubeletRoot },
        ownMounts,
      });
      if (adopted > 0) log.info('Took over volumes mounted before a restart', { volumes: adopted });
      break;
    } catch (err) {
      log.warn('Taking over mounted volumes failed, retrying', { attempt, error: errorMessage(err) });
      await sleep(backoff.next(), shutdown).catch(() => undefined);
    }
  }
  if (!shutdown.aborted) driver.rotation?.start();
}
