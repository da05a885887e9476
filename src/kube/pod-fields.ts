// What the driver keeps of each pod of its node: the fields a publish, a take-over and a
// Secret's owner reference read, and nothing else. A pod's annotations, labels, containers
// and status, which its namespace's users may make large, never stay in memory.
import type * as k8s from '@kubernetes/client-node';
import { DRIVER_NAME } from '../crds/types.js';

export function podFields(pod: k8s.V1Pod): k8s.V1Pod {
  const m = pod.metadata ?? {};
  const spec = pod.spec;
  const fsGroup = spec?.securityContext?.fsGroup;
  return {
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
      // Only this driver's volumes: the rest of a pod's volumes never name one of ours.
      volumes: (spec?.volumes ?? [])
        .filter((v) => v.csi?.driver === DRIVER_NAME)
        .map((v) => ({ name: v.name, csi: v.csi })),
      containers: [],
    },
  };
}
