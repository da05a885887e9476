// Where a volume's content comes from: one seam, two implementations, picked once per plan
// by the SPC's provider: the built-in CSMS provider (csms-volume-source.ts) and an external
// provider over the provider API (provider-volume-source.ts). The publisher mounts, writes and
// records; a source only says what the files are.
import type { SecretSource } from '../provider/secret-source.js';
import type { FileSet, VolumeContent } from '../provider/volume-content.js';
import type { VolumePlan } from './volume-plan.js';
import type { PublishRequest } from './volume-request.js';
import type { MountedVolume } from './volumes.js';

/** One fetch for one volume. */
export interface ContentJob {
  req: PublishRequest;
  plan: VolumePlan;
  /** The volume as this driver holds it (an update or a refresh); none for a fresh mount. */
  known?: MountedVolume;
  /** The files of our own tmpfs: a pinned value already there is not read again. */
  local: FileSet;
  /** Where CSMS values come from (a rotation cycle shares one source across volumes). */
  values: SecretSource;
  signal?: AbortSignal;
}

export interface VolumeSource {
  /** The complete content of the volume. */
  fetch(job: ContentJob): Promise<VolumeContent>;
  /**
   * For a volume whose SPC has not changed: undefined while what it holds is current;
   * otherwise what to write, or `{}` to fetch it all again.
   */
  stale(job: ContentJob & { known: MountedVolume }): Promise<{ content?: VolumeContent } | undefined>;
}
