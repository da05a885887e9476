// After a restart the driver knows nothing in memory: it rebuilds its view of the
// volumes on this node so rotation and SPC edits carry on for pods that the previous
// process mounted. An SPCPS is user-writable, so it is only a hint: a volume is taken
// over only if its path is a CSI volume folder of that pod on this node, the pod's spec
// names that SPC, and a tmpfs this driver made is mounted there (SECURITY.md).
import type * as k8s from '@kubernetes/client-node';
import type { OwnMount } from '../driver/mounter.js';
import type { Publisher } from '../driver/publisher.js';
import { parseTargetPath, realFoldersUpTo } from '../driver/target-path.js';
import { checkPodVolume } from '../driver/volume-plan.js';
import type { PublishRequest } from '../driver/volume-request.js';
import { errorMessage } from '../errors.js';
import type { EventRecorder } from '../kube/events.js';
import type { KubeView, SpcpsObject } from '../kube/view.js';
import type { Logger } from '../log.js';

export interface RecoveryDeps {
  kube: Pick<KubeView, 'pods' | 'nodeName' | 'spcpsOnNode' | 'secretData'>;
  publisher: Pick<Publisher, 'adopt' | 'volumes'>;
  events: Pick<EventRecorder, 'emit'>;
  log: Logger;
  kubeletRoot: string;
  /** The tmpfs mounts this driver made (the mounter's ownMounts()). */
  ownMounts: () => ReadonlyMap<string, OwnMount>;
}

export async function recoverVolumes(deps: RecoveryDeps): Promise<number> {
  const { kube, publisher, log } = deps;
  const mounts = deps.ownMounts();
  let adopted = 0;
  for await (const spcps of kube.spcpsOnNode()) {
    const { status } = spcps;
    const namespace = spcps.metadata.namespace!;
    if (!status?.targetPath || publisher.volumes.get(status.targetPath)) continue;
    const pod = kube.pods.get(status.podName, namespace);
    const uid = spcps.metadata.ownerReferences?.find((o) => o.kind === 'Pod')?.uid;
    if (!pod || !uid || pod.metadata?.uid !== uid) continue; // the pod is gone: kubelet unpublishes, the garbage collector cleans up
    try {
      const { request, mount } = await requestOf(deps, spcps, pod, mounts);
      await publisher.adopt({
        request,
        spcpsName: spcps.metadata.name,
        fingerprint: '',
        versions: status.objects ?? [],
        digests: {},
        sizeBytes: mount.sizeBytes,
      });
      adopted++;
    } catch (err) {
      const message = `SecretProviderClassPodStatus ${namespace}/${spcps.metadata.name} was not taken over: ${errorMessage(err)}`;
      log.warn('Volume not taken over after a restart; left alone', {
        spcps: `${namespace}/${spcps.metadata.name}`,
        error: errorMessage(err),
      });
      deps.events.emit(
        { name: pod.metadata.name!, namespace, uid },
        'Warning',
        'SecretProviderClassPodStatusIgnored',
        message,
      );
    }
  }
  return adopted;
}

/** The request kubelet made for this volume, rebuilt and checked as a publish would check it. */
async function requestOf(
  deps: RecoveryDeps,
  spcps: SpcpsObject,
  pod: k8s.V1Pod,
  mounts: ReadonlyMap<string, OwnMount>,
): Promise<{ request: PublishRequest; mount: OwnMount }> {
  const { status } = spcps;
  const path = parseTargetPath(deps.kubeletRoot, status.targetPath, 'take-over');
  if (path.podUid !== pod.metadata!.uid)
    throw new Error(`status.targetPath belongs to pod uid ${path.podUid}, not to pod ${status.podName}`);
  const request: PublishRequest = {
    volumeId: '',
    targetPath: status.targetPath,
    volumeName: path.volume,
    spcName: status.secretProviderClassName,
    podName: status.podName,
    podNamespace: spcps.metadata.namespace!,
    podUid: path.podUid,
    serviceAccount: pod.spec?.serviceAccountName || 'default',
    secrets: {},
  };
  checkPodVolume(request, pod, deps.kube.nodeName);
  const mount = realFoldersUpTo(deps.kubeletRoot, request.targetPath, 'take-over')
    ? mounts.get(request.targetPath)
    : undefined;
  if (!mount) throw new Error(`no tmpfs made by this driver is mounted at ${request.targetPath}`);
  request.secrets = await nodePublishSecrets(deps.kube, pod, path.volume);
  return { request, mount };
}

/** The volume's nodePublishSecretRef data, as kubelet would have passed it. */
async function nodePublishSecrets(
  kube: RecoveryDeps['kube'],
  pod: k8s.V1Pod,
  volumeName: string,
): Promise<Record<string, string>> {
  const ref = pod.spec?.volumes?.find((v) => v.name === volumeName)?.csi?.nodePublishSecretRef?.name;
  return ref ? kube.secretData(pod.metadata!.namespace!, ref) : {};
}
