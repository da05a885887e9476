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
export const BUILTIN_PROVIDER = 'cce';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
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
