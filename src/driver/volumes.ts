// What this process knows about the volumes it has mounted; the reconciler walks it.
import type { SpcpsObjectVersion } from '../crds/types.js';
import type { PublishRequest } from './volume-request.js';

export interface MountedVolume {
  request: PublishRequest;
  spcpsName: string;
  /** VolumePlan.fingerprint of the content on disk ('' when unknown, e.g. after a restart). */
  fingerprint: string;
  versions: SpcpsObjectVersion[];
  /** sha256 of each object's value by objectName, to see a rotation changed nothing without reading files. */
  digests: Record<string, string>;
}

export class VolumeRegistry {
  private readonly byTarget = new Map<string, MountedVolume>();

  get(targetPath: string): MountedVolume | undefined {
    return this.byTarget.get(targetPath);
  }

  set(volume: MountedVolume): void {
    this.byTarget.set(volume.request.targetPath, volume);
  }

  delete(targetPath: string): void {
    this.byTarget.delete(targetPath);
  }

  all(): MountedVolume[] {
    return [...this.byTarget.values()];
  }

  /** Volumes of pods in `namespace` that use the SPC `name`. */
  usingSpc(namespace: string, name: string): MountedVolume[] {
    return this.all().filter((v) => v.request.podNamespace === namespace && v.request.spcName === name);
  }

  get size(): number {
    return this.byTarget.size;
  }
}
