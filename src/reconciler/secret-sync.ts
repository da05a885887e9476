// Kubernetes Secrets declared in an SPC's secretObjects, built from the volume's
// files. Each pod using the Secret adds its ownerReference (merged, never replaced),
// so the garbage collector deletes the Secret only after the last such pod is gone.
import type * as k8s from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { ApiServerError, InvalidSpcError, PreconditionError } from '../errors.js';
import { desiredSecret } from '../crds/secret-objects.js';
import { MANAGED_LABEL, OWNER_SPC_ANNOTATION, type SyncedSecretSpec } from '../crds/types.js';
import type { PublishedContent } from '../driver/publisher.js';
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
        const next = this.merge(live, want, owner, namespace, content);
        if (!next) return;
        await this.core.replaceNamespacedSecret({ name, namespace, body: next });
        this.log.info('Updated synced Secret', { secret: `${namespace}/${name}` });
        return;
      } catch (err) {
        // Another pod's sync won the race: read again and merge on top of it.
        if (apiStatus(err) === 409 && attempt < 5) continue;
        if (err instanceof InvalidSpcError || err instanceof PreconditionError) throw err;
        throw new ApiServerError(`syncing Secret ${namespace}/${name} failed: ${apiErrorText(err)}`, { cause: err });
      }
    }
  }

  /** The object to write, or undefined when the live Secret already is what we want. */
  private merge(
    live: k8s.V1Secret,
    want: k8s.V1Secret,
    owner: k8s.V1OwnerReference,
    namespace: string,
    content: PublishedContent,
  ): k8s.V1Secret | undefined {
    const name = want.metadata!.name!;
    if (live.metadata?.labels?.[MANAGED_LABEL] !== 'true') {
      throw new PreconditionError(
        `Secret ${namespace}/${name} already exists and is not managed by the driver (no label ${MANAGED_LABEL}=true); it is never overwritten: choose another secretObjects[].secretName or delete that Secret`,
      );
    }
    // One SPC owns a Secret: a second one declaring the same name is refused, not last-writer-wins.
    const ownerSpc = live.metadata?.annotations?.[OWNER_SPC_ANNOTATION];
    const mine = want.metadata!.annotations![OWNER_SPC_ANNOTATION];
    if (ownerSpc !== undefined && ownerSpc !== mine) {
      const message = `Secret ${namespace}/${name} is synced from SecretProviderClass ${ownerSpc}; SecretProviderClass ${mine} declares it too and is refused: choose another secretObjects[].secretName`;
      const pod = content.pod.metadata!;
      this.events?.emit({ name: pod.name!, namespace, uid: pod.uid! }, 'Warning', 'SecretSyncConflict', message);
      throw new PreconditionError(message);
    }
    if ((live.type ?? 'Opaque') !== want.type) {
      throw new PreconditionError(
        `Secret ${namespace}/${name} has type ${live.type}, but the SPC asks for ${want.type}; a Secret's type cannot change: delete the Secret to let the driver recreate it`,
      );
    }
    const owners = live.metadata?.ownerReferences ?? [];
    const ownerReferences = owners.some((o) => o.uid === owner.uid) ? owners : [...owners, owner];
    const labels = { ...live.metadata?.labels, ...want.metadata!.labels };
    const annotations = { ...live.metadata?.annotations, ...want.metadata!.annotations };
    const same =
      isDeepStrictEqual(live.data ?? {}, want.data) &&
      ownerReferences === owners &&
      isDeepStrictEqual(labels, live.metadata?.labels ?? {}) &&
      isDeepStrictEqual(annotations ?? {}, live.metadata?.annotations ?? {});
    if (same) return undefined;
    return { ...live, data: want.data, metadata: { ...live.metadata, labels, annotations, ownerReferences } };
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
