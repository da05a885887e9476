// Turns an SPC's validated objects and the values fetched for them into the files
// of the volume (with their modes), the versions the SPCPS records, and a digest per
// object. The built-in provider's half of a volume: the `provider` command serves the
// same content to the upstream driver.
import { createHash } from 'node:crypto';
import { JmesPathEvaluator } from '../crds/jmespath.js';
import type { SecretObject } from '../crds/objects.js';
import type { SpcpsObjectVersion } from '../crds/types.js';
import { InvalidSpcError, TooLargeError } from '../errors.js';
import type { SecretVersion } from './secret-source.js';
/** A volume's files by name. */
export type FileSet = Map<string, Buffer>;

export interface VolumeContent {
  files: FileSet;
  /** A file's mode when it is not the volume's default (0644). */
  modes: Map<string, number>;
  versions: SpcpsObjectVersion[];
  digests: Record<string, string>;
}

/** What one volume may hold, fetched or computed: every file, all files, and jmesPath time. */
export interface VolumeLimits {
  maxFileBytes: number;
  maxVolumeBytes: number;
  /** The time all jmesPath entries of one volume may take together. */
  jmesPathBudgetMs: number;
}

export const DEFAULT_VOLUME_LIMITS: VolumeLimits = Object.freeze({
  maxFileBytes: 4 * 1024 * 1024,
  maxVolumeBytes: 8 * 1024 * 1024,
  jmesPathBudgetMs: 50,
});

export function digest(value: Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

/** `ref` is the SPC (`namespace/name`) the errors name. */
export function buildVolumeContent(
  ref: string,
  objects: SecretObject[],
  values: SecretVersion[],
  limits: VolumeLimits = DEFAULT_VOLUME_LIMITS,
): VolumeContent {
  const files: FileSet = new Map();
  const modes = new Map<string, number>();
  const versions: SpcpsObjectVersion[] = [];
  const digests: Record<string, string> = {};
  const jmes = new JmesPathEvaluator({ budgetMs: limits.jmesPathBudgetMs, maxFileBytes: limits.maxFileBytes });
  objects.forEach((o, i) => {
    const value = values[i].value;
    files.set(o.fileName, value);
    if (o.mode !== undefined) modes.set(o.fileName, o.mode);
    const where = `SecretProviderClass ${ref}: object "${o.objectName}"`;
    const json = o.jmesPath.length > 0 ? parseJson(where, o.jmesPath[0].path, value) : undefined;
    // Written out again, a value can grow (1e20 has 21 digits): the bounds count the larger.
    const size = json === undefined ? 0 : Math.max(value.length, Buffer.byteLength(JSON.stringify(json), 'utf8'));
    for (const j of o.jmesPath) {
      files.set(j.objectAlias, jmes.extract(where, j.path, json, size));
      const mode = j.mode ?? o.mode;
      if (mode !== undefined) modes.set(j.objectAlias, mode);
    }
    versions.push({ id: o.objectName, version: values[i].versionId });
    digests[o.objectName] = digest(value);
  });
  checkVolumeSize(`SecretProviderClass ${ref}`, files, limits);
  versions.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { files, modes, versions, digests };
}

/** The secret's value as JSON, once per object however many entries read it; the value is never quoted. */
function parseJson(where: string, path: string, value: Buffer): unknown {
  try {
    return JSON.parse(value.toString('utf8'));
  } catch (err) {
    throw new InvalidSpcError(`${where}: jmesPath "${path}" needs a JSON secret value, but the value is not JSON`, {
      cause: err,
    });
  }
}

/** Every file, fetched, computed or an external provider's, within the file limit, and all of them within the volume limit. */
export function checkVolumeSize(what: string, files: FileSet, limits: VolumeLimits): void {
  let total = 0;
  for (const [name, value] of files) {
    if (value.length > limits.maxFileBytes) {
      throw new TooLargeError(
        `${what}: file "${name}" is ${value.length} bytes, over the file limit of ${limits.maxFileBytes} bytes (--max-file-bytes)`,
      );
    }
    total += value.length;
  }
  if (total > limits.maxVolumeBytes) {
    throw new TooLargeError(
      `${what}: the volume's ${files.size} files are ${total} bytes together, over the volume limit of ${limits.maxVolumeBytes} bytes (--max-volume-bytes); mount fewer or smaller objects`,
    );
  }
}
