// Validates kubelet's NodePublishVolume / NodeUnpublishVolume requests into plain
// values; every refusal names the field and how to fix it.
import { isAbsolute } from 'node:path';
import { InvalidRequestError } from '../errors.js';

export const CTX_SPC = 'secretProviderClass';
export const CTX_POD_NAME = 'csi.storage.k8s.io/pod.name';
export const CTX_POD_NAMESPACE = 'csi.storage.k8s.io/pod.namespace';
export const CTX_POD_UID = 'csi.storage.k8s.io/pod.uid';
export const CTX_SERVICE_ACCOUNT = 'csi.storage.k8s.io/serviceAccount.name';

export interface PublishRequest {
  volumeId: string;
  targetPath: string;
  spcName: string;
  podName: string;
  podNamespace: string;
  podUid: string;
  serviceAccount: string;
  /** nodePublishSecretRef data; never logged. */
  secrets: Record<string, string>;
}

export interface RawPublishRequest {
  volume_id?: string;
  target_path?: string;
  volume_capability?: unknown;
  readonly?: boolean;
  secrets?: Record<string, string>;
  volume_context?: Record<string, string>;
}

function checkTarget(target: string | undefined, rpc: string): string {
  if (!target) throw new InvalidRequestError(`${rpc}: target_path is required`);
  if (!isAbsolute(target) || target.split('/').includes('..')) {
    throw new InvalidRequestError(`${rpc}: target_path "${target}" must be an absolute path without ".." segments`);
  }
  return target.replace(/\/+$/, '');
}

export function parsePublishRequest(req: RawPublishRequest): PublishRequest {
  const rpc = 'NodePublishVolume';
  if (!req.volume_id) throw new InvalidRequestError(`${rpc}: volume_id is required`);
  const targetPath = checkTarget(req.target_path, rpc);
  if (!req.volume_capability) throw new InvalidRequestError(`${rpc}: volume_capability is required`);
  if (req.readonly !== true) {
    throw new InvalidRequestError(`${rpc}: readonly must be true; set readOnly: true on the pod's csi volume (secrets-store volumes are read-only)`);
  }
  const ctx = req.volume_context ?? {};
  const need = (key: string, fix: string) => {
    const v = ctx[key];
    if (!v) throw new InvalidRequestError(`${rpc}: volume_context["${key}"] is required; ${fix}`);
    return v;
  };
  const podInfo = 'set podInfoOnMount: true on the CSIDriver secrets-store.csi.k8s.io';
  return {
    volumeId: req.volume_id,
    targetPath,
    spcName: need(CTX_SPC, 'set volumeAttributes.secretProviderClass on the pod\'s csi volume'),
    podName: need(CTX_POD_NAME, podInfo),
    podNamespace: need(CTX_POD_NAMESPACE, podInfo),
    podUid: need(CTX_POD_UID, podInfo),
    serviceAccount: need(CTX_SERVICE_ACCOUNT, podInfo),
    secrets: req.secrets ?? {},
  };
}

export function parseUnpublishRequest(req: { volume_id?: string; target_path?: string }): { volumeId: string; targetPath: string } {
  if (!req.volume_id) throw new InvalidRequestError('NodeUnpublishVolume: volume_id is required');
  return { volumeId: req.volume_id, targetPath: checkTarget(req.target_path, 'NodeUnpublishVolume') };
}
