// SecretSyncs as the tests write and read them: an upstream manifest, its create and read,
// and its Ready condition.
import { SECRETSYNC_PLURAL, SYNC_GROUP, SYNC_VERSION, type Condition } from '../../src/crds/types.js';
import { custom, eventually } from './cluster.js';

/** A SecretSync as the API server returns it: tests read any field of it. */
export type StoredSecretSync = Record<string, any>;

export const SECRETSYNCS = { group: SYNC_GROUP, version: SYNC_VERSION, plural: SECRETSYNC_PLURAL };

/** An upstream SecretSync manifest, as its docs write one. */
export function secretSyncManifest(name: string, spc: string, sa: string, secretObject: Record<string, unknown>) {
  return {
    apiVersion: `${SYNC_GROUP}/${SYNC_VERSION}`,
    kind: 'SecretSync',
    metadata: { name },
    spec: { serviceAccountName: sa, secretProviderClassName: spc, secretObject },
  };
}

export function createSecretSync(namespace: string, body: object): Promise<StoredSecretSync> {
  return custom.createNamespacedCustomObject({ ...SECRETSYNCS, namespace, body }) as Promise<StoredSecretSync>;
}

export function getSecretSync(namespace: string, name: string): Promise<StoredSecretSync> {
  return custom.getNamespacedCustomObject({ ...SECRETSYNCS, namespace, name }) as Promise<StoredSecretSync>;
}

export function readyOf(ss: StoredSecretSync | undefined): Condition | undefined {
  return (ss?.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'Ready');
}

/** Waits until the SecretSync's Ready condition has `status` (and `reason`); returns the SecretSync. */
export function waitReady(
  namespace: string,
  name: string,
  status: 'True' | 'False',
  reason?: string,
): Promise<StoredSecretSync> {
  return eventually(`SecretSync ${name} Ready=${status}${reason ? ` (${reason})` : ''}`, async () => {
    const ss = await getSecretSync(namespace, name);
    const c = readyOf(ss);
    return c?.status === status && (!reason || c.reason === reason) ? ss : undefined;
  });
}
