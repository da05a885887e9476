// After a restart the driver knows nothing in memory: it rebuilds its view of the
// volumes on this node from their SPCPS and the live mounts, so rotation and SPC
// edits carry on for pods that were started by the previous process.
import type * as k8s from '@kubernetes/client-node';
import { isMountPoint } from '../driver/mounter.js';
import type { Publisher } from '../driver/publisher.js';
import type { KubeView } from '../kube/view.js';
import { apiErrorText } from '../kube/client.js';
import type { Logger } from '../log.js';

/** `.../pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount` → volume name. */
export function volumeNameOf(targetPath: string): string | undefined {
  return /\/volumes\/kubernetes\.io~csi\/([^/]+)\/mount$/.exec(targetPath)?.[1];
}

export async function recoverVolumes(kube: KubeView, publisher: Publisher, log: Logger): Promise<number> {
  let adopted = 0;
  for (const spcps of kube.spcps.list()) {
    const { status } = spcps;
    const namespace = spcps.metadata.namespace!;
    if (!status?.targetPath || publisher.volumes.get(status.targetPath) || !(await isMountPoint(status.targetPath))) continue;
    const pod = kube.pods.get(status.podName, namespace);
    const uid = spcps.metadata.ownerReferences?.find((o) => o.kind === 'Pod')?.uid;
    if (!pod || pod.metadata?.uid !== uid) continue; // the pod is gone: kubelet will unpublish
    try {
      const secrets = await nodePublishSecrets(kube, pod, status.targetPath);
      await publisher.adopt({
        request: {
          volumeId: '', targetPath: status.targetPath, spcName: status.secretProviderClassName,
          podName: status.podName, podNamespace: namespace, podUid: uid!,
          serviceAccount: pod.spec?.serviceAccountName ?? 'default', secrets,
        },
        spcpsName: spcps.metadata.name,
        fingerprint: '',
        versions: status.objects ?? [],
        digests: {},
      });
      adopted++;
    } catch (err) {
      log.warn('Could not take over a mounted volume; it is refreshed on its next publish', { target: status.targetPath, pod: `${namespace}/${status.podName}`, error: apiErrorText(err) });
    }
  }
  return adopted;
}

/** The volume's nodePublishSecretRef data, as kubelet would have passed it. */
async function nodePublishSecrets(kube: KubeView, pod: k8s.V1Pod, targetPath: string): Promise<Record<string, string>> {
  const volume = pod.spec?.volumes?.find((v) => v.name === volumeNameOf(targetPath));
  const ref = volume?.csi?.nodePublishSecretRef?.name;
  if (!ref) return {};
  const secret = await kube.core.readNamespacedSecret({ name: ref, namespace: pod.metadata!.namespace! });
  return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}
