// Our CSMS provider behind the provider API, for clusters that keep the upstream driver:
// `cce-secrets-manager provider` serves Version and Mount on <provider folder>/cce.sock.
// Mount applies the same SPC rules, allow-list, Namespace permit, shared CSMS reads and
// credentials chain (pod identity included) as our own driver and returns the files and versions; the upstream
// driver writes them. Knows no Kubernetes: the ServiceAccount's and the Namespace's
// annotations come through `annotationsOf` and `namespaceAnnotationsOf`.
import * as grpc from '@grpc/grpc-js';
import { parseSecretObjects, parseUsePodIdentity } from '../crds/objects.js';
import { parseServiceAccountTokens } from '../crds/service-account-tokens.js';
import {
  CTX_POD_NAME,
  CTX_POD_NAMESPACE,
  CTX_POD_UID,
  CTX_SA_TOKENS,
  CTX_SERVICE_ACCOUNT,
  CTX_SPC,
} from '../crds/types.js';
import { InvalidRequestError } from '../errors.js';
import { bindOwnerOnly, stopServer } from '../grpc/socket.js';
import { unary } from '../grpc/unary.js';
import type { Logger } from '../log.js';
import { sharedAbortController } from '../util/async.js';
import { version } from '../package-info.js';
import { checkAllowList } from '../access/allow-list.js';
import { checkNamespacePermit, type NamespacePolicy } from '../access/namespace-permit.js';
import type { UnpermittedReport } from '../access/permit-audit.js';
import {
  PROVIDER_API_VERSION,
  providerService,
  type MountRequest,
  type MountResponse,
  type VersionResponse,
} from './protocol.js';
import type { SecretSource } from '../provider/secret-source.js';
import type { VolumeCredentials } from '../provider/volume-credentials.js';
import { buildVolumeContent, type VolumeLimits } from '../provider/volume-content.js';

export const PROVIDER_NAME = 'cce';

export interface ProviderServerDeps {
  source: SecretSource;
  /** Who reads CSMS for a volume: the pod's own ServiceAccount (pod identity), or the node. */
  volumeCredentials: VolumeCredentials;
  /** The annotations of a ServiceAccount (its allow-list), read fresh for each mount. */
  annotationsOf(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** The annotations of a Namespace (its permit), read fresh for each mount unless the policy is off. */
  namespaceAnnotationsOf(namespace: string): Promise<Record<string, string> | undefined>;
  namespacePolicy: NamespacePolicy;
  /** What one volume may hold (files, total, jmesPath time). */
  limits: VolumeLimits;
  /** Audit: a mount served secrets no Namespace permit covers. */
  onUnpermitted?: UnpermittedReport;
  log: Logger;
}

/** Answers one Mount as our driver would publish: refusals carry the driver's own messages. */
export async function mountObjects(
  deps: ProviderServerDeps,
  req: MountRequest,
  signal?: AbortSignal,
): Promise<MountResponse> {
  const attributes = parseJsonObject(req.attributes, 'attributes');
  const secrets = parseJsonObject(req.secrets, 'secrets');
  const need = (key: string) => {
    const v = attributes[key];
    if (!v)
      throw new InvalidRequestError(
        `Mount: attributes["${key}"] is required; is podInfoOnMount true on the CSIDriver?`,
      );
    return v;
  };
  const namespace = need(CTX_POD_NAMESPACE);
  const serviceAccount = need(CTX_SERVICE_ACCOUNT);
  const spcRef = `${namespace}/${attributes[CTX_SPC] ?? '(unnamed)'}`;
  const objects = parseSecretObjects(spcRef, attributes.objects);
  const usePodIdentity = parseUsePodIdentity(spcRef, attributes.usePodIdentity);
  const tokens = parseServiceAccountTokens('Mount: attributes', attributes[CTX_SA_TOKENS]);
  const policy = deps.namespacePolicy;
  const [annotations, namespaceAnnotations] = await Promise.all([
    deps.annotationsOf(namespace, serviceAccount),
    policy === 'off' ? undefined : deps.namespaceAnnotationsOf(namespace),
  ]);
  const names = objects.map((o) => o.objectName);
  checkAllowList(`${namespace}/${serviceAccount}`, annotations, names);
  const unpermitted = checkNamespacePermit(policy, namespace, namespaceAnnotations, names);
  const pod = { name: attributes[CTX_POD_NAME] ?? '', namespace, uid: attributes[CTX_POD_UID] ?? '' };
  if (unpermitted) deps.onUnpermitted?.(pod, { spc: spcRef, targetPath: req.target_path }, unpermitted);
  const what = `Pod ${namespace}/${pod.name} (SecretProviderClass ${spcRef})`;
  const identity = { namespace, serviceAccount, what, secrets, tokens, usePodIdentity };
  const creds = await deps.volumeCredentials.forVolume(identity, signal);
  const asked = objects.map((o) => ({ name: o.objectName, version: o.objectVersion }));
  const values = await deps.source.fetch(asked, creds, signal);
  const content = buildVolumeContent(spcRef, objects, values, deps.limits);
  const mode = parseMode(req.permission);
  deps.log.info('Mount served', {
    pod: `${namespace}/${pod.name}`,
    spc: spcRef,
    files: content.files.size,
  });
  return {
    object_version: content.versions,
    error: null,
    files: [...content.files].map(([path, contents]) => ({ path, mode: content.modes.get(path) ?? mode, contents })),
  };
}

function parseJsonObject(json: string, field: string): Record<string, string> {
  let parsed: unknown;
  try {
    // Upstream's driver sends "null" for a volume without nodePublishSecretRef (Go's nil map).
    parsed = json === '' || json === 'null' ? {} : JSON.parse(json);
  } catch {
    // Not quoted: the secrets field holds credentials.
    throw new InvalidRequestError(`Mount: ${field} is not a JSON object`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidRequestError(`Mount: ${field} is not a JSON object`);
  }
  return parsed as Record<string, string>;
}

/** The default mode, as upstream sends it: a JSON number (420 is 0644). */
function parseMode(permission: string): number {
  if (permission === '') return 0o644;
  const mode = Number(permission);
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    throw new InvalidRequestError(`Mount: permission ${JSON.stringify(permission)} is not a file mode (0 to 511)`);
  }
  return mode;
}

export class ProviderServer {
  private readonly server = new grpc.Server();
  private readonly shutdown = sharedAbortController();

  constructor(
    private readonly socket: string,
    deps: ProviderServerDeps,
  ) {
    const opts = { log: deps.log, shutdown: this.shutdown.signal };
    this.server.addService(providerService().service, {
      Version: unary('Version', opts, async (): Promise<VersionResponse> => ({
        version: PROVIDER_API_VERSION,
        runtime_name: 'cce-secrets-manager',
        runtime_version: version,
      })),
      Mount: unary('Mount', opts, (req: MountRequest, signal) => mountObjects(deps, req, signal)),
    });
  }

  async start(): Promise<void> {
    await bindOwnerOnly(this.server, this.socket);
  }

  stop(graceMs = 10_000): Promise<void> {
    return stopServer(this.server, this.shutdown, this.socket, graceMs);
  }
}
