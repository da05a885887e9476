// Which identity reads a volume's secrets from CSMS. With pod identity (the SPC's
// `usePodIdentity: "true"`, or every volume under --require-pod-identity) it is the pod's
// own ServiceAccount agency, exchanged from the token kubelet passed, and nothing else: no
// fallback to the node, not even when the exchange fails. Otherwise the volume's
// nodePublishSecretRef, else the process default (environment keys or the node agency).
import { PreconditionError } from '../errors.js';
import { resolveCredentials, type CredentialProvider } from './credentials.js';
import { POD_IDENTITY_AUDIENCE, type PodIdentityExchange } from './pod-identity.js';
import type { Credentials } from './signer.js';

/** What a volume says about who it is, as kubelet (or the upstream driver) passed it. */
export interface VolumeIdentity {
  namespace: string;
  serviceAccount: string;
  /** How messages name the volume, e.g. `Pod ns/name volume "x"`. */
  what: string;
  /** nodePublishSecretRef data. */
  secrets: Record<string, string>;
  /** kubelet's tokens by audience (the CSIDriver's tokenRequests). */
  tokens?: Record<string, { token: string }>;
  /** The SPC's usePodIdentity parameter. */
  usePodIdentity: boolean;
}

export interface PodIdentitySettings {
  exchange?: PodIdentityExchange;
  /** Every volume must use pod identity: the node identity never reads a pod's secrets. */
  required: boolean;
}

export class VolumeCredentials {
  constructor(
    private readonly fallback: CredentialProvider,
    private readonly podIdentity: PodIdentitySettings = { required: false },
  ) {}

  /** Whether this volume reads CSMS as its pod's own ServiceAccount. */
  usesPodIdentity(v: Pick<VolumeIdentity, 'usePodIdentity'>): boolean {
    return v.usePodIdentity || this.podIdentity.required;
  }

  async forVolume(v: VolumeIdentity, signal?: AbortSignal): Promise<Credentials> {
    if (!this.usesPodIdentity(v)) return resolveCredentials(v.secrets, this.fallback);
    const why = v.usePodIdentity
      ? 'its SecretProviderClass sets usePodIdentity'
      : 'the driver runs with --require-pod-identity';
    const exchange = this.podIdentity.exchange;
    if (!exchange)
      throw new PreconditionError(
        `${v.what} reads CSMS with pod identity (${why}), but pod identity is not set up on this node: install the chart with podIdentity.enabled=true and podIdentity.clusterID (--cluster-id)`,
      );
    const token = v.tokens?.[POD_IDENTITY_AUDIENCE]?.token;
    if (!token)
      throw new PreconditionError(
        `${v.what} reads CSMS with pod identity (${why}), but kubelet passed no ServiceAccount token for audience "${POD_IDENTITY_AUDIENCE}": ` +
          `add {audience: ${POD_IDENTITY_AUDIENCE}} to spec.tokenRequests of CSIDriver secrets-store.csi.k8s.io (the chart's podIdentity.enabled=true); ` +
          "a volume mounted before a driver restart gets one at kubelet's next republish",
      );
    return exchange.credentials({ namespace: v.namespace, serviceAccount: v.serviceAccount }, token, signal);
  }
}
