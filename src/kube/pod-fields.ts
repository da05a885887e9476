// What the driver keeps of each pod of its node: the fields a publish, a take-over and a
// Secret's owner reference read, and nothing else. A pod's annotations, labels, containers
// and status, which its namespace's users may make large, never stay in memory; nor do
// large volumeAttributes (an external provider's), for which the pod is read again on use.
import type * as k8s from '@kubernetes/client-node';
import { CTX_SPC, DRIVER_NAME } from '../crds/types.js';

/** Above this, a pod's volumeAttributes are not kept (summed over its volumes of this driver). */
const KEPT_ATTRIBUTE_BYTES = 16 * 1024;

const partial = new WeakSet<k8s.V1Pod>();

/** Whether `pod` was kept without some of its volumeAttributes, so that a publish must read it whole. */
export function isPartial(pod: k8s.V1Pod): boolean {
  return partial.has(pod);
}

export function podFields(pod: k8s.V1Pod): k8s.V1Pod {
  const m = pod.metadata ?? {};
  const spec = pod.spec;
  const fsGroup = spec?.securityContext?.fsGroup;
  // Only this driver's volumes: the rest of a pod's volumes never name one of ours.
  const ours = (spec?.volumes ?? []).filter((v) => v.csi?.driver === DRIVER_NAME);
  const attributeBytes = ours.reduce((n, v) => n + JSON.stringify(v.csi?.volumeAttributes ?? {}).length, 0);
  const large = attributeBytes > KEPT_ATTRIBUTE_BYTES;
  const kept: k8s.V1Pod = {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      creationTimestamp: m.creationTimestamp,
      deletionTimestamp: m.deletionTimestamp,
    },
    spec: {
      nodeName: spec?.nodeName,
      serviceAccountName: spec?.serviceAccountName,
      ...(fsGroup === undefined ? {} : { securityContext: { fsGroup } }),
      volumes: ours.map((v) => ({ name: v.name, csi: large ? withSpcOnly(v.csi!) : v.csi })),
      containers: [],
    },
  };
  if (large) partial.add(kept);
  return kept;
}

function withSpcOnly(csi: k8s.V1CSIVolumeSource): k8s.V1CSIVolumeSource {
  const spc = csi.volumeAttributes?.[CTX_SPC];
  return { ...csi, volumeAttributes: spc === undefined ? {} : { [CTX_SPC]: spc } };
}
