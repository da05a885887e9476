// The one path from (pod, SPC) to files and an SPCPS, used by NodePublishVolume, the
// rotation cycle and SPC edits alike, whatever the SPC's provider: the plan picks the
// volume's source once (volume-source.ts: the built-in CSMS provider or an external one).
// A fresh volume gets a tmpfs sized for its content, and any failure or cancellation takes
// everything back; an existing volume keeps its files unless the complete new content is in
// hand, and nothing is written that is unchanged. Mounts, files, the cluster and the clock
// all come in through PublisherDeps, so every branch is testable without root or an API server.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BUILTIN_PROVIDER } from '../crds/types.js';
import { errorMessage, NotPermittedError } from '../errors.js';
import { settleAll } from '../util/async.js';
import { filePerms } from './atomic-writer.js';
import { DEFAULT_VOLUME_LIMITS, type VolumeContent } from '../provider/volume-content.js';
import { CsmsVolumeSource } from './csms-volume-source.js';
import { ProviderVolumeSource } from './provider-volume-source.js';
import { DeferredWork } from './deferred-work.js';
import { KeyedLock } from './keyed-lock.js';
import { tmpfsSizeFor } from './mounter.js';
import type { PublisherDeps, RefreshOptions, RefreshOutcome } from './publisher-deps.js';
import { realFoldersUpTo } from './target-path.js';
import { planVolume, type VolumePlan } from './volume-plan.js';
import type { PublishRequest, UnpublishRequest } from './volume-request.js';
import { VolumeRecords } from './volume-records.js';
import type { ContentJob, VolumeSource } from './volume-source.js';
import { VolumeRegistry, type MountedVolume } from './volumes.js';

/** A volume's plan with the source its provider picked. */
type Planned = VolumePlan & { source: VolumeSource };

/** An update of a volume this driver holds. */
type UpdateJob = Omit<ContentJob, 'local'> & { plan: Planned; known: MountedVolume };

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
  private readonly records: VolumeRecords;
  private readonly builtin: VolumeSource;
  private readonly external: VolumeSource;

  constructor(private readonly deps: PublisherDeps) {
    this.volumes = deps.volumes ?? new VolumeRegistry();
    this.records = new VolumeRecords({ ...deps, volumes: this.volumes });
    this.now = deps.now ?? (() => performance.now());
    const limits = deps.limits ?? DEFAULT_VOLUME_LIMITS;
    this.builtin = new CsmsVolumeSource(deps.credentials, limits, deps.log);
    this.external = new ProviderVolumeSource(deps.providers, limits);
  }

  private async plan(req: PublishRequest): Promise<Planned> {
    const plan = await planVolume(this.deps.cluster, req, this.deps.namespacePolicy);
    return { ...plan, source: plan.provider === BUILTIN_PROVIDER ? this.builtin : this.external };
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
        if (known) this.deferred.add(req.targetPath, () => this.records.forget(known));
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
    const plan = await this.plan(req);
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
      if (known.fingerprint !== plan.fingerprint) {
        return this.update({ req, plan, known, values: this.deps.source, signal });
      }
      this.records.audit(known, plan);
      this.keepNewTokens(known, req, plan);
      for (const v of known.versions)
        log.info(`object [${v.id}]'s version [${v.version}] doesn't change, read from local`);
      return;
    }
    await this.publishFresh(req, plan, t0, signal);
  }

  /**
   * kubelet's republish (requiresRepublish) passes fresh ServiceAccount tokens: later refreshes
   * of the volume read with them, so rotation outlives the token it was mounted with. They stay
   * in memory only.
   */
  private keepNewTokens(known: MountedVolume, req: PublishRequest, plan: Planned): void {
    const fresh = req.serviceAccountTokens;
    if (!fresh || JSON.stringify(fresh) === JSON.stringify(known.request.serviceAccountTokens)) return;
    known.request = { ...known.request, serviceAccountTokens: fresh };
    // Only a volume read with its pod's identity can have failed for want of a token.
    if (plan.source === this.builtin && this.deps.credentials.usesPodIdentity(plan))
      this.deps.onNewTokens?.(req.targetPath);
  }

  /**
   * A fresh volume (anything mounted here that we do not know is covered, never written
   * into): fetch, then mount a tmpfs sized for the content and write the files while the
   * SPCPS is recorded. Any failure takes all of it back.
   */
  private async publishFresh(req: PublishRequest, plan: Planned, t0: number, signal?: AbortSignal): Promise<void> {
    const { mounter, log } = this.deps;
    const tPlan = this.now();
    const content = await plan.source.fetch({ req, plan, local: new Map(), values: this.deps.source, signal });
    signal?.throwIfAborted();
    const tFetched = this.now();
    const sizeBytes = tmpfsSizeFor(content.files);
    // The SPCPS is recorded while the tmpfs is mounted and written: each ends on its own.
    const at = { mounted: 0, written: 0, recorded: 0 };
    const recording = this.records.record(req, plan, content).then((name) => ((at.recorded = this.now()), name));
    let mounted = false;
    try {
      const mounting = mounter.mount(req.targetPath, sizeBytes).then(() => {
        mounted = true;
        at.mounted = this.now();
        this.write(req, plan, content);
        at.written = this.now();
      });
      const [name] = await settleAll([recording, mounting]);
      signal?.throwIfAborted();
      const tWritten = this.now();
      await this.deps.onContent?.({ request: req, pod: plan.pod, spc: plan.spc, files: content.files });
      signal?.throwIfAborted();
      this.records.remember(req, plan, content, name, sizeBytes);
      const ms = (a: number, b: number) => (b - a).toFixed(2);
      log.v(4).info('Publish phases (ms)', {
        ...{ plan: ms(t0, tPlan), fetch: ms(tPlan, tFetched), mount: ms(tFetched, at.mounted) },
        ...{ files: ms(at.mounted, at.written), status: ms(tFetched, at.recorded), sync: ms(tWritten, this.now()) },
      });
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

  private async refreshLocked(targetPath: string, opts: RefreshOptions): Promise<RefreshOutcome> {
    const known = this.volumes.get(targetPath);
    if (!known) return 'gone';
    let plan: Planned;
    try {
      plan = await this.plan(known.request);
    } catch (err) {
      // Refused by the permit: the files stay, and the pod hears it once, not every cycle.
      if (!(err instanceof NotPermittedError)) throw err;
      if (known.withheld === err.message) return 'withheld';
      known.withheld = err.message;
      throw err;
    }
    const resumed = known.withheld !== undefined;
    known.withheld = undefined;
    this.records.audit(known, plan);
    const outcome = await this.refreshPlanned(known, plan, opts);
    return resumed && outcome === 'unchanged' ? 'resumed' : outcome;
  }

  private async refreshPlanned(known: MountedVolume, plan: Planned, opts: RefreshOptions): Promise<RefreshOutcome> {
    const { source: values = this.deps.source, specOnly = false, signal } = opts;
    const job: UpdateJob = { req: known.request, plan, known, values, signal };
    if (plan.fingerprint !== known.fingerprint) {
      await this.update(job);
      return 'updated';
    }
    if (specOnly) return 'unchanged';
    const stale = await plan.source.stale({ ...job, local: new Map() });
    if (!stale) return 'unchanged';
    await this.update(job, stale.content);
    return 'updated';
  }

  /** Rewrites an existing volume: files first, then SPCPS and hooks; old files stay on any failure before the swap. */
  private async update(job: UpdateJob, fetched?: VolumeContent): Promise<void> {
    const { req, plan, known, signal } = job;
    const { mounter, writer } = this.deps;
    const mounted = await mounter.isMountPoint(req.targetPath);
    // Pinned values (CSMS only) come only from our tmpfs, never from the folder under its mount point.
    const pinned = mounted && !fetched && plan.source === this.builtin;
    const local = pinned ? writer.read(req.targetPath) : new Map<string, Buffer>();
    const content = fetched ?? (await plan.source.fetch({ ...job, local }));
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
    const name = await this.records.record(req, plan, content);
    await this.deps.onContent?.({ request: req, pod: plan.pod, spc: plan.spc, files: content.files });
    this.records.remember(req, plan, content, name, sizeBytes);
  }

  private write(req: PublishRequest, plan: VolumePlan, content: VolumeContent): void {
    const perms = filePerms(content.modes, content.files, plan.pod.spec?.securityContext?.fsGroup);
    const changed = this.deps.writer.write(req.targetPath, content.files, perms);
    const message = changed ? 'Write secret files finished' : 'Secret files unchanged';
    this.deps.log.v(2).info(message, { target: req.targetPath, files: content.files.size });
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
}
