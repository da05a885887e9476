// What this process knows about the volumes it has mounted; the reconciler walks it.
import type { SpcpsObjectVersion } from '../crds/types.js';
import type { VolumeUsage } from '../kube/view.js';
import type { PermitState } from '../metrics.js';
import type { PublishRequest } from './volume-request.js';

export interface MountedVolume {
  request: PublishRequest;
  spcpsName: string;
  /** VolumePlan.fingerprint of the content on disk ('' when unknown, e.g. after a restart). */
  fingerprint: string;
  versions: SpcpsObjectVersion[];
  /** sha256 of each object's value by objectName, to see a rotation changed nothing without reading files. */
  digests: Record<string, string>;
  /** The tmpfs size bound, grown before a larger content is written. */
  sizeBytes: number;
  /** Namespace policy audit: the secrets it mounts that no Namespace permit covers. */
  unpermitted?: string[];
  /** Namespace policy enforce: the refusal already reported for this volume, which then gets no new values. */
  withheld?: string;
}

export class VolumeRegistry implements VolumeUsage {
  private readonly byTarget = new Map<string, MountedVolume>();
  private readonly spcUsers = new Counts();
  private readonly saUsers = new Counts();
  private readonly namespaceUsers = new Counts();

  get(targetPath: string): MountedVolume | undefined {
    return this.byTarget.get(targetPath);
  }

  set(volume: MountedVolume): void {
    this.delete(volume.request.targetPath);
    this.byTarget.set(volume.request.targetPath, volume);
    this.spcUsers.add(spcKey(volume.request), 1);
    this.saUsers.add(saKey(volume.request), 1);
    this.namespaceUsers.add(volume.request.podNamespace, 1);
  }

  delete(targetPath: string): void {
    const old = this.byTarget.get(targetPath);
    if (!old) return;
    this.byTarget.delete(targetPath);
    this.spcUsers.add(spcKey(old.request), -1);
    this.saUsers.add(saKey(old.request), -1);
    this.namespaceUsers.add(old.request.podNamespace, -1);
  }

  usesSpc(namespace: string, name: string): boolean {
    return this.spcUsers.has(`${namespace}/${name}`);
  }

  usesServiceAccount(namespace: string, name: string): boolean {
    return this.saUsers.has(`${namespace}/${name}`);
  }

  usesNamespace(name: string): boolean {
    return this.namespaceUsers.has(name);
  }

  all(): MountedVolume[] {
    return [...this.byTarget.values()];
  }

  /** Volumes of pods in `namespace` that use the SPC `name`. */
  usingSpc(namespace: string, name: string): MountedVolume[] {
    return this.all().filter((v) => v.request.podNamespace === namespace && v.request.spcName === name);
  }

  /** Volumes of pods in `namespace`. */
  inNamespace(namespace: string): MountedVolume[] {
    return this.all().filter((v) => v.request.podNamespace === namespace);
  }

  /** Each volume against its Namespace permit, for the permit gauges. */
  permitStates(): PermitState[] {
    return this.all().map((v) => ({
      namespace: v.request.podNamespace,
      unpermitted: v.unpermitted,
      withheld: v.withheld !== undefined,
    }));
  }

  get size(): number {
    return this.byTarget.size;
  }
}

const spcKey = (r: PublishRequest) => `${r.podNamespace}/${r.spcName}`;
const saKey = (r: PublishRequest) => `${r.podNamespace}/${r.serviceAccount}`;

class Counts {
  private readonly n = new Map<string, number>();

  add(key: string, delta: number): void {
    const next = (this.n.get(key) ?? 0) + delta;
    if (next > 0) this.n.set(key, next);
    else this.n.delete(key);
  }

  has(key: string): boolean {
    return this.n.has(key);
  }
}
