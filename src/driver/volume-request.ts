// Validates kubelet's NodePublishVolume / NodeUnpublishVolume requests into plain
// values; every refusal names the field and how to fix it.
import {
  CTX_POD_NAME,
  CTX_POD_NAMESPACE,
  CTX_POD_UID,
  CTX_SA_TOKENS,
  CTX_SERVICE_ACCOUNT,
  CTX_SPC,
} from '../crds/types.js';
import { parseServiceAccountTokens, type ServiceAccountToken } from '../crds/service-account-tokens.js';
import { InvalidRequestError } from '../errors.js';
import { parseTargetPath } from './target-path.js';

export interface PublishRequest {
  volumeId: string;
  targetPath: string;
  /** The pod's volume that `targetPath` is the mount folder of. */
  volumeName: string;
  spcName: string;
  podName: string;
  podNamespace: string;
  podUid: string;
  serviceAccount: string;
  /** nodePublishSecretRef data; never logged. */
  secrets: Record<string, string>;
  /** By audience, when the CSIDriver has tokenRequests; never logged. */
  serviceAccountTokens?: Record<string, ServiceAccountToken>;
}

export interface RawPublishRequest {
  volume_id?: string;
  target_path?: string;
  volume_capability?: unknown;
  readonly?: boolean;
  secrets?: Record<string, string>;
  volume_context?: Record<string, string>;
}

function required(target: string | undefined, rpc: string): string {
  if (!target) throw new InvalidRequestError(`${rpc}: target_path is required`);
  return target;
}

export function parsePublishRequest(req: RawPublishRequest, kubeletRoot: string): PublishRequest {
  const rpc = 'NodePublishVolume';
  if (!req.volume_id) throw new InvalidRequestError(`${rpc}: volume_id is required`);
  const targetPath = required(req.target_path, rpc);
  const path = parseTargetPath(kubeletRoot, targetPath, rpc);
  if (!req.volume_capability) throw new InvalidRequestError(`${rpc}: volume_capability is required`);
  if (req.readonly !== true) {
    throw new InvalidRequestError(
      `${rpc}: readonly must be true; set readOnly: true on the pod's csi volume (secrets-store volumes are read-only)`,
    );
  }
  const ctx = req.volume_context ?? {};
  const need = (key: string, fix: string) => {
    const v = ctx[key];
    if (!v) throw new InvalidRequestError(`${rpc}: volume_context["${key}"] is required; ${fix}`);
    return v;
  };
  const podInfo = 'set podInfoOnMount: true on the CSIDriver secrets-store.csi.k8s.io';
  const podUid = need(CTX_POD_UID, podInfo);
  if (podUid !== path.podUid) {
    throw new InvalidRequestError(
      `${rpc}: target_path ${JSON.stringify(targetPath)} belongs to pod uid ${path.podUid}, not to ${podUid} named in volume_context["${CTX_POD_UID}"]`,
    );
  }
  return {
    volumeId: req.volume_id,
    targetPath,
    volumeName: path.volume,
    spcName: need(CTX_SPC, "set volumeAttributes.secretProviderClass on the pod's csi volume"),
    podName: need(CTX_POD_NAME, podInfo),
    podNamespace: need(CTX_POD_NAMESPACE, podInfo),
    podUid,
    serviceAccount: need(CTX_SERVICE_ACCOUNT, podInfo),
    secrets: req.secrets ?? {},
    serviceAccountTokens: parseServiceAccountTokens(`${rpc}: volume_context`, ctx[CTX_SA_TOKENS]),
  };
}

export interface UnpublishRequest {
  volumeId: string;
  targetPath: string;
  podUid: string;
}

export function parseUnpublishRequest(
  req: { volume_id?: string; target_path?: string },
  kubeletRoot: string,
): UnpublishRequest {
  const rpc = 'NodeUnpublishVolume';
  if (!req.volume_id) throw new InvalidRequestError(`${rpc}: volume_id is required`);
  const targetPath = required(req.target_path, rpc);
  return { volumeId: req.volume_id, targetPath, podUid: parseTargetPath(kubeletRoot, targetPath, rpc).podUid };
}
