// What the driver reads from the cluster. Pods: a cache of this node's pods only.
// SecretProviderClasses, ServiceAccounts and (for the Namespace permit) Namespaces: read
// when a volume needs them and kept, fresh through a watch, only while a volume on this
// node uses them (watched-objects.ts). SPCs and ServiceAccounts are watched only in the
// namespaces of this node's pods; Namespaces, which only cluster admins write, as a whole.
// Nothing the driver keeps or receives grows with objects that this node's pods do not use.
import * as k8s from '@kubernetes/client-node';
import { ApiServerError, PreconditionError } from '../errors.js';
import {
  GROUP,
  NODE_LABEL,
  SPCPS_PLURAL,
  VERSION,
  type SecretProviderClass,
  type SecretProviderClassPodStatus,
} from '../crds/types.js';
import type { Logger } from '../log.js';
import { ResourceCache } from './cache.js';
import { isPartial, podFields } from './pod-fields.js';
import { apiErrorText, continueToken, pagedList } from './client.js';
import { SpcCensus } from './spc-census.js';
import { watchFn } from './scope-watch.js';
import { readExplained, watchedNamespaces, watchedServiceAccounts, watchedSpcs } from './watched-kinds.js';
import type { WatchedObjects } from './watched-objects.js';

/** Which objects this node's volumes use: what the view keeps beyond a short while. */
export interface VolumeUsage {
  usesSpc(namespace: string, name: string): boolean;
  usesServiceAccount(namespace: string, name: string): boolean;
  usesNamespace(name: string): boolean;
}

export interface KubeViewOptions {
  /** SPCs allowed in the cluster (oldest first); 0 or unset = no limit. */
  maxSpcs?: number;
  /** Told how many objects of a kind the view keeps, whenever that changes. */
  onCachedObjects?: (kind: string, size: number) => void;
  /** Told the number of SPCs at each count for the limit. */
  onSpcCount?: (total: number) => void;
  /** Read and watch the Namespaces of this node's pods (their permits); off when the namespace policy is. */
  namespaces?: boolean;
  /** Told of each watch event of a kind that the view decoded. */
  onWatchEvent?: (kind: string) => void;
}

/** An SPCPS as read back from the cluster. */
export type SpcpsObject = SecretProviderClassPodStatus & k8s.KubernetesObject;

export class KubeView {
  private readonly core: k8s.CoreV1Api;
  private readonly custom: k8s.CustomObjectsApi;
  readonly pods: ResourceCache<k8s.V1Pod>;
  readonly serviceAccounts: WatchedObjects<k8s.V1ServiceAccount>;
  readonly spcs: WatchedObjects<SecretProviderClass>;
  readonly namespaces?: WatchedObjects<k8s.V1Namespace>;
  private readonly census?: SpcCensus;

  constructor(
    kc: k8s.KubeConfig,
    readonly nodeName: string,
    log: Logger,
    usage: VolumeUsage,
    opts: KubeViewOptions = {},
  ) {
    const onSize = (kind: string) => (size: number) => opts.onCachedObjects?.(kind, size);
    const onEvent = (kind: string) => () => opts.onWatchEvent?.(kind);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const watch = watchFn(kc);
    this.pods = this.podCache(kc, log, onSize('Pod'));
    // A namespace is watched while a pod of this node in it has a volume of this driver (the
    // cache keeps only those volumes): from the moment the pod appears, ahead of its mount.
    const hasPods = (namespace: string) => this.pods.list(namespace).some((p) => (p.spec?.volumes ?? []).length > 0);
    const inNamespace = { scopeInUse: hasPods };
    this.serviceAccounts = watchedServiceAccounts(this.core, watch, log, {
      ...inNamespace,
      inUse: (namespace, name) => usage.usesServiceAccount(namespace, name),
      onSize: onSize('ServiceAccount'),
      onEvent: onEvent('ServiceAccount'),
    });
    this.spcs = watchedSpcs(
      this.custom,
      watch,
      log,
      {
        ...inNamespace,
        inUse: (namespace, name) => usage.usesSpc(namespace, name),
        onSize: onSize('SecretProviderClass'),
        onEvent: onEvent('SecretProviderClass'),
      },
      "create it in the pod's namespace or fix volumeAttributes.secretProviderClass",
    );
    if (opts.namespaces) {
      this.namespaces = watchedNamespaces(this.core, watch, log, {
        inUse: (_, name) => usage.usesNamespace(name),
        onSize: onSize('Namespace'),
      });
    }
    if (opts.maxSpcs) this.census = new SpcCensus(this.custom, opts.maxSpcs, opts.onSpcCount);
  }

  private podCache(kc: k8s.KubeConfig, log: Logger, onSize: (size: number) => void) {
    const onNode = `spec.nodeName=${this.nodeName}`;
    return new ResourceCache<k8s.V1Pod>('Pod', kc, '/api/v1/pods', () => this.listPods(onNode), log, {
      selectors: { field: onNode },
      onSize,
      keep: podFields,
      onAdd: (pod) => {
        if ((pod.spec?.volumes ?? []).length === 0) return;
        for (const w of [this.serviceAccounts, this.spcs]) w.watchScope(pod.metadata!.namespace!);
      },
    });
  }

  /**
   * This node's pods in small pages, each trimmed as soon as it arrives: a page holds at
   * most ten pods, however large their namespaces' users made them.
   */
  private listPods(fieldSelector: string): Promise<k8s.V1PodList> {
    return pagedList(
      (limit, token) => this.core.listPodForAllNamespaces({ fieldSelector, limit, _continue: token }),
      podFields,
    );
  }

  private get watched() {
    return [this.serviceAccounts, this.spcs, ...(this.namespaces ? [this.namespaces] : [])];
  }

  async start(): Promise<void> {
    await Promise.all([this.pods.start(), ...this.watched.map((w) => w.start())]);
  }

  async stop(): Promise<void> {
    for (const w of this.watched) w.stop();
    await this.pods.stop();
  }

  get synced(): boolean {
    return this.pods.synced && this.watched.every((w) => w.synced);
  }

  /** The pod kubelet named, which must be the same incarnation (uid) kubelet mounts for. */
  async pod(namespace: string, name: string, uid: string): Promise<k8s.V1Pod> {
    const cached = this.pods.get(name, namespace);
    // A pod kept without its large volumeAttributes is read whole: a provider may need them.
    if (cached?.metadata?.uid === uid && !isPartial(cached)) return cached;
    const pod = await readExplained(`Pod ${namespace}/${name}`, () => this.core.readNamespacedPod({ name, namespace }));
    if (pod.metadata?.uid !== uid) {
      throw new PreconditionError(
        `Pod ${namespace}/${name} has uid ${pod.metadata?.uid}, not ${uid} as the mount request says; the pod was replaced, kubelet will retry`,
      );
    }
    return pod;
  }

  serviceAccount(namespace: string, name: string): Promise<k8s.V1ServiceAccount> {
    return this.serviceAccounts.get(namespace, name);
  }

  spc(namespace: string, name: string): Promise<SecretProviderClass> {
    return this.spcs.get(namespace, name);
  }

  namespace(name: string): Promise<k8s.V1Namespace> {
    if (!this.namespaces) throw new Error('KubeView: Namespaces are not read when the namespace policy is off');
    return this.namespaces.get('', name);
  }

  /** The SPCPS labelled with this node, a page at a time (a restart's take-over reads them). */
  async *spcpsOnNode(): AsyncGenerator<SpcpsObject> {
    let token: string | undefined;
    do {
      const page = (await this.custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SPCPS_PLURAL,
        labelSelector: `${NODE_LABEL}=${this.nodeName}`,
        // Anyone may label an SPCPS with this node and give it a large status: small pages.
        limit: 10,
        _continue: token,
      })) as { items: SpcpsObject[]; metadata?: { continue?: string } };
      yield* page.items;
      token = continueToken(page);
    } while (token);
  }

  /** A Secret's data as text (a volume's nodePublishSecretRef, as kubelet passes it). */
  async secretData(namespace: string, name: string): Promise<Record<string, string>> {
    const secret = await readExplained(`Secret ${namespace}/${name}`, () =>
      this.core.readNamespacedSecret({ name, namespace }),
    );
    return Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );
  }

  /** The documented limit on SPCs, checked when a pod mounts: the oldest `maxSpcs` may be mounted, newer ones are refused. */
  async checkSpcLimit(spc: SecretProviderClass): Promise<void> {
    if (!this.census) return;
    try {
      await this.census.check(spc);
    } catch (err) {
      if (err instanceof PreconditionError) throw err;
      throw new ApiServerError(`counting SecretProviderClasses for the limit failed: ${apiErrorText(err)}`, {
        cause: err,
      });
    }
  }
}
