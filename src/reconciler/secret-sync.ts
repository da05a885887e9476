// Kubernetes Secrets declared in an SPC's secretObjects, built from the volume's
// files. Each pod using the Secret adds its ownerReference (merged, never replaced),
// so the garbage collector deletes the Secret only after the last such pod is gone.
import type * as k8s from '@kubernetes/client-node';
import { ApiServerError, InvalidSpcError, PreconditionError } from '../errors.js';
import { desiredSecret, mergeSyncedSecret, SecretSyncConflictError } from '../crds/secret-objects.js';
import type { SyncedSecretSpec } from '../crds/types.js';
import type { PublishedContent } from '../driver/publisher-deps.js';
import { apiErrorText, apiStatus } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { Logger } from '../log.js';

export class SecretSync {
  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly log: Logger,
    private readonly events?: EventRecorder,
  ) {}

  async sync(content: PublishedContent): Promise<void> {
    const list = content.spc.spec.secretObjects ?? [];
    for (const [i, spec] of list.entries()) await this.syncOne(content, spec, i);
  }

  private async syncOne(content: PublishedContent, spec: SyncedSecretSpec, index: number): Promise<void> {
    const want = desiredSecret(content.request.podNamespace, content.spc, content.files, spec, index);
    const namespace = content.request.podNamespace;
    const name = spec.secretName;
    const owner: k8s.V1OwnerReference = {
      apiVersion: 'v1',
      kind: 'Pod',
      name: content.pod.metadata!.name!,
      uid: content.pod.metadata!.uid!,
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const live = await this.read(namespace, name);
        if (!live) {
          await this.core.createNamespacedSecret({
            namespace,
            body: { ...want, metadata: { ...want.metadata, ownerReferences: [owner] } },
          });
          this.log.info('Created synced Secret', { secret: `${namespace}/${name}` });
          return;
        }
        const next = mergeSyncedSecret(live, want, owner);
        if (!next) return;
        await this.core.replaceNamespacedSecret({ name, namespace, body: next });
        this.log.info('Updated synced Secret', { secret: `${namespace}/${name}` });
        return;
      } catch (err) {
        // Another pod's sync won the race: read again and merge on top of it.
        if (apiStatus(err) === 409 && attempt < 5) continue;
        if (err instanceof SecretSyncConflictError) {
          const pod = content.pod.metadata!;
          this.events?.emit(
            { name: pod.name!, namespace, uid: pod.uid! },
            'Warning',
            'SecretSyncConflict',
            err.message,
          );
        }
        if (err instanceof InvalidSpcError || err instanceof PreconditionError) throw err;
        throw new ApiServerError(`syncing Secret ${namespace}/${name} failed: ${apiErrorText(err)}`, { cause: err });
      }
    }
  }

  private async read(namespace: string, name: string): Promise<k8s.V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ name, namespace });
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }
}
