// What the driver keeps about each volume it holds: its SPCPS in the cluster, its entry in
// the registry (versions, digests, size: what a refresh compares against), and what the
// Namespace permit does not cover, reported once and again when that changes.
import { errorMessage } from '../errors.js';
import { spcpsNames, type SpcpsStore } from '../kube/spcps-writer.js';
import type { Logger } from '../log.js';
import type { UnpermittedReport } from '../access/permit-audit.js';
import type { VolumeContent } from '../provider/volume-content.js';
import { desiredSpcps } from './spcps.js';
import type { VolumePlan } from './volume-plan.js';
import type { PublishRequest } from './volume-request.js';
import type { MountedVolume, VolumeRegistry } from './volumes.js';

export interface VolumeRecordsDeps {
  cluster: { nodeName: string };
  spcps: SpcpsStore;
  volumes: VolumeRegistry;
  log: Logger;
  onUnpermitted?: UnpermittedReport;
}

export class VolumeRecords {
  constructor(private readonly deps: VolumeRecordsDeps) {}

  /** Records the SPCPS of a volume; resolves to the name it got (see spcpsNames). */
  async record(req: PublishRequest, plan: VolumePlan, content: VolumeContent): Promise<string> {
    const [primary, alternative] = spcpsNames(req.podName, req.podNamespace, req.spcName);
    const podUid = plan.pod.metadata!.uid!;
    const desired = desiredSpcps(req, podUid, this.deps.cluster.nodeName, content.versions, primary);
    return (await this.deps.spcps.upsert(desired, alternative)).name;
  }

  /** The volume now holds `content`, recorded as `spcpsName`, on a tmpfs of `sizeBytes`. */
  remember(req: PublishRequest, plan: VolumePlan, content: VolumeContent, spcpsName: string, sizeBytes: number): void {
    const { versions, digests } = content;
    const unpermitted = this.deps.volumes.get(req.targetPath)?.unpermitted;
    const volume = {
      request: req,
      spcpsName,
      fingerprint: plan.fingerprint,
      versions,
      digests,
      sizeBytes,
      unpermitted,
    };
    this.deps.volumes.set(volume);
    this.audit(volume, plan);
  }

  /** Keeps what the permit does not cover with the volume, and reports it when that changes. */
  audit(volume: MountedVolume, plan: VolumePlan): void {
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

  /** The volume's SPCPS goes; a failure leaves it to garbage collection, which follows the pod. */
  async forget(known: MountedVolume): Promise<void> {
    const { podNamespace: namespace, podUid } = known.request;
    await this.deps.spcps.delete(namespace, known.spcpsName, podUid).catch((err) =>
      this.deps.log.warn('Deleting SecretProviderClassPodStatus failed; garbage collection will remove it', {
        spcps: `${namespace}/${known.spcpsName}`,
        error: errorMessage(err),
      }),
    );
  }
}
