// Turns an SPC's validated objects and the values fetched for them into the files
// of the volume and the versions the SPCPS records.
import { extractJmesPath, type SecretObject } from '../crds/objects.js';
import type { SpcpsObjectVersion } from '../crds/types.js';
import type { SecretVersion } from '../provider/csms-client.js';
import type { FileSet } from './atomic-writer.js';

export interface VolumeContent {
  files: FileSet;
  versions: SpcpsObjectVersion[];
}

export function buildVolumeContent(objects: SecretObject[], values: SecretVersion[]): VolumeContent {
  const files: FileSet = new Map();
  const versions: SpcpsObjectVersion[] = [];
  objects.forEach((o, i) => {
    const value = values[i].value;
    files.set(o.fileName, value);
    for (const j of o.jmesPath) files.set(j.objectAlias, extractJmesPath(o.objectName, j, value));
    versions.push({ id: o.objectName, version: values[i].versionId });
  });
  versions.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { files, versions };
}
