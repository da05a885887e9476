// The one path from (pod, SPC) to files and an SPCPS, used by NodePublishVolume, the
// rotation cycle and SPC edits alike. A fresh volume gets a tmpfs sized for the secrets
// fetched, and any failure takes everything back; an existing volume keeps its files
// unless the complete new content is in hand, and nothing is written that is unchanged.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import type { SecretProviderClass } from '../crds/types.js';
import type { Logger } from '../log.js';
import type { SecretVersion } from '../provider/csms-client.js';
import { resolveCredentials, type CredentialProvider } from '../provider/credentials.js';
import type { SecretSource } from '../provider/source.js';
import type { KubeView } from '../kube/view.js';
import { spcpsNames, type SpcpsWriter } from '../kube/spcps-writer.js';
import { readPublished, writeAtomically, type FileSet } from './atomic-writer.js';
import { buildVolumeContent, digest, type VolumeContent } from './files.js';
import { KeyedLock } from './keyed-lock.js';
import { errorMessage } from '../errors.js';
import { isMountPoint, mountTmpfs, resizeTmpfs, tmpfsSizeFor, unmountAndRemove } from './mounter.js';
import { desiredSpcps } from './spcps.js';
import { realFoldersUpTo } from './target-path.js';
import { planVolume, type VolumePlan } from './volume-plan.js';
import type { PublishRequest, UnpublishRequest } from './volume-request.js';
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
  /** kubelet's root folder: the driver touches nothing outside its pods' CSI volume folders. */
  kubeletRoot: string;
  volumes?: VolumeRegistry;
  spcps: SpcpsWriter;
  source: SecretSource;
  credentials: CredentialProvider;
  log: Logger;
  /** Run after the files are written; a failure fails the publish. */
  onContent?: (content: PublishedContent) => Promise<void>;
}

export type RefreshOutcome = 'unchanged' | 'updated' | 'gone';

export class Publisher {
  readonly volumes: VolumeRegistry;
  private readonly locks = new KeyedLock();

  constructor(private readonly deps: PublisherDeps) {
    this.volumes = deps.volumes ?? new VolumeRegistry();
  }

  publish(req: PublishRequest): Promise<void> {
    return this.locks.run(req.targetPath, () => this.publishLocked(req));
  }

  /** Brings a mounted volume up to date with its SPC and, unless `specOnly`, with the store's `latest` values. */
  refresh(targetPath: string, source: SecretSource = this.deps.source, specOnly = false): Promise<RefreshOutcome> {
    return this.locks.run(targetPath, () => this.refreshLocked(targetPath, source, specOnly));
  }

  unpublish(req: UnpublishRequest): Promise<void> {
    return this.locks.run(req.targetPath, () => this.unpublishLocked(req));
  }

  /** Takes over a volume mounted by an earlier run of the driver (see reconciler/recovery.ts). */
  adopt(volume: MountedVolume): Promise<void> {
    return this.locks.run(volume.request.targetPath, async () => {
      if (!this.volumes.get(volume.request.targetPath)) this.volumes.set(volume);
    });
  }

  private async publishLocked(req: PublishRequest): Promise<void> {
    const { log } = this.deps;
    log.info('Servicing mount request', {
      Pod: req.podName,
      Namespace: req.podNamespace,
      ServiceAccount: req.serviceAccount,
      SecretProviderClass: req.spcName,
    });
    const t0 = performance.now();
    const plan = await planVolume(this.deps.kube, req);
    // Only at mount time: pods already running keep rotating whatever the count becomes.
    await this.deps.kube.checkSpcLimit(plan.spc);
    if (!realFoldersUpTo(this.deps.kubeletRoot, req.targetPath, 'NodePublishVolume')) {
      await mkdir(dirname(req.targetPath), { recursive: true, mode: 0o750 });
    }
    const tPlan = performance.now();
    const known = this.volumes.get(req.targetPath);
    if (known && (await isMountPoint(req.targetPath))) {
      if (known.fingerprint === plan.fingerprint) {
        for (const v of known.versions)
          log.info(`object [${v.id}]'s version [${v.version}] doesn't change, read from local`);
        return;
      }
      await this.update(req, plan, known, this.deps.source);
      return;
    }
    // A fresh volume (anything mounted here that we do not know is covered, never written
    // into): fetch, then mount a tmpfs sized for the content and write the files while the
    // SPCPS is recorded. Any failure takes all of it back.
    const content = await this.fetchContent(req, plan, undefined, new Map(), this.deps.source);
    const tFetched = performance.now();
    const sizeBytes = tmpfsSizeFor(content.files);
    const recording = this.record(req, plan, content);
    let mounted = false;
    try {
      const [name] = await settleAll([
        recording,
        mountTmpfs(req.targetPath, sizeBytes).then(() => {
          mounted = true;
          this.write(req, content);
        }),
      ]);
      const tWritten = performance.now();
      await this.deps.onContent?.({ request: req, pod: plan.pod, spc: plan.spc, files: content.files });
      this.remember(req, plan, content, name, sizeBytes);
      const ms = (a: number, b: number) => (b - a).toFixed(1);
      log
        .v(4)
        .info('Publish phases (ms)', {
          plan: ms(t0, tPlan),
          fetch: ms(tPlan, tFetched),
          writeAndStatus: ms(tFetched, tWritten),
          sync: ms(tWritten, performance.now()),
        });
    } catch (err) {
      if (mounted) {
        await unmountAndRemove(req.targetPath, 1).catch((e) =>
          log.error('Cleanup after a failed mount failed', { target: req.targetPath, error: errorMessage(e) }),
        );
      }
      const name = await recording.catch(() => undefined);
      if (name) await this.deps.spcps.delete(req.podNamespace, name, req.podUid).catch(() => undefined);
      throw err;
    }
  }

  /** Records the SPCPS of a volume; resolves to the name it got (see spcpsNames). */
  private async record(req: PublishRequest, plan: VolumePlan, content: VolumeContent): Promise<string> {
    const [primary, alternative] = spcpsNames(req.podName, req.podNamespace, req.spcName);
    const desired = desiredSpcps(req, plan.pod.metadata!.uid!, this.deps.kube.nodeName, content.versions, primary);
    return (await this.deps.spcps.upsert(desired, alternative)).name;
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
      const values = await source.fetch(
        latest.map((o) => ({ name: o.objectName, version: 'latest' })),
        creds,
      );
      if (values.every((v) => known.digests[v.name] === digest(v.value))) return 'unchanged';
    }
    await this.update(known.request, plan, known, source);
    return 'updated';
  }

  /** Rewrites an existing volume: files first, then SPCPS and hooks; old files stay on any failure before the swap. */
  private async update(
    req: PublishRequest,
    plan: VolumePlan,
    known: MountedVolume,
    source: SecretSource,
  ): Promise<void> {
    const mounted = await isMountPoint(req.targetPath);
    // Pinned values come only from our tmpfs, never from the folder under its mount point.
    const content = await this.fetchContent(
      req,
      plan,
      known,
      mounted ? readPublished(req.targetPath) : new Map(),
      source,
    );
    const sizeBytes = Math.max(known.sizeBytes, tmpfsSizeFor(content.files));
    if (!mounted) {
      // Someone unmounted the tmpfs under a running pod: never put secrets on the node's disk.
      this.deps.log.warn('Volume is no longer a tmpfs mount; mounting it again', { target: req.targetPath });
      await mountTmpfs(req.targetPath, sizeBytes);
    } else if (sizeBytes > known.sizeBytes) {
      await resizeTmpfs(req.targetPath, sizeBytes);
    }
    this.write(req, content);
    const name = await this.record(req, plan, content);
    await this.deps.onContent?.({ request: req, pod: plan.pod, spc: plan.spc, files: content.files });
    this.remember(req, plan, content, name, sizeBytes);
  }

  /**
   * Fetches what must be fetched; a pinned version already in `local`, the files of a
   * volume this driver wrote (or adopted as its own), is taken from there.
   */
  private async fetchContent(
    req: PublishRequest,
    plan: VolumePlan,
    known: MountedVolume | undefined,
    local: FileSet,
    source: SecretSource,
  ): Promise<VolumeContent> {
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
      const fetched = await source.fetch(
        missing.map((o) => ({ name: o.objectName, version: o.objectVersion })),
        creds,
      );
      for (const v of fetched) this.deps.log.info('Get secret successfully', { name: v.name, version: v.versionId });
      for (let i = 0, j = 0; i < values.length; i++) if (!values[i]) values[i] = fetched[j++];
    }
    return buildVolumeContent(plan.objects, values as SecretVersion[]);
  }

  private write(req: PublishRequest, content: VolumeContent): void {
    const changed = writeAtomically(req.targetPath, content.files);
    this.deps.log
      .v(2)
      .info(changed ? 'Write secret files finished' : 'Secret files unchanged', {
        target: req.targetPath,
        files: content.files.size,
      });
  }

  private remember(
    req: PublishRequest,
    plan: VolumePlan,
    content: VolumeContent,
    spcpsName: string,
    sizeBytes: number,
  ): void {
    this.volumes.set({
      request: req,
      spcpsName,
      fingerprint: plan.fingerprint,
      versions: content.versions,
      digests: content.digests,
      sizeBytes,
    });
  }

  private async unpublishLocked(req: UnpublishRequest): Promise<void> {
    const { log } = this.deps;
    const { targetPath } = req;
    // A missing folder has nothing to unmount; a link on the way is refused, never followed.
    if (realFoldersUpTo(this.deps.kubeletRoot, targetPath, 'NodeUnpublishVolume')) await unmountAndRemove(targetPath);
    const known = this.volumes.get(targetPath);
    this.volumes.delete(targetPath);
    if (known) {
      const { podNamespace: namespace } = known.request;
      // Unknown volumes are left to the garbage collector (the SPCPS is owned by the pod).
      await this.deps.spcps
        .delete(namespace, known.spcpsName, known.request.podUid)
        .catch((err) =>
          log.warn('Deleting SecretProviderClassPodStatus failed; garbage collection will remove it', {
            spcps: `${namespace}/${known.spcpsName}`,
            error: errorMessage(err),
          }),
        );
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
