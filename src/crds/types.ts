// Kubernetes object shapes and names shared with the upstream Secrets Store CSI
// Driver. Only the fields this product reads or writes are typed.

export const GROUP = 'secrets-store.csi.x-k8s.io';
export const VERSION = 'v1';
export const SPC_PLURAL = 'secretproviderclasses';
export const SPCPS_PLURAL = 'secretproviderclasspodstatuses';
export const DRIVER_NAME = 'secrets-store.csi.k8s.io';
export const NODE_LABEL = 'internal.secrets-store.csi.k8s.io/node-name';
export const MANAGED_LABEL = 'secrets-store.csi.k8s.io/managed';
/** On a synced Secret: `namespace/name` of the one SPC whose secretObjects it comes from. */
export const OWNER_SPC_ANNOTATION = 'cce.io/secret-provider-class';
export const ALLOW_LIST_ANNOTATION = 'cce.io/dew-resource';
/** On a Namespace, written by the cluster admin: the CSMS secrets (names, `*` patterns) its pods may mount. */
export const PERMIT_ANNOTATION = 'cce.io/dew-resource-permitted';
export const BUILTIN_PROVIDER = 'cce';

/**
 * The volume attributes kubelet passes a CSI driver (and a driver passes a provider, in
 * MountRequest.attributes). The `csi.storage.k8s.io/` keys are kubelet's alone.
 */
export const CTX_SPC = 'secretProviderClass';
export const KUBELET_ATTRIBUTE_PREFIX = 'csi.storage.k8s.io/';
export const CTX_POD_NAME = `${KUBELET_ATTRIBUTE_PREFIX}pod.name`;
export const CTX_POD_NAMESPACE = `${KUBELET_ATTRIBUTE_PREFIX}pod.namespace`;
export const CTX_POD_UID = `${KUBELET_ATTRIBUTE_PREFIX}pod.uid`;
export const CTX_SERVICE_ACCOUNT = `${KUBELET_ATTRIBUTE_PREFIX}serviceAccount.name`;
export const CTX_EPHEMERAL = `${KUBELET_ATTRIBUTE_PREFIX}ephemeral`;
/** What kubelet passes when the CSIDriver has tokenRequests: JSON of audience → token. */
export const CTX_SA_TOKENS = `${KUBELET_ATTRIBUTE_PREFIX}serviceAccount.tokens`;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  /** Set while the object is being deleted. */
  deletionTimestamp?: unknown;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface SecretObjectData {
  objectName: string;
  key: string;
}

export interface SyncedSecretSpec {
  secretName: string;
  type?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  data: SecretObjectData[];
}

export interface SecretProviderClass {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    provider: string;
    parameters?: Record<string, string>;
    secretObjects?: SyncedSecretSpec[];
  };
}

export interface SpcpsObjectVersion {
  id: string;
  version: string;
}

export interface SpcpsStatus {
  podName: string;
  secretProviderClassName: string;
  mounted: boolean;
  targetPath: string;
  objects: SpcpsObjectVersion[];
}

export interface SecretProviderClassPodStatus {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  status: SpcpsStatus;
}

/** The upstream sync controller's API (kubernetes-sigs/secrets-store-sync-controller), served by `sync`. */
export const SYNC_GROUP = 'secret-sync.x-k8s.io';
export const SYNC_VERSION = 'v1alpha1';
export const SECRETSYNC_PLURAL = 'secretsyncs';
/** Upstream's label on every Secret a SecretSync makes (value ""); its key prefix is reserved in SecretSync labels and annotations. */
export const SYNC_LABEL = 'secrets-store.sync.x-k8s.io';

export interface SecretSyncData {
  /** A file of the SPC's content (its objectName or objectAlias, or a jmesPath entry's alias). */
  sourcePath: string;
  targetKey: string;
}

export interface SecretSyncSpec {
  secretProviderClassName: string;
  serviceAccountName: string;
  /** Upstream's field; accepted and not read (as upstream). */
  secretSyncControllerName?: string;
  /** Any new value forces a write of the Secret. */
  forceSynchronization?: string;
  secretObject: {
    type?: string;
    data: SecretSyncData[];
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface SecretSyncStatus {
  syncHash?: string;
  lastSuccessfulSyncTime?: string;
  conditions?: Condition[];
}

/** A SecretSync: the Secret of the same name in its namespace, kept in step with its SPC's objects. */
export interface SecretSync {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: SecretSyncSpec;
  status?: SecretSyncStatus;
}
