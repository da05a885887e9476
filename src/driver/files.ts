// Turns an SPC's validated objects and the values fetched for them into the files
// of the volume, the versions the SPCPS records, and a digest per object.
import { createHash } from 'node:crypto';
import { extractJmesPath, type SecretObject } from '../crds/objects.js';
import type { SpcpsObjectVersion } from '../crds/types.js';
import type { SecretVersion } from '../provider/source.js';
import type { FileSet } from './atomic-writer.js';

export interface VolumeContent {
  files: FileSet;
  versions: SpcpsObjectVersion[];
  digests: Record<string, string>;
}

export function digest(value: Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

export function buildVolumeContent(objects: SecretObject[], values: SecretVersion[]): VolumeContent {
  const files: FileSet = new Map();
  const versions: SpcpsObjectVersion[] = [];
  const digests: Record<string, string> = {};
  objects.forEach((o, i) => {
    const value = values[i].value;
    files.set(o.fileName, value);
    for (const j of o.jmesPath) files.set(j.objectAlias, extractJmesPath(o.objectName, j, value));
    versions.push({ id: o.objectName, version: values[i].versionId });
    digests[o.objectName] = digest(value);
  });
  versions.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { files, versions, digests };
}
