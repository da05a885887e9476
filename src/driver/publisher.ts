// The one path from (pod, SPC) to files and an SPCPS, used by NodePublishVolume, the
// rotation cycle and SPC edits alike, for the built-in CSMS provider (its objects, fetched
// from the SecretSource) and for external providers (their answer to Mount) alike. A
// fresh volume gets a tmpfs sized for its content, and any failure or cancellation takes
// everything back; an existing volume
// keeps its files unless the complete new content is in hand, and nothing is written
// that is unchanged. Mounts, files, the cluster and the clock all come in through
// PublisherDeps, so every branch is testable without root or an API server.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { BUILTIN_PROVIDER, type SecretProviderClass } from '../crds/types.js';
import type { NamespacePolicy } from '../access/namespace-permit.js';
import type { UnpermittedReport } from '../access/permit-audit.js';
import { errorMessage, NotPermittedError, PreconditionError } from '../errors.js';
import { spcpsNames, type SpcpsStore } from '../kube/spcps-writer.js';
import type { Logger } from '../log.js';
import { resolveCredentials, type CredentialProvider } from '../provider/credentials.js';
import type { SecretSource, SecretVersion } from '../provider/source.js';
import { settleAll } from '../util/async.js';
import { filePerms, type FileSet, type VolumeWriter } from './atomic-writer.js';
import {
  buildVolumeContent,
  checkVolumeSize,
  DEFAULT_VOLUME_LIMITS,
  digest,
  type VolumeContent,
  type VolumeLimits,
} from '../provider/volume-content.js';
import { providerMountRequest, providerContent, type ProviderCaller } from './provider-content.js';
import { DeferredWork } from './deferred-work.js';
import { KeyedLock } from './keyed-lock.js';
import { tmpfsSizeFor, type Mounter } from './mounter.js';
import { desiredSpcps } from './spcps.js';
import { realFoldersUpTo } from './target-path.js';
import { planVolume, type ClusterReads, type VolumePlan } from './volume-plan.js';
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
  cluster: ClusterReads;
  /** kubelet's root folder: the driver touches nothing outside its pods' CSI volume folders. */
  kubeletRoot: string;
  volumes?: VolumeRegistry;
  spcps: SpcpsStore;
  source: SecretSource;
  credentials: CredentialProvider;
  /** External providers (SPCs whose provider is not `cce`); without it such SPCs are refused. */
  providers?: ProviderCaller;
  mounter: Mounter;
  writer: VolumeWriter;
  /** Milliseconds on a monotonic clock, for the phase timings in the log. */
  now?: () => number;
  log: Logger;
  /** Run after the files are written; a failure fails the publish. */
  onContent?: (content: PublishedContent) => Promise<void>;
  /** What one volume may hold, and the time its jmesPath entries may take; default DEFAULT_VOLUME_LIMITS. */
  limits?: VolumeLimits;
  /** How the Namespace permit applies (access/namespace-permit.ts); default off. */
  namespacePolicy?: NamespacePolicy;
  /** Audit: a volume mounts secrets no Namespace permit covers (told once, and again when that changes). */
  onUnpermitted?: UnpermittedReport;
}

export interface RefreshOptions {
  /** Where values come from (a rotation cycle shares one source across volumes). */
  source?: SecretSource;
  /** Only what the SPC says: `latest` values are not read again. */
  specOnly?: boolean;
  signal?: AbortSignal;
}

/**
 * `withheld`: the Namespace permit no longer covers the volume, which keeps its files and
 * was told so before; `resumed`: it covers it again, and nothing else changed.
 */
export type RefreshOutcome = 'unchanged' | 'updated' | 'gone' | 'withheld' | 'resumed';

export class Publisher {
  readonly volumes: VolumeRegistry;
  private readonly locks = new KeyedLock();
  private readonly deferred = new DeferredWork({
    quietMs: 100,
    maxDelayMs: 5_000,
    concurrency: 4,
    run: (target, task) => this.locks.run(target, task),
  });
  private readonly now: () => number;
  private readonly limits: VolumeLimits;

  constructor(private readonly deps: PublisherDeps) {
    this.volumes = deps.volumes ?? new VolumeRegistry();
    this.now = deps.now ?? (() => performance.now());
    this.limits = deps.limits ?? DEFAULT_VOLUME_LIMITS;
  }

  /**
   * With `signal`, a publish cancelled before it is done takes back everything it made.
   * `labels.provider` is set as soon as the SPC is read, for the caller's metrics.
   */
  publish(req: PublishRequest, signal?: AbortSignal, labels: { provider?: string } = {}): Promise<void> {
    return this.deferred.during(() =>
      this.locks.run(req.targetPath, async () => {
        // The clean-up of this volume's last unpublish, if still waiting, comes first.
        await this.deferred.take(req.targetPath)?.();
        return this.publishLocked(req, signal, labels);
      }),
    );
  }

  /** Brings a mounted volume up to date with its SPC and, unless `specOnly`, with the store's `latest` values. */
  refresh(targetPath: string, opts: RefreshOptions = {}): Promise<RefreshOutcome> {
    return this.locks.run(targetPath, () => this.refreshLocked(targetPath, opts));
  }

  /**
   * Always runs to the end: kubelet retries an unpublish until it succeeds. Kubelet has its
   * answer once the tmpfs is gone; the SPCPS delete is deferred (deferred-work.ts) until no
   * kubelet call is waiting, and a publish of the same volume runs it first. If the driver
   * stops before that, garbage collection deletes the SPCPS with its pod.
   */
  unpublish(req: UnpublishRequest): Promise<void> {
    return this.deferred.during(() =>
      this.locks.run(req.targetPath, async () => {
        await this.deferred.take(req.targetPath)?.();
        const known = await this.unpublishLocked(req);
        if (known) this.deferred.add(req.targetPath, () => this.forgetStatus(known));
      }),
    );
  }

  /** Runs the deferred SPCPS deletes now and resolves once they are done (shutdown, tests). */
  settled(): Promise<void> {
    return this.deferred.settled();
  }

  /** Takes over a volume mounted by an earlier run of the driver (see reconciler/recovery.ts). */
  adopt(volume: MountedVolume): Promise<void> {
    return this.locks.run(volume.request.targetPath, async () => {
      if (!this.volumes.get(volume.request.targetPath)) this.volumes.set(volume);
    });
  }

  private async publishLocked(
    req: PublishRequest,
    signal: AbortSignal | undefined,
    labels: { provider?: string },
  ): Promise<void> {
    const { log, cluster } = this.deps;
    log.info('Servicing mount request', {
      Pod: req.podName,
      Namespace: req.podNamespace,
      ServiceAccount: req.serviceAccount,
      SecretProviderClass: req.spcName,
      // Which audiences kubelet sent tokens for; the tokens themselves are never logged.
      tokenAudiences: req.serviceAccountTokens ? Object.keys(req.serviceAccountTokens).join(',') : undefined,
    });
    const t0 = this.now();
    const plan = await planVolume(cluster, req, this.deps.namespacePolicy);
    // spec.provider is the user's text: only a provider that exists becomes a metric label.
    const real = plan.provider === BUILTIN_PROVIDER || this.deps.providers?.has(plan.provider);
    labels.provider = real ? plan.provider : 'unknown';
    // Only at mount time: pods already running keep rotating whatever the count becomes.
    await cluster.checkSpcLimit(plan.spc);
    signal?.throwIfAborted();
    if (!realFoldersUpTo(this.deps.kubeletRoot, req.targetPath, 'NodePublishVolume')) {
      await mkdir(dirname(req.targetPath), { recursive: true, mode: 0o750 });
    }
    const known = this.volumes.get(req.targetPath);
    if (known && (await this.deps.mounter.isMountPoint(req.targetPath))) {
      if (known.fingerprint !== plan.fingerprint) return this.update(req, plan, known, this.deps.source, signal);
      this.audit(known, plan);
      for (const v of known.versions)
        log.info(`object [${v.id}]'s version [${v.version}] doesn't change, read from local`);
      return;
    }
    await this.publishFresh(req, plan, t0, signal);
  }

  /**
   * A fresh volume (anything mounted here that we do not know is covered, never written
   * into): fetch, then mount a tmpfs sized for the content and write the files while the
   * SPCPS is recorded. Any failure takes all of it back.
   */
  private async publishFresh(req: PublishRequest, plan: VolumePlan, t0: number, signal?: AbortSignal): Promise<void> {
    const { mounter, log } = this.deps;
    const tPlan = this.now();
    const content = await this.fetchContent(req, plan, undefined, new Map(), this.deps.source, signal);
    signal?.throwIfAborted();
    const tFetched = this.now();
    const sizeBytes = tmpfsSizeFor(content.files);
    const recording = this.record(req, plan, content);
    let mounted = false;
    try {
      const mounting = mounter.mount(req.targetPath, sizeBytes).then(() => {
        mounted = true;
        this.write(req, plan, content);
      });
      const [name] = await settleAll([recording, mounting]);
      signal?.throwIfAborted();
      const tWritten = this.now();
      await this.deps.onContent?.({ request: req, pod: plan.pod, spc: plan.spc, files: content.files });
      signal?.throwIfAborted();
      this.remember(req, plan, content, name, sizeBytes);
      const ms = (a: number, b: number) => (b - a).toFixed(1);
      const phases = { plan: ms(t0, tPlan), fetch: ms(tPlan, tFetched), writeAndStatus: ms(tFetched, tWritten) };
      log.v(4).info('Publish phases (ms)', { ...phases, sync: ms(tWritten, this.now()) });
    } catch (err) {
      await this.takeBack(req, mounted, recording);
      throw err;
    }
  }

  /** Undoes a fresh publish that failed: the tmpfs (with its files) and the SPCPS go. */
  private async takeBack(req: PublishRequest, mounted: boolean, recording: Promise<string>): Promise<void> {
    if (mounted) {
      await this.deps.mounter.unmountAndRemove(req.targetPath, 1).catch((e) =>
        this.deps.log.error('Cleanup after a failed mount failed', {
          target: req.targetPath,
          error: errorMessage(e),
        }),
      );
    }
    const name = await recording.catch(() => undefined);
    if (name) await this.deps.spcps.delete(req.podNamespace, name, req.podUid).catch(() => undefined);
  }

  /** Records the SPCPS of a volume; resolves to the name it got (see spcpsNames). */
  private async record(req: PublishRequest, plan: VolumePlan, content: VolumeContent): Promise<string> {
    const [primary, alternative] = spcpsNames(req.podName, req.podNamespace, req.spcName);
    const podUid = plan.pod.metadata!.uid!;
    const desired = desiredSpcps(req, podUid, this.deps.cluster.nodeName, content.versions, primary);
    return (await this.deps.spcps.upsert(desired, alternative)).name;
  }

  private async refreshLocked(targetPath: string, opts: RefreshOptions): Promise<RefreshOutcome> {
    const known = this.volumes.get(targetPath);
    if (!known) return 'gone';
    let plan: VolumePlan;
    try {
      plan = await planVolume(this.deps.cluster, known.request, this.deps.namespacePolicy);
    } catch (err) {
      // Refused by the permit: the files stay, and the pod hears it once, not every cycle.
      if (!(err instanceof NotPermittedError)) throw err;
      if (known.withheld === err.message) return 'withheld';
      known.withheld = err.message;
      throw err;
    }
    const resumed = known.withheld !== undefined;
    known.withheld = undefined;
    this.audit(known, plan);
    const outcome = await this.refreshPlanned(known, plan, opts);
    return resumed && outcome === 'unchanged' ? 'resumed' : outcome;
  }

  private async refreshPlanned(known: MountedVolume, plan: VolumePlan, opts: RefreshOptions): Promise<RefreshOutcome> {
    const { source = this.deps.source, specOnly = false, signal } = opts;
    if (plan.provider !== BUILTIN_PROVIDER) return this.refreshExternal(known, plan, opts);
    if (plan.fingerprint === known.fingerprint) {
      if (specOnly) return 'unchanged';
      // Only `latest` objects can change by themselves; pinned versions never do.
      const latest = plan.objects.filter((o) => o.objectVersion === 'latest');
      if (latest.length === 0) return 'unchanged';
      const creds = await resolveCredentials(known.request.secrets, this.deps.credentials);
      const asked = latest.map((o) => ({ name: o.objectName, version: 'latest' }));
      const values = await source.fetch(asked, creds, signal);
      if (values.every((v) => known.digests[v.name] === digest(v.value))) return 'unchanged';
    }
    await this.update(known.request, plan, known, source, signal);
    return 'updated';
  }

  /** An external provider is asked again, with the versions the volume holds; only a different answer is written. */
  private async refreshExternal(known: MountedVolume, plan: VolumePlan, opts: RefreshOptions): Promise<RefreshOutcome> {
    const { specOnly = false, signal } = opts;
    if (specOnly && plan.fingerprint === known.fingerprint) return 'unchanged';
    const content = await this.fetchExternal(known.request, plan, known, signal);
    const same = (a: Record<string, string>, b: Record<string, string>) =>
      Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);
    const sameVersions = JSON.stringify(content.versions) === JSON.stringify(known.versions);
    if (plan.fingerprint === known.fingerprint && sameVersions && same(content.digests, known.digests))
      return 'unchanged';
    await this.update(known.request, plan, known, this.deps.source, signal, content);
    return 'updated';
  }

  /** Rewrites an existing volume: files first, then SPCPS and hooks; old files stay on any failure before the swap. */
  private async update(
    req: PublishRequest,
    plan: VolumePlan,
    known: MountedVolume,
    source: SecretSource,
    signal?: AbortSignal,
    fetched?: VolumeContent,
  ): Promise<void> {
    const { mounter, writer } = this.deps;
    const mounted = await mounter.isMountPoint(req.targetPath);
    // Pinned values come only from our tmpfs, never from the folder under its mount point.
    const local = mounted && !fetched ? writer.read(req.targetPath) : new Map<string, Buffer>();
    const content = fetched ?? (await this.fetchContent(req, plan, known, local, source, signal));
    signal?.throwIfAborted();
    const sizeBytes = Math.max(known.sizeBytes, tmpfsSizeFor(content.files));
    if (!mounted) {
      // Someone unmounted the tmpfs under a running pod: never put secrets on the node's disk.
      this.deps.log.warn('Volume is no longer a tmpfs mount; mounting it again', { target: req.targetPath });
      await mounter.mount(req.targetPath, sizeBytes);
    } else if (sizeBytes > known.sizeBytes) {
      await mounter.resize(req.targetPath, sizeBytes);
    }
    this.write(req, plan, content);
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
    signal?: AbortSignal,
  ): Promise<VolumeContent> {
    if (plan.provider !== BUILTIN_PROVIDER) return this.fetchExternal(req, plan, known, signal);
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
      const asked = missing.map((o) => ({ name: o.objectName, version: o.objectVersion }));
      const fetched = await source.fetch(asked, creds, signal);
      for (const v of fetched) this.deps.log.info('Get secret successfully', { name: v.name, version: v.versionId });
      for (let i = 0, j = 0; i < values.length; i++) if (!values[i]) values[i] = fetched[j++];
    }
    const ref = `${req.podNamespace}/${req.spcName}`;
    return buildVolumeContent(ref, plan.objects, values as SecretVersion[], this.limits);
  }

  private async fetchExternal(
    req: PublishRequest,
    plan: VolumePlan,
    known: MountedVolume | undefined,
    signal?: AbortSignal,
  ): Promise<VolumeContent> {
    const { providers } = this.deps;
    if (!providers) {
      throw new PreconditionError(
        `SecretProviderClass ${req.podNamespace}/${req.spcName}: spec.provider is "${plan.provider}"; this driver serves provider "${BUILTIN_PROVIDER}" only (external providers are off)`,
      );
    }
    const request = providerMountRequest(req, plan, known?.versions ?? []);
    const content = await providerContent(providers, plan.provider, request, signal);
    checkVolumeSize(`SecretProviderClass ${req.podNamespace}/${req.spcName}`, content.files, this.limits);
    return content;
  }

  private write(req: PublishRequest, plan: VolumePlan, content: VolumeContent): void {
    const perms = filePerms(content.modes, content.files, plan.pod.spec?.securityContext?.fsGroup);
    const changed = this.deps.writer.write(req.targetPath, content.files, perms);
    const message = changed ? 'Write secret files finished' : 'Secret files unchanged';
    this.deps.log.v(2).info(message, { target: req.targetPath, files: content.files.size });
  }

  private remember(
    req: PublishRequest,
    plan: VolumePlan,
    content: VolumeContent,
    spcpsName: string,
    sizeBytes: number,
  ): void {
    const { versions, digests } = content;
    const unpermitted = this.volumes.get(req.targetPath)?.unpermitted;
    const volume = {
      request: req,
      spcpsName,
      fingerprint: plan.fingerprint,
      versions,
      digests,
      sizeBytes,
      unpermitted,
    };
    this.volumes.set(volume);
    this.audit(volume, plan);
  }

  /** Keeps what the permit does not cover with the volume, and reports it when that changes. */
  private audit(volume: MountedVolume, plan: VolumePlan): void {
    const before = volume.unpermitted ?? [];
    volume.unpermitted = plan.unpermitted?.denied;
    const now = volume.unpermitted ?? [];
    if (now.length === 0 || now.join('\0') === before.join('\0')) return;
    const { podName: name, podNamespace: namespace, podUid: uid, spcName, targetPath } = volume.request;
    this.deps.onUnpermitted?.(
      { name, namespace, uid },
      { spc: `${namespace}/${spcName}`, targetPath },
      plan.unpermitted!,
    );
  }

  private async unpublishLocked(req: UnpublishRequest): Promise<MountedVolume | undefined> {
    const { log } = this.deps;
    const { targetPath } = req;
    // A missing folder has nothing to unmount; a link on the way is refused, never followed.
    if (realFoldersUpTo(this.deps.kubeletRoot, targetPath, 'NodeUnpublishVolume')) {
      await this.deps.mounter.unmountAndRemove(targetPath);
    }
    const known = this.volumes.get(targetPath);
    this.volumes.delete(targetPath);
    log.info('Unmounted volume', { target: targetPath });
    // Unknown volumes are left to the garbage collector (the SPCPS is owned by the pod).
    return known;
  }

  private async forgetStatus(known: MountedVolume): Promise<void> {
    const { podNamespace: namespace, podUid } = known.request;
    await this.deps.spcps.delete(namespace, known.spcpsName, podUid).catch((err) =>
      this.deps.log.warn('Deleting SecretProviderClassPodStatus failed; garbage collection will remove it', {
        spcps: `${namespace}/${known.spcpsName}`,
        error: errorMessage(err),
      }),
    );
  }
}
