// What a SecretSync makes of its SPC's content: the Secret to write (each data entry a file
// of the content, no type Kubernetes fills with a token, none of the keys that mark who owns
// a Secret), the hash its status records instead of the values, and its conditions, with
// upstream's types and reasons plus a Ready condition of ours.
import { createHmac } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { InvalidSpcError } from '../errors.js';
import { REFUSED_SECRET_TYPES, tlsPart } from './secret-objects.js';
import {
  MANAGED_LABEL,
  OWNER_SPC_ANNOTATION,
  SYNC_GROUP,
  SYNC_LABEL,
  SYNC_VERSION,
  type Condition,
  type SecretSync,
} from './types.js';

export const SECRETSYNC_API_VERSION = `${SYNC_GROUP}/${SYNC_VERSION}`;

/**
 * The most of a SecretSync's spec (its JSON) the controller keeps and syncs: a Secret cannot
 * hold more than 1 MiB anyway, and its memory must not grow with what a namespace user pads a
 * spec with. A larger spec is refused (the cache keeps only its size: `specBytes`).
 */
export const MAX_SPEC_BYTES = 128 * 1024;

/** The SecretSync itself asks for something no Secret of it may be. */
export class InvalidSecretSyncError extends InvalidSpcError {}

/** Keys that say who owns a Secret: set by the controller (or the driver), never by a SecretSync. */
function reservedKey(key: string): boolean {
  return key.startsWith(SYNC_LABEL) || key === MANAGED_LABEL || key === OWNER_SPC_ANNOTATION;
}

/** The ownerReference that makes the SecretSync the Secret's owner (and its garbage collector's). */
export function ownerOf(ss: SecretSync): k8s.V1OwnerReference {
  return {
    apiVersion: SECRETSYNC_API_VERSION,
    kind: 'SecretSync',
    name: ss.metadata.name,
    uid: ss.metadata.uid!,
    controller: true,
  };
}

export function refOf(ss: SecretSync): string {
  return `SecretSync ${ss.metadata.namespace}/${ss.metadata.name}`;
}

/**
 * What a SecretSync may not ask for, whatever its SPC holds: also what the webhook refuses at
 * `kubectl apply`. Returns its Secret's type.
 */
export function checkSecretSyncSpec(ss: SecretSync): string {
  const where = refOf(ss);
  if (!ss.spec) throw new InvalidSecretSyncError(`${where}: spec is missing`);
  // The cache keeps only the size of a spec over the limit; the webhook sees the whole spec.
  const bytes = (ss.spec as { specBytes?: number }).specBytes ?? Buffer.byteLength(JSON.stringify(ss.spec));
  if (bytes > MAX_SPEC_BYTES) {
    throw new InvalidSecretSyncError(
      `${where}: spec is ${bytes} bytes, more than the ${MAX_SPEC_BYTES} the controller reads; make spec.secretObject's labels and annotations smaller`,
    );
  }
  const object = ss.spec.secretObject;
  const type = object?.type || 'Opaque';
  if (REFUSED_SECRET_TYPES.has(type)) {
    throw new InvalidSecretSyncError(
      `${where}: spec.secretObject.type ${type} is a type Kubernetes fills with a token; use Opaque or another data type`,
    );
  }
  if (!object?.data?.length) {
    throw new InvalidSecretSyncError(`${where}: spec.secretObject.data is empty; list {sourcePath, targetKey} entries`);
  }
  for (const [field, map] of [
    ['labels', object.labels],
    ['annotations', object.annotations],
  ] as const) {
    const key = Object.keys(map ?? {}).find(reservedKey);
    if (key !== undefined) {
      throw new InvalidSecretSyncError(
        `${where}: spec.secretObject.${field} sets "${key}", which marks who owns a Secret and is the controller's; remove it`,
      );
    }
  }
  return type;
}

/** The Secret the SecretSync describes, built from its SPC's files: same name and namespace, owned by it. */
export function syncedSecretOf(ss: SecretSync, files: ReadonlyMap<string, Buffer>): k8s.V1Secret {
  const where = refOf(ss);
  const type = checkSecretSyncSpec(ss);
  const object = ss.spec.secretObject;
  const data: Record<string, string> = {};
  for (const [i, d] of object.data.entries()) {
    const file = files.get(d.sourcePath);
    if (!file) {
      throw new InvalidSecretSyncError(
        `${where}: spec.secretObject.data[${i}].sourcePath "${d.sourcePath}" is not a file of SecretProviderClass ${ss.metadata.namespace}/${ss.spec.secretProviderClassName}; use one of: ${[...files.keys()].join(', ')}`,
      );
    }
    data[d.targetKey] = (type === 'kubernetes.io/tls' ? tlsPart(d.targetKey, file) : file).toString('base64');
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: ss.metadata.name,
      namespace: ss.metadata.namespace,
      labels: { ...object.labels, [SYNC_LABEL]: '' },
      annotations: {
        ...object.annotations,
        [OWNER_SPC_ANNOTATION]: `${ss.metadata.namespace}/${ss.spec.secretProviderClassName}`,
      },
      ownerReferences: [ownerOf(ss)],
    },
    type,
    data,
  };
}

/**
 * The status's syncHash: an HMAC, under a key only the controller holds, of everything it
 * writes into the Secret and of forceSynchronization. Equal hashes mean nothing to write;
 * whoever reads the status learns nothing of the values, not even by guessing them.
 */
export function syncHash(key: Buffer, ss: SecretSync, secret: k8s.V1Secret): string {
  const sorted = (m: Record<string, string> | undefined) =>
    Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  const parts = [
    ss.metadata.uid,
    secret.type,
    sorted(secret.data),
    sorted(secret.metadata?.labels),
    sorted(secret.metadata?.annotations),
    ss.spec.forceSynchronization ?? '',
  ];
  return `v1:${createHmac('sha256', key).update(JSON.stringify(parts)).digest('hex')}`;
}

export const CREATED = 'SecretCreated';
export const UPDATED = 'SecretUpdated';
export const READY = 'Ready';

/** How one sync ended. `created`: this sync wrote the Secret for the first time. */
export type SyncOutcome = { ok: true; created: boolean } | { ok: false; reason: string; message: string };

/** The conditions after a sync: upstream's SecretCreated and SecretUpdated, and Ready. */
export function conditionsAfter(ss: SecretSync, outcome: SyncOutcome, now: Date): Condition[] {
  const previous = ss.status?.conditions ?? [];
  const generation = ss.metadata.generation;
  const at = now.toISOString().replace(/\.\d+Z$/, 'Z');
  const byType = new Map(previous.map((c) => [c.type, c]));
  const set = (type: string, status: Condition['status'], reason: string, message: string) => {
    const old = byType.get(type);
    const lastTransitionTime = old && old.status === status ? old.lastTransitionTime : at;
    byType.set(type, { type, status, reason, message, lastTransitionTime, observedGeneration: generation });
  };
  if (!byType.has(CREATED)) set(CREATED, 'Unknown', 'SyncStarting', '');
  if (!byType.has(UPDATED)) set(UPDATED, 'Unknown', 'NoUpdatesAttemptedYet', '');
  const name = `Secret ${ss.metadata.namespace}/${ss.metadata.name}`;
  if (outcome.ok) {
    if (outcome.created) set(CREATED, 'True', 'CreateSuccessful', 'Secret created successfully.');
    set(UPDATED, 'True', 'SecretUpToDate', 'Secret contains last observed values.');
    set(READY, 'True', 'Synced', `${name} holds the values of the last sync.`);
  } else {
    // Until a first sync has written the Secret, a failure is one of creating it.
    set(ss.status?.syncHash ? UPDATED : CREATED, 'False', outcome.reason, outcome.message);
    const kept = ss.status?.syncHash ? `; ${name} keeps the values of the last good sync` : '';
    set(READY, 'False', outcome.reason, `${outcome.message}${kept}`);
  }
  return [...byType.values()];
}

/** Whether the conditions already say what a successful sync would: then a sync with an unchanged hash writes nothing. */
export function upToDate(ss: SecretSync): boolean {
  const ready = ss.status?.conditions?.find((c) => c.type === READY);
  return ready?.status === 'True' && ready.observedGeneration === ss.metadata.generation;
}
