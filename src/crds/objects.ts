// Parses `spec.parameters.objects` of a SecretProviderClass into validated value
// objects, once, enforcing every rule of the user documentation. The same parser
// serves mount time, the one-shot CLI and (later) admission, so the messages match.
import { parse as parseYaml } from 'yaml';
import { errorMessage, InvalidSpcError } from '../errors.js';
import { checkExpressionShape } from './jmespath.js';

export interface JmesPathEntry {
  path: string;
  objectAlias: string;
  /** From `filePermission`; else the object's, else the volume's default. */
  mode?: number;
}

export interface SecretObject {
  objectName: string;
  /** File name in the volume (objectAlias, else objectName). */
  fileName: string;
  objectVersion: string;
  objectType: 'csms';
  jmesPath: JmesPathEntry[];
  /** From `filePermission` (an octal string such as "0440"); else the volume's default. */
  mode?: number;
}

const SECRET_NAME = /^[a-zA-Z0-9._-]{1,64}$/;
/** A CSMS secret name: 1-64 of letters, digits, "." "_" "-" (so never a `*` pattern). */
export const isSecretName = (name: string): boolean => SECRET_NAME.test(name);
const VERSION = /^(v[1-9][0-9]{0,8}|latest)$/;
const KNOWN_KEYS = new Set(['objectName', 'objectAlias', 'objectVersion', 'objectType', 'jmesPath', 'filePermission']);
const FILE_PERMISSION = /^0?[0-7]{3}$/;

/** Bounds on what one SPC may ask of a node (SECURITY.md): the parameter's size and the files of a volume. */
export const LIMITS = Object.freeze({ objectsBytes: 64 * 1024, files: 100 });
/** A file name in a volume, in UTF-8 bytes; the writer adds nothing to it (driver/atomic-writer.ts). */
export const MAX_FILE_NAME_BYTES = 255;

/** A provider name becomes a socket file name (<provider folder>/<name>.sock), so it may not name anything else. */
const PROVIDER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** Refuses an SPC's spec.provider that could not be a socket of the provider folders. */
export function checkProviderName(spcRef: string, provider: string): void {
  if (!PROVIDER_NAME.test(provider)) {
    throw new InvalidSpcError(
      `SecretProviderClass ${spcRef}: spec.provider ${JSON.stringify(provider)} is not a provider name (1-63 of letters, digits, ".", "_", "-", not starting with "." or "-")`,
    );
  }
}

/**
 * The `usePodIdentity` parameter (the AWS provider's name): "true" reads the volume's secrets
 * as the pod's own ServiceAccount agency; unset or "false", the node's identity.
 */
export function parseUsePodIdentity(spcRef: string, value: string | undefined): boolean {
  if (value === undefined || value === '' || value === 'false') return false;
  if (value === 'true') return true;
  throw new InvalidSpcError(
    `SecretProviderClass ${spcRef}: spec.parameters.usePodIdentity must be "true" or "false", got ${JSON.stringify(value.slice(0, 40))}`,
  );
}

/** `spcRef` is `namespace/name`, used to make every message point at the object. */
export function parseSecretObjects(spcRef: string, objectsYaml: string | undefined): SecretObject[] {
  const fail = (what: string) => new InvalidSpcError(`SecretProviderClass ${spcRef}: ${what}`);
  if (objectsYaml === undefined || objectsYaml.trim() === '') {
    throw fail('spec.parameters.objects is empty; list at least one object, e.g. "- objectName: my_secret"');
  }
  const size = Buffer.byteLength(objectsYaml, 'utf8');
  if (size > LIMITS.objectsBytes) {
    throw fail(
      `spec.parameters.objects is ${size} bytes, over the limit of ${LIMITS.objectsBytes} bytes; split it into several SecretProviderClasses`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(objectsYaml);
  } catch (err) {
    const first = errorMessage(err).split('\n')[0];
    throw fail(`spec.parameters.objects is not valid YAML (${first}); it must be a YAML list of objects`);
  }
  if (!Array.isArray(doc) || doc.length === 0) {
    throw fail('spec.parameters.objects must be a non-empty YAML list, each item starting with "- objectName: ..."');
  }
  const objects = doc.map((item, i) => parseOne(item, i, fail));
  const files = objects.reduce((n, o) => n + 1 + o.jmesPath.length, 0);
  if (files > LIMITS.files) {
    throw fail(
      `the objects make ${files} files (objects plus jmesPath entries), over the limit of ${LIMITS.files} files per volume; split them into several SecretProviderClasses`,
    );
  }
  checkUniqueness(objects, fail);
  return objects;
}

function parseOne(item: unknown, index: number, fail: (w: string) => InvalidSpcError): SecretObject {
  const where = `spec.parameters.objects[${index}]`;
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    throw fail(`${where} must be a mapping with objectName, objectType and objectVersion`);
  }
  const o = item as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN_KEYS.has(key)) throw fail(`${where} has unknown field "${key}"; allowed: ${[...KNOWN_KEYS].join(', ')}`);
  }
  const name = o.objectName;
  if (typeof name !== 'string' || name === '') throw fail(`${where}.objectName is required (the CSMS secret name)`);
  if (!isSecretName(name)) {
    throw fail(`object "${name}": objectName must be a CSMS secret name (1-64 of letters, digits, "." "_" "-")`);
  }
  const at = (field: string) => `object "${name}": ${field}`;
  if (o.objectType !== 'csms') {
    throw fail(
      `${at('objectType')} must be "csms" (the only type this provider serves), got ${describe(o.objectType)}`,
    );
  }
  if (typeof o.objectVersion !== 'string' || !VERSION.test(o.objectVersion)) {
    throw fail(`${at('objectVersion')} must be "v1", "v2", ... or "latest", got ${describe(o.objectVersion)}`);
  }
  let fileName = name;
  if (o.objectAlias !== undefined) {
    if (typeof o.objectAlias !== 'string' || o.objectAlias === '')
      throw fail(`${at('objectAlias')} must be a non-empty string`);
    if (o.objectAlias === name)
      throw fail(`${at('objectAlias')} must differ from its own objectName; omit it to use "${name}"`);
    checkFileName(o.objectAlias, at('objectAlias'), fail);
    fileName = o.objectAlias;
  } else {
    // The name becomes the file name, so it obeys the same rule as an alias.
    checkFileName(name, `${at('objectName')} (the file name when there is no objectAlias)`, fail, 'set an objectAlias');
  }
  const mode = parseFilePermission(o.filePermission, at('filePermission'), fail);
  return {
    objectName: name,
    fileName,
    objectVersion: o.objectVersion,
    objectType: 'csms',
    jmesPath: parseJmesPath(o.jmesPath, at, fail),
    ...(mode === undefined ? {} : { mode }),
  };
}

/** `filePermission` as the AWS provider spells it: an octal string, "0440" or "440". */
function parseFilePermission(raw: unknown, field: string, fail: (w: string) => InvalidSpcError): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'string' || !FILE_PERMISSION.test(raw)) {
    throw fail(
      `${field} must be an octal file mode in quotes such as "0440" or "0644", got ${describe(raw)} (a bare 0440 is read as a number; quote it)`,
    );
  }
  return parseInt(raw, 8);
}

function parseJmesPath(raw: unknown, at: (f: string) => string, fail: (w: string) => InvalidSpcError): JmesPathEntry[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw fail(`${at('jmesPath')} must be a list of {path, objectAlias}`);
  return raw.map((entry, i) => {
    const field = at(`jmesPath[${i}]`);
    const e = (entry ?? {}) as Record<string, unknown>;
    if (typeof e.path !== 'string' || e.path === '')
      throw fail(`${field}.path is required (a key of the secret's JSON value)`);
    if (e.path.includes('\\')) throw fail(`${field}.path "${e.path}" must not contain a backslash`);
    checkExpressionShape(e.path, field, fail);
    if (typeof e.objectAlias !== 'string' || e.objectAlias === '')
      throw fail(`${field}.objectAlias is required (the file name)`);
    checkFileName(e.objectAlias, `${field}.objectAlias`, fail);
    const mode = parseFilePermission(e.filePermission, `${field}.filePermission`, fail);
    return { path: e.path, objectAlias: e.objectAlias, ...(mode === undefined ? {} : { mode }) };
  });
}

/** Why `name` cannot be a file of a volume, or undefined when it can: one rule for every file name. */
export function fileNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (name.startsWith('..')) return 'starts with ".." (reserved for the writer\'s own entries such as ..data)';
  if (name.includes('/')) return 'contains "/"';
  if (name.includes('\0')) return 'contains a NUL character';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_FILE_NAME_BYTES) return `is ${bytes} bytes in UTF-8, over the limit of ${MAX_FILE_NAME_BYTES}`;
  return undefined;
}

const MAX_PATH_BYTES = 4096;

/**
 * Why `path` cannot be a file of an external provider's volume, or undefined when it can:
 * upstream's rule for provider paths (relative; no `..` component; the first component not
 * starting with `..`, which the writer keeps for its own entries), each component a file
 * name by the rule above, and the whole at most 4096 bytes.
 */
export function relativePathProblem(path: string): string | undefined {
  if (path.startsWith('/')) return 'is absolute';
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > MAX_PATH_BYTES) return `is ${bytes} bytes in UTF-8, over the limit of ${MAX_PATH_BYTES}`;
  const parts = path.split('/');
  for (const [i, part] of parts.entries()) {
    const problem = i === 0 ? fileNameProblem(part) : fileNameProblem(part.replace(/^\.\.(?=.)/, '__'));
    if (problem) return parts.length === 1 ? problem : `has a component ${JSON.stringify(part)} that ${problem}`;
  }
  return undefined;
}

/** File names are flat: nothing may escape the volume or clash with the writer's `..` entries. */
function checkFileName(
  value: string,
  field: string,
  fail: (w: string) => InvalidSpcError,
  fix = 'choose a plain file name',
): void {
  const problem = fileNameProblem(value);
  if (problem)
    throw fail(
      `${field} ${JSON.stringify(value)} is not a plain file name: it ${problem}; ${fix} (no "/", no leading "..", at most ${MAX_FILE_NAME_BYTES} bytes in UTF-8)`,
    );
}

function checkUniqueness(objects: SecretObject[], fail: (w: string) => InvalidSpcError): void {
  const names = new Set<string>();
  for (const o of objects) {
    if (names.has(o.objectName))
      throw fail(`objectName "${o.objectName}" appears twice; each object must be listed once`);
    names.add(o.objectName);
  }
  // A file name may not repeat, and an alias may not take another object's name.
  const files = new Map<string, string>();
  const claim = (file: string, owner: string) => {
    const other = files.get(file);
    if (other !== undefined)
      throw fail(`${owner} writes file "${file}", which ${other} already writes; choose another objectAlias`);
    files.set(file, owner);
  };
  for (const o of objects) {
    if (o.fileName !== o.objectName && names.has(o.fileName)) {
      throw fail(`object "${o.objectName}": objectAlias "${o.fileName}" equals the objectName of another object`);
    }
    claim(o.fileName, `object "${o.objectName}"`);
    for (const j of o.jmesPath) claim(j.objectAlias, `object "${o.objectName}" jmesPath "${j.path}"`);
  }
}

function describe(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}
