// What the sync controller reads from the cluster: every SecretSync (a list+watch cache,
// each kept without its managed fields), and, only where a SecretSync uses them, the SPCs and
// ServiceAccounts of its namespace and the Namespace's permit (watched-kinds.ts, as the node
// driver reads them). It never reads a Secret. What it keeps grows with the SecretSyncs it
// serves, not with anything else in the cluster.
import * as k8s from '@kubernetes/client-node';
import {
  ALLOW_LIST_ANNOTATION,
  PERMIT_ANNOTATION,
  SECRETSYNC_PLURAL,
  SYNC_GROUP,
  SYNC_VERSION,
  type SecretProviderClass,
  type SecretSync,
} from '../crds/types.js';
import { MAX_SPEC_BYTES } from '../crds/secret-sync.js';
import { ResourceCache } from '../kube/cache.js';
import { pagedList } from '../kube/client.js';
import { watchFn } from '../kube/scope-watch.js';
import { watchedNamespaces, watchedServiceAccounts, watchedSpcs } from '../kube/watched-kinds.js';
import type { WatchedObjects } from '../kube/watched-objects.js';
import type { Logger } from '../log.js';

export interface SyncViewHooks {
  /** A SecretSync appeared or its spec changed (not its status: the controller writes that itself). */
  onSync: (ss: SecretSync) => void;
  onGone: (ss: SecretSync) => void;
  /** An SPC or ServiceAccount a SecretSync uses changed, or a Namespace's permit: its SecretSyncs are due. */
  onInput: (namespace: string, change: { spc?: string; serviceAccount?: string }) => void;
  onCount?: (secretSyncs: number) => void;
}

/**
 * A SecretSync as the cache keeps it: what the controller reads, no managed fields; a spec
 * over MAX_SPEC_BYTES is dropped (`specBytes` says why the sync is refused).
 */
export function kept(ss: SecretSync): SecretSync {
  const { name, namespace, uid, generation, resourceVersion, deletionTimestamp } = ss.metadata;
  const specBytes = Buffer.byteLength(JSON.stringify(ss.spec ?? {}));
  const { syncHash, lastSuccessfulSyncTime, conditions } = ss.status ?? {};
  return {
    apiVersion: ss.apiVersion,
    kind: ss.kind,
    metadata: { name, namespace, uid, generation, resourceVersion, deletionTimestamp },
    spec: specBytes > MAX_SPEC_BYTES ? ({ specBytes } as never) : ss.spec,
    status: { syncHash, lastSuccessfulSyncTime, conditions: conditions?.slice(0, 16) },
  };
}

export class SyncView {
  readonly syncs: ResourceCache<SecretSync & k8s.KubernetesObject>;
  readonly spcs: WatchedObjects<SecretProviderClass>;
  readonly serviceAccounts: WatchedObjects<k8s.V1ServiceAccount>;
  readonly namespaces?: WatchedObjects<k8s.V1Namespace>;
  /** uid and generation of each SecretSync last handed on: a status write changes neither. */
  private readonly seen = new Map<string, string>();
  /** What of an SPC (its generation) and a ServiceAccount (its allow-list) a sync reads. */
  private readonly inputs = new Map<string, string>();

  constructor(kc: k8s.KubeConfig, log: Logger, hooks: SyncViewHooks, opts: { namespaces: boolean }) {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const watch = watchFn(kc);
    const inNamespace = (namespace: string) => this.syncs.list(namespace).length > 0;
    const uses = (namespace: string, test: (ss: SecretSync) => boolean) => this.syncs.list(namespace).some(test);
    this.spcs = watchedSpcs(
      custom,
      watch,
      log,
      {
        scopeInUse: inNamespace,
        inUse: (namespace, name) => uses(namespace, (ss) => ss.spec?.secretProviderClassName === name),
      },
      "create it in the SecretSync's namespace or fix spec.secretProviderClassName",
    );
    this.serviceAccounts = watchedServiceAccounts(core, watch, log, {
      scopeInUse: inNamespace,
      inUse: (namespace, name) => uses(namespace, (ss) => ss.spec?.serviceAccountName === name),
    });
    // Only a change of what a sync reads makes work: a tenant touching metadata makes none.
    this.spcs.onChange((spc) => {
      const { namespace, name, uid, generation } = spc.metadata;
      if (this.changedInput(`spc/${namespace}/${name}`, `${uid}/${generation}`))
        hooks.onInput(namespace!, { spc: name });
    });
    this.serviceAccounts.onChange((sa) => {
      const { namespace, name, annotations } = sa.metadata!;
      if (this.changedInput(`sa/${namespace}/${name}`, annotations?.[ALLOW_LIST_ANNOTATION] ?? ''))
        hooks.onInput(namespace!, { serviceAccount: name });
    });
    if (opts.namespaces) {
      this.namespaces = watchedNamespaces(core, watch, log, { inUse: (_, name) => inNamespace(name) });
      this.namespaces.onChange((ns) => {
        const { name, annotations } = ns.metadata!;
        if (this.changedInput(`ns/${name}`, annotations?.[PERMIT_ANNOTATION] ?? '')) hooks.onInput(name!, {});
      });
    }
    const path = `/apis/${SYNC_GROUP}/${SYNC_VERSION}/${SECRETSYNC_PLURAL}`;
    const key = (ss: SecretSync) => `${ss.metadata.namespace}/${ss.metadata.name}`;
    this.syncs = new ResourceCache<SecretSync & k8s.KubernetesObject>(kind, kc, path, () => this.list(custom), log, {
      keep: kept as (ss: SecretSync & k8s.KubernetesObject) => SecretSync & k8s.KubernetesObject,
      onSize: (n) => hooks.onCount?.(n),
      onAdd: (ss) => {
        for (const w of [this.spcs, this.serviceAccounts]) w.watchScope(ss.metadata.namespace!);
        this.seen.set(key(ss), version(ss));
        hooks.onSync(ss);
      },
      onUpdate: (ss) => {
        // Status writes (ours) leave uid and generation as they were: only a new spec (or a
        // SecretSync recreated under the same name while the watch was down) is work.
        if (this.seen.get(key(ss)) === version(ss)) return;
        this.seen.set(key(ss), version(ss));
        hooks.onSync(ss);
      },
      onDelete: (ss) => {
        this.seen.delete(key(ss));
        hooks.onGone(ss);
      },
    });
  }

  /** Whether `value` is new for `input` (and remembers it, while the input is kept). */
  private changedInput(input: string, value: string): boolean {
    if (this.inputs.get(input) === value) return false;
    this.inputs.set(input, value);
    if (this.inputs.size > 4 * (this.syncs.list().length + 16)) this.inputs.clear();
    return true;
  }

  /** Every SecretSync, in pages: a page holds few, however large their authors made them. */
  private async list(
    custom: k8s.CustomObjectsApi,
  ): Promise<k8s.KubernetesListObject<SecretSync & k8s.KubernetesObject>> {
    const api = { group: SYNC_GROUP, version: SYNC_VERSION, plural: SECRETSYNC_PLURAL };
    const page = (limit: number, token: string | undefined) =>
      custom.listClusterCustomObject({ ...api, limit, _continue: token }) as Promise<{ items: SecretSync[] }>;
    return (await pagedList(page, kept)) as never;
  }

  /** The SecretSync as now kept, if it still exists. */
  current(namespace: string, name: string): SecretSync | undefined {
    return this.syncs.get(name, namespace);
  }

  private get watched() {
    return [this.spcs, this.serviceAccounts, ...(this.namespaces ? [this.namespaces] : [])];
  }

  async start(): Promise<void> {
    await Promise.all([this.syncs.start(), ...this.watched.map((w) => w.start())]);
  }

  async stop(): Promise<void> {
    for (const w of this.watched) w.stop();
    await this.syncs.stop();
  }

  get synced(): boolean {
    return this.syncs.synced && this.watched.every((w) => w.synced);
  }
}

const kind = 'SecretSync';
const version = (ss: SecretSync) => `${ss.metadata.uid}/${ss.metadata.generation}`;
