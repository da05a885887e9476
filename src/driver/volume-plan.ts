// Everything a volume's content depends on inside the cluster, read and checked:
// the pod (same uid as kubelet's), its SPC and, for the built-in CSMS provider, the
// ServiceAccount allow-list and the Namespace permit. Other providers get the SPC's
// parameters as they are.
import { createHash } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { InvalidRequestError, InvalidSpcError, PreconditionError } from '../errors.js';
import { checkProviderName, parseSecretObjects, parseUsePodIdentity, type SecretObject } from '../crds/objects.js';
import {
  ALLOW_LIST_ANNOTATION,
  BUILTIN_PROVIDER,
  DRIVER_NAME,
  KUBELET_ATTRIBUTE_PREFIX,
  type SecretProviderClass,
} from '../crds/types.js';
import { checkAllowList } from '../access/allow-list.js';
import { checkNamespacePermit, type NamespacePolicy, type PermitDecision } from '../access/namespace-permit.js';
import type { PublishRequest } from './volume-request.js';

export interface VolumePlan {
  pod: k8s.V1Pod;
  spc: SecretProviderClass;
  /** `cce` (built in) or the name of an external provider's socket. */
  provider: string;
  /** The built-in provider's objects; empty for an external provider, which reads its own parameters. */
  objects: SecretObject[];
  /** The built-in provider reads CSMS as the pod's own ServiceAccount agency (SPC usePodIdentity). */
  usePodIdentity: boolean;
  /** Changes whenever anything but the store's values would change the volume. */
  fingerprint: string;
  /** Namespace policy audit: what the Namespace permit does not cover (the mount goes ahead). */
  unpermitted?: PermitDecision;
}

/** The cluster reads a plan needs (KubeView in the driver). */
export interface ClusterReads {
  readonly nodeName: string;
  pod(namespace: string, name: string, uid: string): Promise<k8s.V1Pod>;
  spc(namespace: string, name: string): Promise<SecretProviderClass>;
  serviceAccount(namespace: string, name: string): Promise<k8s.V1ServiceAccount>;
  /** Read only when the namespace policy is not off. */
  namespace(name: string): Promise<k8s.V1Namespace>;
  /** Refuses an SPC beyond the cluster's SPC limit (checked at mount time only). */
  checkSpcLimit(spc: SecretProviderClass): Promise<void>;
}

export async function planVolume(
  kube: ClusterReads,
  req: PublishRequest,
  policy: NamespacePolicy = 'off',
): Promise<VolumePlan> {
  const pod = await kube.pod(req.podNamespace, req.podName, req.podUid);
  // Before anything else is read: the request must be this node's pod and one of its own volumes.
  checkPodVolume(req, pod, kube.nodeName);
  const spc = await kube.spc(req.podNamespace, req.spcName);
  const provider = spc.spec?.provider;
  if (provider !== BUILTIN_PROVIDER) return { pod, spc, provider, ...checkExternal(req, spc, pod) };
  const [sa, namespace] = await Promise.all([
    kube.serviceAccount(req.podNamespace, req.serviceAccount),
    policy === 'off' ? undefined : kube.namespace(req.podNamespace),
  ]);
  const checked = checkVolume(req, spc, sa.metadata?.annotations, pod.spec?.securityContext?.fsGroup);
  // After the allow-list: what the team allows, the cluster admin must also permit.
  const names = checked.objects.map((o) => o.objectName);
  const unpermitted = checkNamespacePermit(policy, req.podNamespace, namespace?.metadata?.annotations, names);
  return { pod, spc, provider, ...checked, unpermitted };
}

/** An SPC of an external provider: a provider name that can only be a socket of the provider folders. */
function checkExternal(
  req: PublishRequest,
  spc: SecretProviderClass,
  pod: k8s.V1Pod,
): Pick<VolumePlan, 'objects' | 'fingerprint' | 'usePodIdentity'> {
  const ref = `${req.podNamespace}/${req.spcName}`;
  if (typeof spc.spec?.provider !== 'string' || spc.spec.provider === '') {
    throw new InvalidSpcError(`SecretProviderClass ${ref}: spec.provider is required, e.g. "${BUILTIN_PROVIDER}"`);
  }
  checkProviderName(ref, spc.spec.provider);
  const attributes = pod.spec?.volumes?.find((v) => v.name === req.volumeName)?.csi?.volumeAttributes;
  const fingerprint = fingerprintOf([
    req.podUid,
    spc.spec.provider,
    Object.entries(spc.spec.parameters ?? {}).sort(),
    spc.spec.secretObjects ?? null,
    Object.entries(attributes ?? {}).sort(),
    Object.entries(req.secrets).sort(),
    pod.spec?.securityContext?.fsGroup ?? null,
  ]);
  return { objects: [], fingerprint, usePodIdentity: false };
}

/**
 * The pod runs on this node as that ServiceAccount, and its spec has the CSI volume
 * `req.volumeName` of this driver naming the SPC: so the target path, the SPC and the
 * identity in the request all belong to that pod.
 */
export function checkPodVolume(req: PublishRequest, pod: k8s.V1Pod, nodeName: string): void {
  const who = `Pod ${req.podNamespace}/${req.podName}`;
  if (pod.spec?.nodeName !== nodeName) {
    throw new InvalidRequestError(
      `${who} runs on node ${JSON.stringify(pod.spec?.nodeName ?? '')}, not on this node ${nodeName}`,
    );
  }
  const sa = pod.spec?.serviceAccountName || 'default';
  if (sa !== req.serviceAccount) {
    throw new InvalidRequestError(`${who} runs as ServiceAccount ${sa}, not ${req.serviceAccount} as the request says`);
  }
  const volume = pod.spec?.volumes?.find((v) => v.name === req.volumeName);
  if (volume?.csi?.driver !== DRIVER_NAME) {
    throw new InvalidRequestError(
      `${who} has no csi volume "${req.volumeName}" of driver ${DRIVER_NAME}, so its target path is not one this driver publishes`,
    );
  }
  // kubelet passes a pod's own volumeAttributes on, and adds its keys only where it has them
  // (tokens only with tokenRequests): a pod may not pose as kubelet.
  const forged = Object.keys(volume.csi.volumeAttributes ?? {}).find((k) => k.startsWith(KUBELET_ATTRIBUTE_PREFIX));
  if (forged) {
    throw new InvalidRequestError(
      `${who} volume "${req.volumeName}" sets volumeAttributes["${forged}"], which only kubelet sets; remove it from the pod's spec`,
    );
  }
  const named = volume.csi.volumeAttributes?.secretProviderClass;
  if (named !== req.spcName) {
    throw new InvalidRequestError(
      `${who} volume "${req.volumeName}" names SecretProviderClass ${JSON.stringify(named ?? '')}, not ${JSON.stringify(req.spcName)} as the request says`,
    );
  }
}

/**
 * The SPC's objects, parsed once per SPC object: the view hands out the same object until
 * the SPC changes, and a burst of mounts of one SPC would otherwise parse its YAML each time.
 */
const parsed = new WeakMap<SecretProviderClass, readonly SecretObject[]>();
function parsedObjects(ref: string, spc: SecretProviderClass): SecretObject[] {
  let objects = parsed.get(spc);
  if (!objects) {
    objects = Object.freeze(parseSecretObjects(ref, spc.spec.parameters?.objects));
    parsed.set(spc, objects);
  }
  return objects as SecretObject[];
}

/** The checks of a publish that need no cluster: also what `cce-secrets-manager mount` runs. */
export function checkVolume(
  req: PublishRequest,
  spc: SecretProviderClass,
  saAnnotations: Record<string, string> | undefined,
  fsGroup?: number,
): Pick<VolumePlan, 'objects' | 'fingerprint' | 'usePodIdentity'> {
  const ref = `${req.podNamespace}/${req.spcName}`;
  const { objects, usePodIdentity } = checkCsmsSpc(
    ref,
    spc,
    `${req.podNamespace}/${req.serviceAccount}`,
    saAnnotations,
  );
  const fingerprint = fingerprintOf([
    req.podUid,
    spc.spec.parameters?.objects,
    usePodIdentity,
    spc.spec.secretObjects ?? null,
    saAnnotations?.[ALLOW_LIST_ANNOTATION],
    Object.entries(req.secrets).sort(),
    fsGroup ?? null,
  ]);
  return { objects, fingerprint, usePodIdentity };
}

/**
 * What the built-in provider needs of SPC `ref` for a workload running as ServiceAccount
 * `serviceAccount` (namespace/name): its objects and whether it reads with pod identity, once
 * the ServiceAccount's allow-list consents. A mount and a SecretSync both pass here.
 */
export function checkCsmsSpc(
  ref: string,
  spc: SecretProviderClass,
  serviceAccount: string,
  saAnnotations: Record<string, string> | undefined,
): { objects: SecretObject[]; usePodIdentity: boolean } {
  if (spc.spec?.provider !== BUILTIN_PROVIDER) {
    throw new PreconditionError(
      `SecretProviderClass ${ref}: spec.provider is "${spc.spec?.provider}"; this driver serves provider "${BUILTIN_PROVIDER}" only`,
    );
  }
  const objects = parsedObjects(ref, spc);
  const usePodIdentity = parseUsePodIdentity(ref, spc.spec.parameters?.usePodIdentity);
  checkAllowList(
    serviceAccount,
    saAnnotations,
    objects.map((o) => o.objectName),
  );
  return { objects, usePodIdentity };
}

/** VolumePlan.fingerprint: a hash of everything but the store's values that shapes the volume. */
function fingerprintOf(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}
