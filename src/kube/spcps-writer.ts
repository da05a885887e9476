// Creates, updates and deletes SecretProviderClassPodStatus objects for this node's
// volumes, writing only when the desired object differs from what is there, and never
// touching one that records another pod: an SPCPS is user-writable data, not proof.
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type * as k8s from '@kubernetes/client-node';
import { ApiServerError, PreconditionError } from '../errors.js';
import { GROUP, SPCPS_PLURAL, VERSION, type SecretProviderClassPodStatus } from '../crds/types.js';
import { apiErrorText, apiStatus } from './client.js';

export type WriteOutcome = 'created' | 'updated' | 'unchanged';

type Spcps = SecretProviderClassPodStatus & k8s.KubernetesObject;

const MAX_NAME = 253;

/**
 * `<pod>-<namespace>-<spc>`, the name users find with `kubectl get spcps`. Two pods can
 * share it (pod `p` with SPC `n-s`, pod `p-n` with SPC `s`, in namespace `n`), and it can
 * be too long; the alternative adds a hash of the three names, so it is the same on every
 * node and after every restart.
 */
export function spcpsNames(pod: string, namespace: string, spc: string): [primary: string, alternative: string] {
  const full = `${pod}-${namespace}-${spc}`;
  const hash = createHash('sha256').update(`${namespace}/${pod}/${spc}`).digest('hex').slice(0, 10);
  const alternative = `${full.slice(0, MAX_NAME - hash.length - 1).replace(/[.-]+$/, '')}-${hash}`;
  return [full.length <= MAX_NAME ? full : alternative, alternative];
}

function podOwner(o: Spcps): k8s.V1OwnerReference | undefined {
  return o.metadata.ownerReferences?.find((r) => r.kind === 'Pod' && r.apiVersion === 'v1');
}

function sameContent(a: SecretProviderClassPodStatus, b: SecretProviderClassPodStatus): boolean {
  return (
    isDeepStrictEqual(a.status, b.status) &&
    isDeepStrictEqual(a.metadata.labels ?? {}, b.metadata.labels ?? {}) &&
    isDeepStrictEqual(
      (a.metadata.ownerReferences ?? []).map((o) => o.uid),
      (b.metadata.ownerReferences ?? []).map((o) => o.uid),
    )
  );
}

/** What the publisher needs of SPCPS storage. */
export type SpcpsStore = Pick<SpcpsWriter, 'upsert' | 'delete'>;

export class SpcpsWriter {
  /** What we last wrote, by namespace/name: the comparison needs no cache of the cluster's SPCPS. */
  private readonly written = new Map<string, Spcps>();

  constructor(private readonly custom: k8s.CustomObjectsApi) {}

  /**
   * Writes `desired` (named by its primary name) for the pod it owns, or under the
   * alternative name when another pod holds the primary one. Returns the name used.
   */
  async upsert(
    desired: SecretProviderClassPodStatus,
    alternative: string,
  ): Promise<{ name: string; outcome: WriteOutcome }> {
    const primary = desired.metadata.name;
    const first = await this.upsertAs(desired);
    if (first !== 'taken') return { name: primary, outcome: first };
    const second = await this.upsertAs({ ...desired, metadata: { ...desired.metadata, name: alternative } });
    if (second !== 'taken') return { name: alternative, outcome: second };
    const ns = desired.metadata.namespace;
    throw new PreconditionError(
      `SecretProviderClassPodStatus ${ns}/${primary} and ${ns}/${alternative} both record other pods; delete the one that is not in use or rename the pod or the SecretProviderClass`,
    );
  }

  /**
   * Deletes the SPCPS if it still records pod `podUid`; anything else is left alone. The
   * delete is conditional on the object as we last wrote or read it (uid and
   * resourceVersion): a pod of the same name on another node may have taken it over since.
   */
  async delete(namespace: string, name: string, podUid: string): Promise<void> {
    const k = key(namespace, name);
    try {
      const live = this.written.get(k) ?? (await this.get(namespace, name));
      this.written.delete(k);
      if (!live || podOwner(live)?.uid !== podUid) return;
      const { uid, resourceVersion } = live.metadata;
      await this.custom.deleteNamespacedCustomObject({
        ...api(namespace),
        name,
        body: { preconditions: { uid, resourceVersion } },
      });
    } catch (err) {
      if (apiStatus(err) === 404 || apiStatus(err) === 409) return; // gone, or no longer the object we wrote
      throw new ApiServerError(
        `deleting SecretProviderClassPodStatus ${namespace}/${name} failed: ${apiErrorText(err)}`,
        { cause: err },
      );
    }
  }

  private async upsertAs(desired: SecretProviderClassPodStatus): Promise<WriteOutcome | 'taken'> {
    const { namespace, name } = desired.metadata as { namespace: string; name: string };
    const mine = this.written.get(key(namespace, name));
    if (mine && sameContent(mine, desired)) return 'unchanged';
    try {
      let live: Spcps | undefined = mine;
      if (!live) {
        try {
          return this.remember(
            await this.custom.createNamespacedCustomObject({ ...api(namespace), body: desired }),
            'created',
          );
        } catch (err) {
          if (apiStatus(err) !== 409) throw err;
        }
      }
      for (let attempt = 1; ; attempt++) {
        live ??= await this.get(namespace, name);
        if (!live)
          return this.remember(
            await this.custom.createNamespacedCustomObject({ ...api(namespace), body: desired }),
            'created',
          );
        if (!this.mayWrite(live, desired)) return 'taken';
        if (sameContent(live, desired)) return this.remember(live, 'unchanged');
        const body = {
          ...desired,
          metadata: { ...desired.metadata, uid: live.metadata.uid, resourceVersion: live.metadata.resourceVersion },
        };
        try {
          return this.remember(
            await this.custom.replaceNamespacedCustomObject({ ...api(namespace), name, body }),
            'updated',
          );
        } catch (err) {
          // Changed or deleted since we read it: read again and decide again.
          if ((apiStatus(err) !== 409 && apiStatus(err) !== 404) || attempt >= 3) throw err;
          live = undefined;
        }
      }
    } catch (err) {
      throw new ApiServerError(
        `writing SecretProviderClassPodStatus ${namespace}/${name} failed: ${apiErrorText(err)}`,
        { cause: err },
      );
    }
  }

  /** Ours if it records this pod, or an earlier pod of the same name (which is gone: the name now has our uid). */
  private mayWrite(live: Spcps, desired: SecretProviderClassPodStatus): boolean {
    const owner = podOwner(live);
    const want = desired.metadata.ownerReferences![0];
    return owner !== undefined && (owner.uid === want.uid || owner.name === want.name);
  }

  private async get(namespace: string, name: string): Promise<Spcps | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ ...api(namespace), name })) as Spcps;
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }

  private remember(obj: unknown, outcome: WriteOutcome): WriteOutcome {
    const { apiVersion, kind, metadata: m, status } = obj as Spcps;
    // Only what comparison and a later replace need; managedFields and the rest stay out.
    const metadata = {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      labels: m.labels,
      ownerReferences: m.ownerReferences,
    };
    this.written.set(key(m.namespace!, m.name), { apiVersion, kind, metadata, status });
    return outcome;
  }
}

function api(namespace: string) {
  return { group: GROUP, version: VERSION, plural: SPCPS_PLURAL, namespace };
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
