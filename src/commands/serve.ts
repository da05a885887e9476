// Builds the object graph of the node driver, starts it, and stops it on SIGTERM.
import type { ServeConfig } from '../config.js';
import { CsiServer } from '../driver/csi-server.js';
import { startMountHelper } from '../driver/mounter.js';
import { Publisher } from '../driver/publisher.js';
import { VolumeRegistry } from '../driver/volumes.js';
import { errorMessage } from '../errors.js';
import { Backoff } from '../kube/backoff.js';
import { loadKubeConfig } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { SpcpsWriter } from '../kube/spcps-writer.js';
import { KubeView } from '../kube/view.js';
import { createLogger } from '../log.js';
import { startOpsServer } from '../ops-server.js';
import { version } from '../package-info.js';
import { CsmsClient } from '../provider/csms-client.js';
import { defaultCredentialProvider, MetadataCredentials } from '../provider/credentials.js';
import { CsmsSecretSource } from '../provider/source.js';
import { recoverVolumes } from '../reconciler/recovery.js';
import { RotationReconciler } from '../reconciler/rotation.js';
import { SecretSync } from '../reconciler/secret-sync.js';
import { SpcWatcher } from '../reconciler/spc-watch.js';

export async function serve(config: ServeConfig): Promise<void> {
  startMountHelper();
  const log = createLogger({ verbosity: config.verbosity, json: config.logJson });
  log.info('Initializing Secrets Store CSI Driver', {
    driver: 'secrets-store.csi.k8s.io',
    version,
    node: config.nodeId,
    csmsEndpoint: config.csmsEndpoint,
  });
  process.on('unhandledRejection', (err) => log.error('Unhandled rejection', { error: errorMessage(err) }));

  const metadata = new MetadataCredentials({ endpoint: config.metadataEndpoint });
  // Resolved when first needed: the socket (and unpublish) must not wait for the metadata service.
  const projectId = config.projectId ?? (() => metadata.projectId());
  const volumes = new VolumeRegistry();
  const kube = new KubeView(
    loadKubeConfig(config.kubeconfig),
    config.nodeId,
    log,
    volumes,
    config.maxSecretProviderClasses,
  );
  const source = new CsmsSecretSource(
    new CsmsClient({
      endpoint: config.csmsEndpoint,
      projectId,
      timeoutMs: config.csmsTimeoutMs,
      maxResponseBytes: config.csmsMaxResponseBytes,
    }),
  );
  const events = new EventRecorder(kube.core, log);
  const secretSync = config.syncSecrets ? new SecretSync(kube.core, log, events) : undefined;
  const publisher = new Publisher({
    kube,
    source,
    log,
    volumes,
    kubeletRoot: config.kubeletRoot,
    spcps: new SpcpsWriter(kube.custom),
    credentials: defaultCredentialProvider(metadata),
    onContent: secretSync && ((content) => secretSync.sync(content)),
  });
  const server = new CsiServer({
    endpoint: config.endpoint,
    nodeId: config.nodeId,
    publisher,
    log,
    kubeletRoot: config.kubeletRoot,
    ready: () => kube.synced,
    maxReceiveMessageBytes: config.maxCallRecvMsgSize,
  });
  const rotation = config.rotationEnabled
    ? new RotationReconciler({ publisher, source, events, log, intervalMs: config.rotationIntervalMs })
    : undefined;
  const spcWatch = new SpcWatcher(kube, publisher, source, events, log);

  // Listen first so kubelet's registration and Probe work while the caches fill.
  await server.start();
  const ops = config.metricsAddr ? await startOpsServer(config.metricsAddr, () => kube.synced) : undefined;
  const opsAddr = ops?.address();
  if (opsAddr && typeof opsAddr === 'object')
    log.info('Serving metrics and health checks', { address: `${opsAddr.address}:${opsAddr.port}` });
  void kube
    .start()
    .then(async () => {
      log.info('Kubernetes caches synced');
      spcWatch.start();
      const backoff = new Backoff(1000);
      for (let attempt = 1; ; attempt++) {
        try {
          const adopted = await recoverVolumes({ kube, publisher, events, log, kubeletRoot: config.kubeletRoot });
          if (adopted > 0) log.info('Took over volumes mounted before a restart', { volumes: adopted });
          break;
        } catch (err) {
          log.warn('Taking over mounted volumes failed, retrying', { attempt, error: errorMessage(err) });
          await new Promise((r) => setTimeout(r, backoff.next()));
        }
      }
      rotation?.start();
    })
    .catch((err) => {
      log.error('Start-up failed', { error: errorMessage(err) });
      process.exit(1);
    });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('Shutting down', { signal });
    spcWatch.stop();
    await rotation?.stop();
    await server.stop();
    ops?.close();
    await kube.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
