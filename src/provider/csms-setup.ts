// The CSMS side of a command, from its settings: the source of secret values (reads shared
// while in flight), the node's credentials chain and, per volume, which identity reads
// (the node's, or the pod's own through CCE Pod Identity). `serve` and `provider` build it alike.
import type { CsmsMetrics } from '../metrics.js';
import { CsmsClient } from './csms-client.js';
import { CsmsSecretSource } from './csms-secret-source.js';
import { defaultCredentialProvider, MetadataCredentials } from './credentials.js';
import { PodIdentityExchange } from './pod-identity.js';
import { VolumeCredentials } from './volume-credentials.js';

export interface PodIdentityConfig {
  clusterId: string;
  cceEndpoint: string;
  /** Every volume reads as its pod's ServiceAccount: the node identity never reads a pod's secrets. */
  required: boolean;
}

export interface CsmsSettings {
  csmsEndpoint: string;
  projectId?: string;
  metadataEndpoint: string;
  csmsTimeoutMs: number;
  csmsMaxResponseBytes: number;
  /** Set when pod identity is on (serve and provider with --cluster-id). */
  podIdentity?: PodIdentityConfig;
}

export function setUpCsms(settings: CsmsSettings, metrics?: CsmsMetrics) {
  const metadata = new MetadataCredentials({ endpoint: settings.metadataEndpoint });
  const client = new CsmsClient({
    endpoint: settings.csmsEndpoint,
    // Resolved when first needed: a socket (and unpublish) must not wait for the metadata service.
    projectId: settings.projectId ?? (() => metadata.projectId()),
    timeoutMs: settings.csmsTimeoutMs,
    maxResponseBytes: settings.csmsMaxResponseBytes,
    metrics,
  });
  const source = new CsmsSecretSource(client, metrics && (() => metrics.sharedReads.inc()));
  const credentials = defaultCredentialProvider(metadata);
  const pi = settings.podIdentity;
  const exchange =
    pi &&
    new PodIdentityExchange({
      endpoint: pi.cceEndpoint,
      clusterId: pi.clusterId,
      projectId: settings.projectId ? () => Promise.resolve(settings.projectId!) : () => metadata.projectId(),
      node: credentials,
      timeoutMs: settings.csmsTimeoutMs,
    });
  const volumeCredentials = new VolumeCredentials(credentials, { exchange, required: pi?.required ?? false });
  return { source, credentials, volumeCredentials };
}
