// Turns an SPC's validated objects and the values fetched for them into the files
// of the volume (with their modes), the versions the SPCPS records, and a digest per
// object. The built-in provider's half of a volume: the `provider` command serves the
// same content to the upstream driver.
import { createHash } from 'node:crypto';
import { extractJmesPath, type SecretObject } from '../crds/objects.js';
import type { SpcpsObjectVersion } from '../crds/types.js';
import type { SecretVersion } from './source.js';
/** A volume's files by name. */
export type FileSet = Map<string, Buffer>;

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
