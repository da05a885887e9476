// What an SPC's secretObjects make of a volume's files: the Kubernetes Secrets to sync,
// checked (names a file of the mount, no type Kubernetes acts on) and, for
// kubernetes.io/tls, a PEM bundle split into key and certificates. Shared by the
// reconciler's Secret sync and the `mount` command.
import type * as k8s from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { InvalidSpcError, PreconditionError } from '../errors.js';
import { MANAGED_LABEL, OWNER_SPC_ANNOTATION, type SecretProviderClass, type SyncedSecretSpec } from './types.js';

/**
 * Types that make Kubernetes itself act on the Secret: the token controller fills a
 * service-account-token Secret with a token of the ServiceAccount its annotation names,
 * and bootstrap tokens let machines join the cluster. An SPC may not create those.
 */
export const REFUSED_SECRET_TYPES: ReadonlySet<string> = new Set([
  'kubernetes.io/service-account-token',
  'bootstrap.kubernetes.io/token',
]);

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
  namespace: string,
  spc: SecretProviderClass,
  files: ReadonlyMap<string, Buffer>,
  spec: SyncedSecretSpec,
  index: number,
): k8s.V1Secret {
  const type = spec.type || 'Opaque';
  const where = `SecretProviderClass ${namespace}/${spc.metadata.name}: secretObjects[${index}] (Secret "${spec.secretName}")`;
  if (REFUSED_SECRET_TYPES.has(type)) {
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
      namespace,
      labels: { ...spec.labels, [MANAGED_LABEL]: 'true' },
      annotations: { ...spec.annotations, [OWNER_SPC_ANNOTATION]: `${namespace}/${spc.metadata.name}` },
    },
    type,
    data,
  };
}

/** Another SPC already syncs the Secret: the one that declares it second is refused. */
export class SecretSyncConflictError extends PreconditionError {}

/**
 * What to write over the live Secret so that it holds `want` and lists `owner` (a pod; owners
 * are merged, never replaced), or undefined when it already does. Refuses a Secret the driver
 * does not manage, one another SPC syncs, and a change of type.
 */
export function mergeSyncedSecret(
  live: k8s.V1Secret,
  want: k8s.V1Secret,
  owner: k8s.V1OwnerReference,
): k8s.V1Secret | undefined {
  const secret = `Secret ${want.metadata!.namespace}/${want.metadata!.name}`;
  if (live.metadata?.labels?.[MANAGED_LABEL] !== 'true') {
    throw new PreconditionError(
      `${secret} already exists and is not managed by the driver (no label ${MANAGED_LABEL}=true); it is never overwritten: choose another secretObjects[].secretName or delete that Secret`,
    );
  }
  const ownerSpc = live.metadata?.annotations?.[OWNER_SPC_ANNOTATION];
  const mine = want.metadata!.annotations![OWNER_SPC_ANNOTATION];
  if (ownerSpc !== undefined && ownerSpc !== mine) {
    throw new SecretSyncConflictError(
      `${secret} is synced from SecretProviderClass ${ownerSpc}; SecretProviderClass ${mine} declares it too and is refused: choose another secretObjects[].secretName`,
    );
  }
  if ((live.type ?? 'Opaque') !== want.type) {
    throw new PreconditionError(
      `${secret} has type ${live.type}, but the SPC asks for ${want.type}; a Secret's type cannot change: delete the Secret to let the driver recreate it`,
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
    isDeepStrictEqual(annotations, live.metadata?.annotations ?? {});
  if (same) return undefined;
  return { ...live, data: want.data, metadata: { ...live.metadata, labels, annotations, ownerReferences } };
}
