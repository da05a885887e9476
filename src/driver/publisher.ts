// The one path from (pod, SPC) to files and an SPCPS, used by NodePublishVolume, the
// rotation cycle and SPC edits alike. A fresh volume is mounted while its secrets are
// fetched, and any failure takes everything back; an existing volume keeps its files
// unless the complete new content is in hand, and nothing is written that is unchanged.
import type * as k8s from '@kubernetes/client-node';
import { spcpsName, type SecretProviderClass } from '../crds/types.js';
import type { Logger } from '../log.js';
import type { SecretVersion } from '../provider/csms-client.js';
import { resolveCredentials, type CredentialProvider } from '../provider/credentials.js';
import type { SecretSource } from '../provider/source.js';
import type { KubeView } from '../kube/view.js';
import type { SpcpsWriter } from '../kube/spcps-writer.js';
import { readPublished, writeAtomically, type FileSet } from './atomic-writer.js';
import { buildVolumeContent, digest, type VolumeContent } from './files.js';
import { KeyedLock } from './keyed-lock.js';
import { isMountPoint, mountTmpfs, unmountAndRemove } from './mounter.js';
import { desiredSpcps } from './spcps.js';
import { planVolume, type VolumePlan } from './volume-plan.js';
import type { PublishRequest } from './volume-request.js';
import { VolumeRegistry, type MountedVolume } from './volumes.js';

/** What a volume now holds; hooks (Secret sync) derive their objects from it. */
export interface PublishedContent {
  request: PublishRequest;
  pod: k8s.V1Pod;
  spc: SecretProviderClass;
  files: FileSet;
}

export interface PublisherDeps {
  kube: KubeView;
  spcps: SpcpsWriter;
  source: SecretSource;
  credentials: CredentialProvider;
  log: Logger;
  /** Run after the files are written; a failure fails the publish. */
  onContent?: (content: PublishedContent) => Promise<void>;
}

export type RefreshOutcome = 'unchanged' | 'updated' | 'gone';

export class Publisher {
  readonly volumes = new VolumeRegistry();
  private readonly locks = new KeyedLock();

  constructor(private readonly deps: PublisherDeps) {}

  publish(req: PublishRequest): Promise<void> {
    return this.locks.run(req.targetPath, () => this.publishLocked(req));
  }

  /** Brings a mounted volume up to date with its SPC and, unless `specOnly`, with the store's `latest` values. */
  refresh(targetPath: string, source: SecretSource = this.deps.source, specOnly = false): Promise<RefreshOutcome> {
    return this.locks.run(targetPath, () => this.refreshLocked(targetPath, source, specOnly));
  }

  unpublish(targetPath: string): Promise<void> {
    return this.locks.run(targetPath, () => this.unpublishLocked(targetPath));
  }

  /** Takes over a volume mounted by an earlier run of the driver (see reconciler/recovery.ts). */
  adopt(volume: MountedVolume): Promise<void> {
    return this.locks.run(volume.request.targetPath, async () => {
      if (!this.volumes.get(volume.request.targetPath)) this.volumes.set(volume);
    });
  }

  private async publishLocked(req: PublishRequest): Promise<void> {
    const { log } = this.deps;
    log.info('Servicing mount request', { Pod: req.podName, Namespace: req.podNamespace, ServiceAccount: req.serviceAccount, SecretProviderClass: req.spcName });
    const t0 = performance.now();
    const plan = await planVolume(this.deps.kube, req);
    // Only at mount time: pods already running keep rotating whatever the count becomes.
    this.deps.kube.checkSpcLimit(plan.spc);
    const tPlan = performance.now();
    const known = this.volumes.get(req.targetPath);
    if (await isMountPoint(req.targetPath)) {
      if (known?.fingerprint === plan.fingerprint) {
        for (const v of known.versions) log.info(`object [${v.id}]'s version [${v.version}] doesn't change, read from local`);
        return;
      }
      await this.update(req, plan, known, this.deps.source);
      return;
    }
    // A fresh volume: mount while fetching; record the SPCPS as soon as the versions are
    // known, while the files are written. Any failure takes all of it back.
    const name = spcpsName(req.podName, req.podNamespace, req.spcName);
    const fetching = this.fetchContent(req, plan, undefined, this.deps.source);
    const mounting = mountTmpfs(req.targetPath);
    mounting.catch(() => undefined); // handled below; this keeps a failure while we await the fetch from counting as unhandled
    let recorded: Promise<unknown> | undefined;
    try {
      const content = await fetching;
      const tFetched = performance.now();
      recorded = this.deps.spcps.upsert(desiredSpcps(req, plan.pod.metadata!.uid!, this.deps.kube.nodeName, content.versions));
      await settleAll([mounting.then(() => this.write(req, content)), recorded]);
      const tWritten = performance.now();
      await this.deps.onContent?.({ request: req, pod: plan.pod, spc: plan.spc, files: content.files });
      this.remember(req, plan, content);
      const ms = (a: number, b: number) => (b - a).toFixed(1);
      log.v(4).info('Publish phases (ms)', { plan: ms(t0, tPlan), fetch: ms(tPlan, tFetched), writeAndStatus: ms(tFetched, tWritten), sync: ms(tWritten, performance.now()) });
    } catch (err) {
      await mounting.catch(() => undefined); // the mount may still be on its way: wait, then take it back
      await unmountAndRemove(req.targetPath).catch((e) => log.error('Cleanup after a failed mount failed', { target: req.targetPath, error: (e as Error).message }));
      if (recorded) await this.deps.spcps.delete(req.podNamespace, name).catch(() => undefined);
      throw err;
    }
  }

  private async refreshLocked(targetPath: string, source: SecretSource, specOnly: boolean): Promise<RefreshOutcome> {
    const known = this.volumes.get(targetPath);
    if (!known) return 'gone';
    const plan = await planVolume(this.deps.kube, known.request);
    if (plan.fingerprint === known.fingerprint) {
      if (specOnly) return 'unchanged';
      // Only `latest` objects can change by themselves; pinned versions never do.
      const latest = plan.objects.filter((o) => o.objectVersion === 'latest');
      if (latest.length === 0) return 'unchanged';
      const creds = await resolveCredentials(known.request.secrets, this.deps.credentials);
      const values = await source.fetch(latest.map((o) => ({ name: o.objectName, version: 'latest' })), creds);
      if (values.every((v) => known.digests[v.name] === digest(v.value))) return 'unchanged';
    }
    await this.update(known.request, plan, known, source);
    return 'updated';
  }

  /** Rewrites an existing volume: files first, then SPCPS and hooks; old files stay on any failure before the swap. */
  private async update(req: PublishRequest, plan: VolumePlan, known: MountedVolume | undefined, source: SecretSource): Promise<void> {
    if (!(await isMountPoint(req.targetPath))) {
      // Someone unmounted the tmpfs under a running pod: never put secrets on the node's
      // disk, nor take "local" pinned values from what lies under the mount point.
      this.deps.log.warn('Volume is no longer a tmpfs mount; mounting it again', { target: req.targetPath });
      await mountTmpfs(req.targetPath);
    }
    const content = await this.fetchContent(req, plan, known, source);
    await this.write(req, content);
    await this.deps.spcps.upsert(desiredSpcps(req, plan.pod.metadata!.uid!, this.deps.kube.nodeName, content.versions));
    await this.deps.onContent?.({ request: req, pod: plan.pod, spc: plan.spc, files: content.files });
    this.remember(req, plan, content);
  }

  /** Fetches what must be fetched; a pinned version already on disk is read from there. */
  private async fetchContent(req: PublishRequest, plan: VolumePlan, known: MountedVolume | undefined, source: SecretSource): Promise<VolumeContent> {
    const local = known ? readPublished(req.targetPath) : new Map<string, Buffer>();
    const values: (SecretVersion | undefined)[] = plan.objects.map((o) => {
      const had = known?.versions.find((v) => v.id === o.objectName);
      const value = local.get(o.fileName);
      if (o.objectVersion === 'latest' || had?.version !== o.objectVersion || !value) return undefined;
      this.deps.log.info(`object [${o.objectName}]'s version [${o.objectVersion}] doesn't change, read from local`);
      return { name: o.objectName, versionId: o.objectVersion, value };
    });
    const missing = plan.objects.filter((_, i) => !values[i]);
    if (missing.length > 0) {
      const creds = await resolveCredentials(req.secrets, this.deps.credentials);
      const fetched = await source.fetch(missing.map((o) => ({ name: o.objectName, version: o.objectVersion })), creds);
      for (const v of fetched) this.deps.log.info('Get secret successfully', { name: v.name, version: v.versionId });
      for (let i = 0, j = 0; i < values.length; i++) if (!values[i]) values[i] = fetched[j++];
    }
    return buildVolumeContent(plan.objects, values as SecretVersion[]);
  }

  private async write(req: PublishRequest, content: VolumeContent): Promise<void> {
    const changed = writeAtomically(req.targetPath, content.files);
    this.deps.log.v(2).info(changed ? 'Write secret files finished' : 'Secret files unchanged', { target: req.targetPath, files: content.files.size });
  }

  private remember(req: PublishRequest, plan: VolumePlan, content: VolumeContent): void {
    const name = spcpsName(req.podName, req.podNamespace, req.spcName);
    this.volumes.set({ request: req, spcpsName: name, fingerprint: plan.fingerprint, versions: content.versions, digests: content.digests });
  }

  private async unpublishLocked(targetPath: string): Promise<void> {
    const { log } = this.deps;
    await unmountAndRemove(targetPath);
    const known = this.volumes.get(targetPath);
    const found = known ? undefined : this.deps.spcps.findByTarget(targetPath);
    const spcps = known
      ? { namespace: known.request.podNamespace, name: known.spcpsName }
      : found && { namespace: found.metadata.namespace!, name: found.metadata.name };
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
