// Orchestrates a publish: validate, authorize, fetch, then mount and write, then
// record the SPCPS. Fetching comes before mounting so a failed fetch leaves nothing;
// a failure after a fresh mount unmounts it again.
import { createHash } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { PreconditionError } from '../errors.js';
import { parseSecretObjects, type SecretObject } from '../crds/objects.js';
import { ALLOW_LIST_ANNOTATION, BUILTIN_PROVIDER, NODE_LABEL, spcpsName, type SecretProviderClass, type SecretProviderClassPodStatus } from '../crds/types.js';
import type { Logger } from '../log.js';
import { resolveCredentials, type CredentialProvider } from '../provider/credentials.js';
import type { SecretSource } from '../provider/source.js';
import type { KubeView } from '../kube/view.js';
import type { SpcpsWriter } from '../kube/spcps-writer.js';
import { checkAllowList } from './allow-list.js';
import { writeAtomically } from './atomic-writer.js';
import { buildVolumeContent, type VolumeContent } from './files.js';
import { KeyedLock } from './keyed-lock.js';
import { isMountPoint, mountTmpfs, unmountAndRemove } from './mounter.js';
import type { PublishRequest } from './volume-request.js';
import { VolumeRegistry } from './volumes.js';

export interface PublisherDeps {
  kube: KubeView;
  spcps: SpcpsWriter;
  source: SecretSource;
  credentials: CredentialProvider;
  log: Logger;
}

interface VolumePlan {
  pod: k8s.V1Pod;
  spc: SecretProviderClass;
  objects: SecretObject[];
  fingerprint: string;
}

export class Publisher {
  readonly volumes = new VolumeRegistry();
  private readonly locks = new KeyedLock();

  constructor(private readonly deps: PublisherDeps) {}

  publish(req: PublishRequest): Promise<void> {
    return this.locks.run(req.targetPath, () => this.publishLocked(req));
  }

  unpublish(targetPath: string): Promise<void> {
    return this.locks.run(targetPath, () => this.unpublishLocked(targetPath));
  }

  private async publishLocked(req: PublishRequest): Promise<void> {
    const { log } = this.deps;
    log.info('Servicing mount request', { Pod: req.podName, Namespace: req.podNamespace, ServiceAccount: req.serviceAccount, SecretProviderClass: req.spcName });
    const plan = await this.plan(req);
    const mounted = await isMountPoint(req.targetPath);
    const known = this.volumes.get(req.targetPath);
    if (mounted && known?.fingerprint === plan.fingerprint) {
      for (const v of known.versions) log.info(`object [${v.id}]'s version [${v.version}] doesn't change, read from local`);
      return;
    }
    const name = spcpsName(req.podName, req.podNamespace, req.spcName);
    const fetching = this.fetchContent(req, plan);
    if (mounted) {
      // A re-publish over live files: keep them unless everything new is in hand.
      const content = await fetching;
      await this.write(req, content);
      await this.deps.spcps.upsert(this.desiredSpcps(req, plan.pod, name, content.versions));
      this.volumes.set({ request: req, spcpsName: name, fingerprint: plan.fingerprint, versions: content.versions });
      return;
    }
    // A fresh volume: mount while fetching, then write files and record the SPCPS
    // together. Any failure takes all of it back, so nothing is left half-done.
    const mounting = mountTmpfs(req.targetPath);
    let recorded: Promise<unknown> | undefined;
    try {
      const [content] = await settleAll([fetching, mounting] as const);
      recorded = this.deps.spcps.upsert(this.desiredSpcps(req, plan.pod, name, content.versions));
      await settleAll([this.write(req, content), recorded]);
      this.volumes.set({ request: req, spcpsName: name, fingerprint: plan.fingerprint, versions: content.versions });
    } catch (err) {
      await unmountAndRemove(req.targetPath).catch((e) => log.error('Cleanup after a failed mount failed', { target: req.targetPath, error: (e as Error).message }));
      if (recorded) await this.deps.spcps.delete(req.podNamespace, name).catch(() => undefined);
      throw err;
    }
  }

  private async fetchContent(req: PublishRequest, plan: VolumePlan): Promise<VolumeContent> {
    const creds = await resolveCredentials(req.secrets, this.deps.credentials);
    const values = await this.deps.source.fetch(plan.objects.map((o) => ({ name: o.objectName, version: o.objectVersion })), creds);
    for (const v of values) this.deps.log.info('Get secret successfully', { name: v.name, version: v.versionId });
    return buildVolumeContent(plan.objects, values);
  }

  private async write(req: PublishRequest, content: VolumeContent): Promise<void> {
    const changed = await writeAtomically(req.targetPath, content.files);
    this.deps.log.v(2).info(changed ? 'Write secret files finished' : 'Secret files unchanged', { target: req.targetPath, files: content.files.size });
  }

  private async plan(req: PublishRequest): Promise<VolumePlan> {
    const { kube } = this.deps;
    const [pod, spc, sa] = await Promise.all([
      kube.pod(req.podNamespace, req.podName, req.podUid),
      kube.spc(req.podNamespace, req.spcName),
      kube.serviceAccount(req.podNamespace, req.serviceAccount),
    ]);
    const ref = `${req.podNamespace}/${req.spcName}`;
    if (spc.spec?.provider !== BUILTIN_PROVIDER) {
      throw new PreconditionError(`SecretProviderClass ${ref}: spec.provider is "${spc.spec?.provider}"; this driver serves provider "${BUILTIN_PROVIDER}" only`);
    }
    const objects = parseSecretObjects(ref, spc.spec.parameters?.objects);
    const annotations = sa.metadata?.annotations;
    checkAllowList(`${req.podNamespace}/${req.serviceAccount}`, annotations, objects.map((o) => o.objectName));
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([req.podUid, spc.spec.parameters?.objects, annotations?.[ALLOW_LIST_ANNOTATION], Object.entries(req.secrets).sort()]))
      .digest('hex');
    return { pod, spc, objects, fingerprint };
  }

  private desiredSpcps(req: PublishRequest, pod: k8s.V1Pod, name: string, versions: SecretProviderClassPodStatus['status']['objects']): SecretProviderClassPodStatus {
    return {
      apiVersion: 'secrets-store.csi.x-k8s.io/v1',
      kind: 'SecretProviderClassPodStatus',
      metadata: {
        name,
        namespace: req.podNamespace,
        labels: { [NODE_LABEL]: this.deps.kube.nodeName },
        ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: req.podName, uid: pod.metadata!.uid! }],
      },
      status: { podName: req.podName, secretProviderClassName: req.spcName, mounted: true, targetPath: req.targetPath, objects: versions },
    };
  }

  private async unpublishLocked(targetPath: string): Promise<void> {
    const { log } = this.deps;
    await unmountAndRemove(targetPath);
    const known = this.volumes.get(targetPath);
    const spcps = known
      ? { namespace: known.request.podNamespace, name: known.spcpsName }
      : (() => {
          const found = this.deps.spcps.findByTarget(targetPath);
          return found ? { namespace: found.metadata.namespace!, name: found.metadata.name } : undefined;
        })();
    this.volumes.delete(targetPath);
    if (spcps) {
      // The ownerReference lets the garbage collector finish this if the API is down now.
      await this.deps.spcps.delete(spcps.namespace, spcps.name).catch((err) => log.warn('Deleting SecretProviderClassPodStatus failed; garbage collection will remove it', { spcps: `${spcps.namespace}/${spcps.name}`, error: (err as Error).message }));
    }
    log.info('Unmounted volume', { target: targetPath });
  }
}

/** Like Promise.all, but waits for every promise to settle before failing. */
async function settleAll<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
