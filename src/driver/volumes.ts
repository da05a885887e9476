// What this process knows about the volumes it has mounted; the reconciler walks it.
import type { SpcpsObjectVersion } from '../crds/types.js';
import type { PublishRequest } from './volume-request.js';

export interface MountedVolume {
  request: PublishRequest;
  spcpsName: string;
  /** Digest of everything the content depends on except store-side changes. */
  fingerprint: string;
  versions: SpcpsObjectVersion[];
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

  get size(): number {
    return this.byTarget.size;
  }
}
