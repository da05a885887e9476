// Kubernetes Secrets declared in an SPC's secretObjects, built from the volume's
// files. Each pod using the Secret adds its ownerReference (merged, never replaced),
// so the garbage collector deletes the Secret only after the last such pod is gone.
import type * as k8s from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { ApiServerError, InvalidSpcError, PreconditionError } from '../errors.js';
import { MANAGED_LABEL, OWNER_SPC_ANNOTATION, type SecretProviderClass, type SyncedSecretSpec } from '../crds/types.js';
import type { FileSet } from '../driver/atomic-writer.js';
import type { PublishedContent } from '../driver/publisher.js';
import type { PublishRequest } from '../driver/volume-request.js';
import { apiErrorText, apiStatus } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { Logger } from '../log.js';

/**
 * Types that make Kubernetes itself act on the Secret: the token controller fills a
 * service-account-token Secret with a token of the ServiceAccount its annotation names,
 * and bootstrap tokens let machines join the cluster. An SPC may not create those.
 */
const REFUSED_TYPES = new Set(['kubernetes.io/service-account-token', 'bootstrap.kubernetes.io/token']);

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----\n?/g;

/** For kubernetes.io/tls: a PEM bundle named for tls.key keeps its key, for tls.crt its certificates. */
export function tlsPart(key: string, value: Buffer): Buffer {
  const text = value.toString('utf8');
  const blocks = [...text.matchAll(PEM_BLOCK)].map((m) => ({
    kind: m[1],
    pem: m[0].endsWith('\n') ? m[0] : `${m[0]}\n`,
  }));
  const isKey = (k: string) => k.endsWith('PRIVATE KEY');
  if (!blocks.some((b) => isKey(b.kind)) || !blocks.some((b) => b.kind === 'CERTIFICATE')) return value;
  if (key === 'tls.key')
    return Buffer.from(
      blocks
        .filter((b) => isKey(b.kind))
        .map((b) => b.pem)
        .join(''),
    );
  if (key === 'tls.crt')
    return Buffer.from(
      blocks
        .filter((b) => b.kind === 'CERTIFICATE')
        .map((b) => b.pem)
        .join(''),
    );
  return value;
}

/** The Secret that secretObjects[index] describes, built from the volume's files. */
export function desiredSecret(
  req: PublishRequest,
  spc: SecretProviderClass,
  files: FileSet,
  spec: SyncedSecretSpec,
  index: number,
): k8s.V1Secret {
  const type = spec.type || 'Opaque';
  const where = `SecretProviderClass ${req.podNamespace}/${spc.metadata.name}: secretObjects[${index}] (Secret "${spec.secretName}")`;
  if (REFUSED_TYPES.has(type)) {
    throw new InvalidSpcError(`${where} has type ${type}, which Kubernetes acts on; use Opaque or another data type`);
  }
  const data: Record<string, string> = {};
  for (const [j, d] of spec.data.entries()) {
    const file = files.get(d.objectName);
    if (!file) {
      throw new InvalidSpcError(
        `${where} data[${j}].objectName "${d.objectName}" is not a file of the volume; use one of: ${[...files.keys()].join(', ')}`,
      );
    }
    data[d.key] = (type === 'kubernetes.io/tls' ? tlsPart(d.key, file) : file).toString('base64');
  }
  return {
    metadata: {
      name: spec.secretName,
      namespace: req.podNamespace,
      labels: { ...spec.labels, [MANAGED_LABEL]: 'true' },
      annotations: { ...spec.annotations, [OWNER_SPC_ANNOTATION]: `${req.podNamespace}/${spc.metadata.name}` },
    },
    type,
    data,
  };
}

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
    const want = desiredSecret(content.request, content.spc, content.files, spec, index);
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
        throw new ApiServerError(`syncing Secret ${namespace}/${name} failed: ${apiErrorText(err)}`);
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
