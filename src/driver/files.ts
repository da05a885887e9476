// Turns an SPC's validated objects and the values fetched for them into the files
// of the volume (with their modes), the versions the SPCPS records, and a digest per
// object; and says who may read the files of a pod.
import { createHash } from 'node:crypto';
import { extractJmesPath, type SecretObject } from '../crds/objects.js';
import type { SpcpsObjectVersion } from '../crds/types.js';
import type { SecretVersion } from '../provider/source.js';
import { DEFAULT_FILE_MODE, type FilePerms, type FileSet } from './atomic-writer.js';

export interface VolumeContent {
  files: FileSet;
  /** A file's mode when it is not the volume's default (0644). */
  modes: Map<string, number>;
  versions: SpcpsObjectVersion[];
  digests: Record<string, string>;
}

export function digest(value: Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

export function buildVolumeContent(objects: SecretObject[], values: SecretVersion[]): VolumeContent {
  const files: FileSet = new Map();
  const modes = new Map<string, number>();
  const versions: SpcpsObjectVersion[] = [];
  const digests: Record<string, string> = {};
  objects.forEach((o, i) => {
    const value = values[i].value;
    files.set(o.fileName, value);
    if (o.mode !== undefined) modes.set(o.fileName, o.mode);
    for (const j of o.jmesPath) {
      files.set(j.objectAlias, extractJmesPath(o.objectName, j, value));
      const mode = j.mode ?? o.mode;
      if (mode !== undefined) modes.set(j.objectAlias, mode);
    }
    versions.push({ id: o.objectName, version: values[i].versionId });
    digests[o.objectName] = digest(value);
  });
  versions.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { files, modes, versions, digests };
}

/** The permissions of a volume's files: their modes and, when the pod has an fsGroup, that group with read access. */
export function filePerms(modes: ReadonlyMap<string, number>, files: FileSet, fsGroup: number | undefined): FilePerms {
  if (fsGroup === undefined || !Number.isInteger(fsGroup) || fsGroup < 0 || fsGroup > 0xfffffffe) return { modes };
  const withGroup = new Map<string, number>();
  for (const name of files.keys()) withGroup.set(name, (modes.get(name) ?? DEFAULT_FILE_MODE) | 0o040);
  return { modes: withGroup, gid: fsGroup };
}
