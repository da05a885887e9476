// The SecretProviderClassPodStatus a mounted volume should have.
import { NODE_LABEL, type SecretProviderClassPodStatus, type SpcpsObjectVersion } from '../crds/types.js';
import { spcpsNames } from '../kube/spcps-writer.js';
import type { PublishRequest } from './volume-request.js';

export function desiredSpcps(
  req: PublishRequest,
  podUid: string,
  nodeName: string,
  versions: SpcpsObjectVersion[],
  name = spcpsNames(req.podName, req.podNamespace, req.spcName)[0],
): SecretProviderClassPodStatus {
  return {
    apiVersion: 'secrets-store.csi.x-k8s.io/v1',
    kind: 'SecretProviderClassPodStatus',
    metadata: {
      name,
      namespace: req.podNamespace,
      labels: { [NODE_LABEL]: nodeName },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: req.podName, uid: podUid }],
    },
    status: {
      podName: req.podName,
      secretProviderClassName: req.spcName,
      mounted: true,
      targetPath: req.targetPath,
      objects: versions,
    },
  };
}
