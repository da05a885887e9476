// `cce-secrets-manager webhook`: the validating admission webhook. It refuses, at `kubectl
// apply`, the SecretProviderClasses (provider cce) and allow-list annotations that mounts
// would refuse, with the same messages, and warns about what would not work as meant.
// It reads ServiceAccounts (for the warnings), Namespaces (their permits) and counts SPCs
// (for the limit); nothing else.
import * as k8s from '@kubernetes/client-node';
import { AdmissionServer } from '../admission/server.js';
import { ALLOW_LIST_ANNOTATION } from '../crds/types.js';
import { LOG_FLAGS, SERVE_FLAGS } from '../config.js';
import { ApiServerError } from '../errors.js';
import { flagHelp, parseFlags, port, required } from '../flags.js';
import { annotationsOf, apiErrorText, continueToken, loadKubeConfig, METADATA_ONLY } from '../kube/client.js';
import { SpcCensus } from '../kube/spc-census.js';
import { createLogger } from '../log.js';
import { spcLimitGauges } from '../metrics.js';
import { Registry } from 'prom-client';
import { stopOnSignal } from './stop-on-signal.js';
import { version } from '../package-info.js';

const WEBHOOK_FLAGS = {
  port: { name: 'port', metavar: 'N', default: '9443', help: 'HTTPS port', parse: port() },
  certFile: {
    name: 'tls-cert-file',
    metavar: 'PATH',
    help: 'serving certificate (PEM); read again when it changes',
    parse: required('the serving certificate'),
  },
  keyFile: {
    name: 'tls-private-key-file',
    metavar: 'PATH',
    help: "the certificate's private key (PEM)",
    parse: required('the private key'),
  },
  clientCaFile: {
    name: 'client-ca',
    metavar: 'PATH',
    default: '',
    help: "CA (PEM) that signs the API server's client certificate for webhooks (its AdmissionConfiguration); with it, only such callers get reviews, and reviews also check ServiceAccount allow-lists and Namespace permits; without it, a review reads nothing but the submitted object",
    parse: String,
  },
  kubeconfig: SERVE_FLAGS.kubeconfig,
  maxObjectBytes: SERVE_FLAGS.maxObjectBytes,
  // The driver's own settings, which the warnings and the SPC limit follow.
  rotationEnabled: SERVE_FLAGS.rotationEnabled,
  maxSecretProviderClasses: SERVE_FLAGS.maxSecretProviderClasses,
  namespacePolicy: SERVE_FLAGS.namespacePolicy,
};

const WEBHOOK_TABLE = { ...WEBHOOK_FLAGS, ...LOG_FLAGS };

export const WEBHOOK_HELP = `Usage: cce-secrets-manager webhook [flags]

Serves the validating admission webhook for SecretProviderClasses (provider cce) and the
ServiceAccount annotation ${ALLOW_LIST_ANNOTATION} on https://:<port>/validate, with
/metrics and /healthz beside it. Give --enable-secret-rotation, --max-secret-provider-classes
and --namespace-policy the driver's values: the warnings, the SPC limit and the Namespace
permit follow them.

Flags:
${flagHelp(WEBHOOK_TABLE)}
`;

/** The most ServiceAccounts a review reads for its warning; past them it gives none. */
const MAX_SERVICE_ACCOUNTS = 1_000;

/** The allow-lists in a namespace, from metadata-only pages; undefined past MAX_SERVICE_ACCOUNTS. */
async function allowListsIn(core: k8s.CoreV1Api, namespace: string): Promise<(string | undefined)[] | undefined> {
  const lists: (string | undefined)[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await core.listNamespacedServiceAccount({ namespace, limit: 20, _continue: token }, METADATA_ONLY);
      // A metadata-only list of nothing has `items: null`.
      lists.push(...(page.items ?? []).map((sa) => sa.metadata?.annotations?.[ALLOW_LIST_ANNOTATION]));
      token = continueToken(page);
    } while (token && lists.length < MAX_SERVICE_ACCOUNTS);
  } catch (err) {
    throw new ApiServerError(`listing ServiceAccounts in ${namespace} failed: ${apiErrorText(err)}`, { cause: err });
  }
  return token ? undefined : lists;
}

export async function webhookCommand(argv: string[]): Promise<void> {
  const o = parseFlags('webhook', WEBHOOK_TABLE, argv);
  if (o === 'help') {
    process.stdout.write(WEBHOOK_HELP);
    return;
  }
  const log = createLogger({ verbosity: o.verbosity, json: o.logJson, name: 'webhook' });
  const kc = loadKubeConfig(o.kubeconfig, o.maxObjectBytes);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const registry = new Registry();
  const onCount = spcLimitGauges(registry, o.maxSecretProviderClasses);
  const census =
    o.maxSecretProviderClasses > 0
      ? new SpcCensus(kc.makeApiClient(k8s.CustomObjectsApi), o.maxSecretProviderClasses, onCount)
      : undefined;
  // Only for a caller known to be the API server: what other objects say (SECURITY.md).
  const cluster = o.clientCaFile
    ? {
        allowLists: (namespace: string) => allowListsIn(core, namespace),
        namespaceAnnotations: (name: string) => annotationsOf(`Namespace ${name}`, () => core.readNamespace({ name })),
      }
    : {};
  const server = new AdmissionServer({
    certFile: o.certFile,
    keyFile: o.keyFile,
    clientCaFile: o.clientCaFile || undefined,
    log,
    registry,
    context: {
      rotationEnabled: o.rotationEnabled,
      checkNewSpc: async (namespace, name) => census?.checkNew(namespace, name),
      namespacePolicy: o.namespacePolicy,
      ...cluster,
    },
  });
  const listening = await server.listen(o.port);
  log.info('Serving the admission webhook', {
    port: listening,
    version,
    namespacePolicy: o.namespacePolicy,
    callers: o.clientCaFile ? 'client certificate of --client-ca' : 'anyone (reviews read only the submitted object)',
  });
  stopOnSignal(log, () => server.close());
}
