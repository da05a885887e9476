// The CSMS side of a command, from its settings: the source of secret values (reads shared
// while in flight) and the credentials chain. `serve` and `provider` build it alike.
import type { Metrics } from '../metrics.js';
import { CsmsClient } from './csms-client.js';
import { CsmsSecretSource } from './csms-secret-source.js';
import { defaultCredentialProvider, MetadataCredentials } from './credentials.js';

export interface CsmsSettings {
  csmsEndpoint: string;
  projectId?: string;
  metadataEndpoint: string;
  csmsTimeoutMs: number;
  csmsMaxResponseBytes: number;
}

export function setUpCsms(settings: CsmsSettings, metrics?: Metrics) {
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
  return { source, credentials: defaultCredentialProvider(metadata) };
}
