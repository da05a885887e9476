// `cce-secrets-manager provider`: our CSMS provider on the provider API's socket, for a
// cluster that keeps the upstream Secrets Store CSI driver (chart: driver.enabled=false).
// It reads ServiceAccounts (the allow-list) and Namespaces (the permit), and writes only
// Events (namespace policy audit).
import * as k8s from '@kubernetes/client-node';
import {
  CSMS_FLAGS,
  LOG_FLAGS,
  mountingCsmsSettings,
  POD_IDENTITY_FLAGS,
  SERVE_FLAGS,
  VOLUME_FLAGS,
  volumeLimits,
} from '../config.js';
import { flagHelp, parseFlags, unixSocket } from '../flags.js';
import { annotationsOf, loadKubeConfig } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import { createLogger } from '../log.js';
import { reportUnpermitted, type UnpermittedReport } from '../access/permit-audit.js';
import { stopOnSignal } from './stop-on-signal.js';
import { version } from '../package-info.js';
import { setUpCsms } from '../provider/csms-setup.js';
import { PROVIDER_NAME, ProviderServer } from '../provider-api/server.js';

const PROVIDER_FLAGS = {
  socket: {
    name: 'endpoint',
    metavar: 'URL',
    default: `unix:///var/run/secrets-store-csi-providers/${PROVIDER_NAME}.sock`,
    help: `the provider socket; the upstream driver looks for <provider folder>/${PROVIDER_NAME}.sock`,
    parse: unixSocket('unix:///var/run/secrets-store-csi-providers/cce.sock', '.sock'),
  },
  kubeconfig: SERVE_FLAGS.kubeconfig,
  maxObjectBytes: SERVE_FLAGS.maxObjectBytes,
  namespacePolicy: SERVE_FLAGS.namespacePolicy,
};

const PROVIDER_TABLE = { ...PROVIDER_FLAGS, ...VOLUME_FLAGS, ...CSMS_FLAGS, ...POD_IDENTITY_FLAGS, ...LOG_FLAGS };

export const PROVIDER_HELP = `Usage: cce-secrets-manager provider [flags]

Serves the built-in Huawei Cloud DEW/CSMS provider (provider: ${PROVIDER_NAME}) on the
Secrets Store provider API (v1alpha1), for the upstream Secrets Store CSI driver.

Flags:
${flagHelp(PROVIDER_TABLE)}
`;

export async function providerCommand(argv: string[]): Promise<void> {
  const o = parseFlags('provider', PROVIDER_TABLE, argv);
  if (o === 'help') {
    process.stdout.write(PROVIDER_HELP);
    return;
  }
  const csms = mountingCsmsSettings(o);
  const limits = volumeLimits(o);
  const log = createLogger({ verbosity: o.verbosity, json: o.logJson, name: 'provider' });
  const core = loadKubeConfig(o.kubeconfig, o.maxObjectBytes).makeApiClient(k8s.CoreV1Api);
  const server = new ProviderServer(o.socket, {
    ...setUpCsms(csms),
    annotationsOf: (namespace, name) =>
      annotationsOf(`ServiceAccount ${namespace}/${name}`, () =>
        core.readNamespacedServiceAccount({ namespace, name }),
      ),
    namespaceAnnotationsOf: (name) => annotationsOf(`Namespace ${name}`, () => core.readNamespace({ name })),
    namespacePolicy: o.namespacePolicy,
    limits,
    onUnpermitted: oncePerVolume(
      reportUnpermitted(new EventRecorder(core, log, undefined, 60_000, PROVIDER_SOURCE), log),
    ),
    log,
  });
  await server.start();
  log.info('Serving the CSMS provider', {
    ...{ provider: PROVIDER_NAME, socket: o.socket, version },
    ...{ csmsEndpoint: csms.csmsEndpoint, namespacePolicy: o.namespacePolicy },
  });
  stopOnSignal(log, () => server.stop());
}

const PROVIDER_SOURCE = 'cce-secrets-manager-provider';

/**
 * The upstream driver calls Mount again at every rotation: each volume (target path, which
 * the upstream driver sets from kubelet's request) is reported once for the same secrets,
 * not every cycle (a bounded memory; a full one starts again).
 */
function oncePerVolume(report: UnpermittedReport): UnpermittedReport {
  const told = new Map<string, string>();
  return (pod, volume, decision) => {
    const denied = decision.denied.join('\0');
    if (told.get(volume.targetPath) === denied) return;
    if (told.size >= 10_000) told.clear();
    told.set(volume.targetPath, denied);
    report(pod, volume, decision);
  };
}
