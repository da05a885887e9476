// Creates, updates and deletes SecretProviderClassPodStatus objects, writing to the
// API server only when the desired object differs from what is already there.
import { isDeepStrictEqual } from 'node:util';
import type * as k8s from '@kubernetes/client-node';
import { ApiServerError } from '../errors.js';
import { GROUP, SPCPS_PLURAL, VERSION, type SecretProviderClassPodStatus } from '../crds/types.js';
import type { ResourceCache } from './cache.js';
import { apiErrorText, apiStatus } from './client.js';

export type WriteOutcome = 'created' | 'updated' | 'unchanged';

type Spcps = SecretProviderClassPodStatus & k8s.KubernetesObject;

function sameContent(a: SecretProviderClassPodStatus, b: SecretProviderClassPodStatus): boolean {
  return isDeepStrictEqual(a.status, b.status) &&
    isDeepStrictEqual(a.metadata.labels ?? {}, b.metadata.labels ?? {}) &&
    isDeepStrictEqual((a.metadata.ownerReferences ?? []).map((o) => o.uid), (b.metadata.ownerReferences ?? []).map((o) => o.uid));
}

export class SpcpsWriter {
  /** What we last wrote, for the moment before our own write reaches the cache. */
  private readonly written = new Map<string, Spcps>();

  constructor(private readonly custom: k8s.CustomObjectsApi, private readonly cache: ResourceCache<Spcps>) {
    cache.on('delete', (o) => this.written.delete(key(o.metadata.namespace!, o.metadata.name)));
  }

  async upsert(desired: SecretProviderClassPodStatus): Promise<WriteOutcome> {
    const { namespace, name } = desired.metadata as { namespace: string; name: string };
    const current = this.newest(namespace, name);
    if (current && sameContent(current, desired)) return 'unchanged';
    const base = { group: GROUP, version: VERSION, plural: SPCPS_PLURAL, namespace };
    try {
      if (!current) {
        try {
          return this.remember(await this.custom.createNamespacedCustomObject({ ...base, body: desired }), 'created');
        } catch (err) {
          if (apiStatus(err) !== 409) throw err;
        }
      }
      const live = (current ?? await this.custom.getNamespacedCustomObject({ ...base, name })) as Spcps;
      if (sameContent(live, desired)) return this.remember(live, 'unchanged');
      const body = { ...desired, metadata: { ...live.metadata, labels: desired.metadata.labels, ownerReferences: desired.metadata.ownerReferences } };
      return this.remember(await this.custom.replaceNamespacedCustomObject({ ...base, name, body }), 'updated');
    } catch (err) {
      throw new ApiServerError(`writing SecretProviderClassPodStatus ${namespace}/${name} failed: ${apiErrorText(err)}`);
    }
  }

  async delete(namespace: string, name: string): Promise<void> {
    this.written.delete(key(namespace, name));
    try {
      await this.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SPCPS_PLURAL, namespace, name });
    } catch (err) {
      if (apiStatus(err) !== 404) throw new ApiServerError(`deleting SecretProviderClassPodStatus ${namespace}/${name} failed: ${apiErrorText(err)}`);
    }
  }

  /** The SPCPS on this node whose volume is `targetPath`, if any. */
  findByTarget(targetPath: string): Spcps | undefined {
    return this.cache.list().find((o) => o.status?.targetPath === targetPath);
  }

  private newest(namespace: string, name: string): Spcps | undefined {
    const cached = this.cache.get(name, namespace);
    const mine = this.written.get(key(namespace, name));
    if (!mine) return cached;
    if (!cached) return mine;
    return Number(mine.metadata.resourceVersion) > Number(cached.metadata.resourceVersion) ? mine : cached;
  }

  private remember(obj: unknown, outcome: WriteOutcome): WriteOutcome {
    const { apiVersion, kind, metadata: m, status } = obj as Spcps;
    // Only what comparison and a later replace need; managedFields and the rest stay out.
    const metadata = { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, labels: m.labels, ownerReferences: m.ownerReferences };
    this.written.set(key(m.namespace!, m.name), { apiVersion, kind, metadata, status });
    return outcome;
  }
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
