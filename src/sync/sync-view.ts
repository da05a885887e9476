// What the sync controller reads from the cluster: every SecretSync (a list+watch cache,
// each kept without its managed fields), and, only where a SecretSync uses them, the SPCs and
// ServiceAccounts of its namespace and the Namespace's permit (watched-kinds.ts, as the node
// driver reads them). It never reads a Secret. What it keeps grows with the SecretSyncs it
// serves, not with anything else in the cluster.
import * as k8s from '@kubernetes/client-node';
import {
  SECRETSYNC_PLURAL,
  SYNC_GROUP,
  SYNC_VERSION,
  type SecretProviderClass,
  type SecretSync,
} from '../crds/types.js';
import { ResourceCache } from '../kube/cache.js';
import { continueToken } from '../kube/client.js';
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

/** A SecretSync as the cache keeps it: what the controller reads, no managed fields. */
function kept(ss: SecretSync): SecretSync {
  const { name, namespace, uid, generation, resourceVersion } = ss.metadata;
  return {
    apiVersion: ss.apiVersion,
    kind: ss.kind,
    metadata: { name, namespace, uid, generation, resourceVersion },
    spec: ss.spec,
    status: ss.status,
  };
}

export class SyncView {
  readonly syncs: ResourceCache<SecretSync & k8s.KubernetesObject>;
  readonly spcs: WatchedObjects<SecretProviderClass>;
  readonly serviceAccounts: WatchedObjects<k8s.V1ServiceAccount>;
  readonly namespaces?: WatchedObjects<k8s.V1Namespace>;
  private readonly generations = new Map<string, number | undefined>();

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
    this.spcs.onChange((spc) => hooks.onInput(spc.metadata.namespace!, { spc: spc.metadata.name }));
    this.serviceAccounts.onChange((sa) =>
      hooks.onInput(sa.metadata!.namespace!, { serviceAccount: sa.metadata!.name }),
    );
    if (opts.namespaces) {
      this.namespaces = watchedNamespaces(core, watch, log, { inUse: (_, name) => inNamespace(name) });
      this.namespaces.onChange((ns) => hooks.onInput(ns.metadata!.name!, {}));
    }
    const path = `/apis/${SYNC_GROUP}/${SYNC_VERSION}/${SECRETSYNC_PLURAL}`;
    const key = (ss: SecretSync) => `${ss.metadata.namespace}/${ss.metadata.name}`;
    this.syncs = new ResourceCache(kind, kc, path, () => this.list(custom), log, {
      keep: kept,
      onSize: (n) => hooks.onCount?.(n),
      onAdd: (ss) => {
        for (const w of [this.spcs, this.serviceAccounts]) w.watchScope(ss.metadata.namespace!);
        this.generations.set(key(ss), ss.metadata.generation);
        hooks.onSync(ss);
      },
      onUpdate: (ss) => {
        // Status writes (ours) leave the generation as it was: only a spec change is work.
        if (this.generations.get(key(ss)) === ss.metadata.generation) return;
        this.generations.set(key(ss), ss.metadata.generation);
        hooks.onSync(ss);
      },
      onDelete: (ss) => {
        this.generations.delete(key(ss));
        hooks.onGone(ss);
      },
    });
  }

  /** Every SecretSync, in pages: a page holds few, however large their authors made them. */
  private async list(
    custom: k8s.CustomObjectsApi,
  ): Promise<k8s.KubernetesListObject<SecretSync & k8s.KubernetesObject>> {
    const items: SecretSync[] = [];
    let resourceVersion: string | undefined;
    let token: string | undefined;
    do {
      const page = (await custom.listClusterCustomObject({
        ...{ group: SYNC_GROUP, version: SYNC_VERSION, plural: SECRETSYNC_PLURAL },
        // A page is budgeted at limit × the object limit: small pages keep that peak low.
        limit: 10,
        _continue: token,
      })) as { items: SecretSync[]; metadata?: { resourceVersion?: string; continue?: string } };
      resourceVersion ??= page.metadata?.resourceVersion;
      items.push(...page.items.map(kept));
      token = continueToken(page);
    } while (token);
    return { items, metadata: { resourceVersion } };
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
