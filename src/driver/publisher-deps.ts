// What the publisher (publisher.ts) is given and what it answers: its dependencies, each a
// seam a test can replace, and the outcomes of a refresh.
import type * as k8s from '@kubernetes/client-node';
import type { NamespacePolicy } from '../access/namespace-permit.js';
import type { UnpermittedReport } from '../access/permit-audit.js';
import type { SecretProviderClass } from '../crds/types.js';
import type { SpcpsStore } from '../kube/spcps-writer.js';
import type { Logger } from '../log.js';
import type { VolumeCredentials } from '../provider/volume-credentials.js';
import type { SecretSource } from '../provider/secret-source.js';
import type { FileSet, VolumeLimits } from '../provider/volume-content.js';
import type { VolumeWriter } from './atomic-writer.js';
import type { Mounter } from './mounter.js';
import type { ProviderCaller } from './provider-volume-source.js';
import type { ClusterReads } from './volume-plan.js';
import type { PublishRequest } from './volume-request.js';
import type { VolumeRegistry } from './volumes.js';

/** What a volume now holds; hooks (Secret sync) derive their objects from it. */
export interface PublishedContent {
  request: PublishRequest;
  pod: k8s.V1Pod;
  spc: SecretProviderClass;
  files: FileSet;
}

export interface PublisherDeps {
  cluster: ClusterReads;
  /** kubelet's root folder: the driver touches nothing outside its pods' CSI volume folders. */
  kubeletRoot: string;
  volumes?: VolumeRegistry;
  spcps: SpcpsStore;
  source: SecretSource;
  credentials: VolumeCredentials;
  /** External providers (SPCs whose provider is not `cce`); without it such SPCs are refused. */
  providers?: ProviderCaller;
  mounter: Mounter;
  writer: VolumeWriter;
  /** Milliseconds on a monotonic clock, for the phase timings in the log. */
  now?: () => number;
  log: Logger;
  /** Run after the files are written; a failure fails the publish. */
  onContent?: (content: PublishedContent) => Promise<void>;
  /** What one volume may hold, and the time its jmesPath entries may take; default DEFAULT_VOLUME_LIMITS. */
  limits?: VolumeLimits;
  /** How the Namespace permit applies (access/namespace-permit.ts); default off. */
  namespacePolicy?: NamespacePolicy;
  /** Audit: a volume mounts secrets no Namespace permit covers (told once, and again when that changes). */
  onUnpermitted?: UnpermittedReport;
  /** kubelet's republish brought a mounted volume new ServiceAccount tokens (its next refresh may use them). */
  onNewTokens?: (targetPath: string) => void;
}

export interface RefreshOptions {
  /** Where values come from (a rotation cycle shares one source across volumes). */
  source?: SecretSource;
  /** Only what the SPC says: `latest` values are not read again. */
  specOnly?: boolean;
  signal?: AbortSignal;
}

/**
 * `withheld`: the Namespace permit no longer covers the volume, which keeps its files and
 * was told so before; `resumed`: it covers it again, and nothing else changed.
 */
export type RefreshOutcome = 'unchanged' | 'updated' | 'gone' | 'withheld' | 'resumed';
