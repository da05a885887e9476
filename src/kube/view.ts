// What the driver reads from the cluster, served from caches scoped to this node;
// a cache miss (an object created a moment ago) falls back to one GET.
import * as k8s from '@kubernetes/client-node';
import { ApiServerError, NotFoundError, PreconditionError } from '../errors.js';
import { GROUP, NODE_LABEL, SPC_PLURAL, SPCPS_PLURAL, VERSION, type SecretProviderClass, type SecretProviderClassPodStatus } from '../crds/types.js';
import type { Logger } from '../log.js';
import { ResourceCache } from './cache.js';
import { apiErrorText, apiStatus } from './client.js';

export class KubeView {
  readonly core: k8s.CoreV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly pods: ResourceCache<k8s.V1Pod>;
  readonly serviceAccounts: ResourceCache<k8s.V1ServiceAccount>;
  readonly spcs: ResourceCache<SecretProviderClass & k8s.KubernetesObject>;
  readonly spcps: ResourceCache<SecretProviderClassPodStatus & k8s.KubernetesObject>;

  constructor(kc: k8s.KubeConfig, readonly nodeName: string, log: Logger, private readonly maxSpcs = 0) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const onNode = `spec.nodeName=${nodeName}`;
    const nodeLabel = `${NODE_LABEL}=${nodeName}`;
    this.pods = new ResourceCache('Pod', kc, '/api/v1/pods',
      () => this.core.listPodForAllNamespaces({ fieldSelector: onNode }), log, { field: onNode });
    this.serviceAccounts = new ResourceCache('ServiceAccount', kc, '/api/v1/serviceaccounts',
      () => this.core.listServiceAccountForAllNamespaces(), log);
    this.spcs = new ResourceCache('SecretProviderClass', kc, `/apis/${GROUP}/${VERSION}/${SPC_PLURAL}`,
      () => this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: SPC_PLURAL }) as never, log);
    this.spcps = new ResourceCache('SecretProviderClassPodStatus', kc, `/apis/${GROUP}/${VERSION}/${SPCPS_PLURAL}`,
      () => this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: SPCPS_PLURAL, labelSelector: nodeLabel }) as never,
      log, { label: nodeLabel });
  }

  private get caches() {
    return [this.pods, this.serviceAccounts, this.spcs, this.spcps];
  }

  async start(): Promise<void> {
    await Promise.all(this.caches.map((c) => c.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.caches.map((c) => c.stop()));
  }

  get synced(): boolean {
    return this.caches.every((c) => c.synced);
  }

  /** The pod kubelet named, which must be the same incarnation (uid) kubelet mounts for. */
  async pod(namespace: string, name: string, uid: string): Promise<k8s.V1Pod> {
    const cached = this.pods.get(name, namespace);
    if (cached?.metadata?.uid === uid) return cached;
    const pod = await this.read(`Pod ${namespace}/${name}`, () => this.core.readNamespacedPod({ name, namespace }));
    if (pod.metadata?.uid !== uid) {
      throw new PreconditionError(`Pod ${namespace}/${name} has uid ${pod.metadata?.uid}, not ${uid} as the mount request says; the pod was replaced, kubelet will retry`);
    }
    return pod;
  }

  async serviceAccount(namespace: string, name: string): Promise<k8s.V1ServiceAccount> {
    return this.serviceAccounts.get(name, namespace) ??
      this.read(`ServiceAccount ${namespace}/${name}`, () => this.core.readNamespacedServiceAccount({ name, namespace }));
  }

  async spc(namespace: string, name: string): Promise<SecretProviderClass> {
    return this.spcs.get(name, namespace) ?? this.read(`SecretProviderClass ${namespace}/${name}`,
      () => this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: SPC_PLURAL, namespace, name }) as Promise<SecretProviderClass>,
      'create it in the pod\'s namespace or fix volumeAttributes.secretProviderClass');
  }

  /** The documented limit on SPCs, checked when a pod mounts: the oldest `maxSpcs` may be mounted, newer ones are refused. */
  checkSpcLimit(spc: SecretProviderClass): void {
    if (this.maxSpcs === 0) return;
    const cached = this.spcs.list();
    // One just created may not have reached the cache yet: count it all the same.
    const all = cached.some((o) => o.metadata.uid === spc.metadata.uid) ? cached : [...cached, spc];
    if (all.length <= this.maxSpcs) return;
    // RFC 3339 timestamps sort as text; the name breaks ties.
    const key = (o: SecretProviderClass) => `${String((o.metadata as { creationTimestamp?: string }).creationTimestamp ?? '')}/${o.metadata.namespace}/${o.metadata.name}`;
    const newer = all.filter((o) => key(o) > key(spc)).length;
    if (all.length - newer > this.maxSpcs) {
      throw new PreconditionError(`SecretProviderClass ${spc.metadata.namespace}/${spc.metadata.name} exceeds the limit of ${this.maxSpcs} SecretProviderClasses in the cluster (there are ${all.length}); delete unused ones or raise maxSecretProviderClasses`);
    }
  }

  private async read<T>(what: string, get: () => Promise<T>, fix = 'create it or fix the reference'): Promise<T> {
    try {
      return await get();
    } catch (err) {
      if (apiStatus(err) === 404) throw new NotFoundError(`${what} not found; ${fix}`);
      throw new ApiServerError(`reading ${what} from the API server failed: ${apiErrorText(err)}`);
    }
  }
}
