// What an SPC's secretObjects make of a volume's files: the Kubernetes Secrets to sync,
// checked (names a file of the mount, no type Kubernetes acts on) and, for
// kubernetes.io/tls, a PEM bundle split into key and certificates. Shared by the
// reconciler's Secret sync and the `mount` command.
import type * as k8s from '@kubernetes/client-node';
import { InvalidSpcError } from '../errors.js';
import { MANAGED_LABEL, OWNER_SPC_ANNOTATION, type SecretProviderClass, type SyncedSecretSpec } from './types.js';

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
  namespace: string,
  spc: SecretProviderClass,
  files: ReadonlyMap<string, Buffer>,
  spec: SyncedSecretSpec,
  index: number,
): k8s.V1Secret {
  const type = spec.type || 'Opaque';
  const where = `SecretProviderClass ${namespace}/${spc.metadata.name}: secretObjects[${index}] (Secret "${spec.secretName}")`;
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
      namespace,
      labels: { ...spec.labels, [MANAGED_LABEL]: 'true' },
      annotations: { ...spec.annotations, [OWNER_SPC_ANNOTATION]: `${namespace}/${spc.metadata.name}` },
    },
    type,
    data,
  };
}
