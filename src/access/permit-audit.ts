// Namespace policy audit: what enforce would refuse is mounted, and said where the cluster
// admin and the team look: a Warning Event on the pod and a log line, naming the secrets.
import type { EventRecorder, PodRef } from '../kube/events.js';
import type { Logger } from '../log.js';
import { auditMessage, type PermitDecision } from './namespace-permit.js';

/** The volume of a pod: its SPC (for the log) and its target path (one report each). */
export interface VolumeRef {
  spc: string;
  targetPath: string;
}

export type UnpermittedReport = (pod: PodRef, volume: VolumeRef, decision: PermitDecision) => void;

export function reportUnpermitted(events: Pick<EventRecorder, 'emit'>, log: Logger): UnpermittedReport {
  return (pod, volume, decision) => {
    log.warn('Mounted CSMS secrets that no Namespace permit covers (namespace policy audit; enforce refuses them)', {
      pod: `${pod.namespace}/${pod.name}`,
      spc: volume.spc,
      secrets: decision.denied.join(','),
    });
    events.emit(pod, 'Warning', 'SecretNotPermitted', auditMessage(decision), volume.targetPath);
  };
}
