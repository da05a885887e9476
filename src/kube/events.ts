// Kubernetes Events on the pod (or SecretSync) for mount, rotation and sync outcomes, at most
// one per object and reason (and, where a pod's volumes are told apart, volume) in each window, so a
// flapping store cannot flood the API server.
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { apiErrorText } from './client.js';

/** What an Event is about: a Pod unless `kind` (and `apiVersion`) say otherwise. */
export interface PodRef {
  name: string;
  namespace: string;
  uid: string;
  kind?: string;
  apiVersion?: string;
}

export class EventRecorder {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly log: Logger,
    /** Called for each event not sent because of the window. */
    private readonly onSuppressed: () => void = () => undefined,
    private readonly windowMs = 60_000,
    private readonly component = 'secrets-store-csi-driver',
  ) {}

  /** `about` tells apart events of one reason that each of a pod's volumes must get (its target path). */
  emit(pod: PodRef, type: 'Normal' | 'Warning', reason: string, message: string, about = ''): void {
    const key = `${pod.uid}/${reason}/${about}`;
    const now = Date.now();
    if (now - (this.last.get(key) ?? -Infinity) < this.windowMs) {
      this.onSuppressed();
      return;
    }
    this.last.set(key, now);
    if (this.last.size > 10_000) this.forgetOlderThan(now - this.windowMs);
    const time = new Date();
    this.core
      .createNamespacedEvent({
        namespace: pod.namespace,
        body: {
          metadata: { generateName: `${pod.name}.` },
          involvedObject: {
            ...{ apiVersion: pod.apiVersion ?? 'v1', kind: pod.kind ?? 'Pod' },
            ...{ name: pod.name, namespace: pod.namespace, uid: pod.uid },
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: this.component },
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
        },
      })
      .catch((err) => this.log.v(2).info('Recording an event failed', { reason, error: apiErrorText(err) }));
  }

  private forgetOlderThan(cutoff: number): void {
    for (const [k, t] of this.last) if (t < cutoff) this.last.delete(k);
  }
}
