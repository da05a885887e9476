// Writes a volume's files so that a reader never sees a partial or mixed set: the
// files go into a fresh hidden folder, then one rename swaps the `..data` symlink
// to it, the way kubelet updates its own secret volumes. Each visible top-level entry is a
// symlink `name -> ..data/name`, so it follows the swap; an external provider's file in a
// folder (`certs/tls.crt`) is published through its first component (`certs -> ..data/certs`).
//
// The writer's own entries all start with `..` and never embed a file's name, so a
// file name may use all 255 bytes (crds/objects.ts). A failed write removes what it
// made; whatever a crash left is removed by the next write, which never reports
// "unchanged" over a damaged volume.
//
// The calls are synchronous on purpose: the folder is our tmpfs, where each call is a
// memory operation, while a trip through libuv's thread pool costs far more on a busy
// node and a publish makes a few dozen of them (BENCHMARKS.md).
import {
  chmodSync as chmod,
  chownSync as chown,
  lstatSync as lstat,
  mkdirSync as mkdir,
  mkdtempSync as mkdtemp,
  readdirSync as readdir,
  readFileSync as readFile,
  readlinkSync as readlink,
  renameSync as rename,
  rmSync as rm,
  symlinkSync as symlink,
  writeFileSync as writeFile,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { FileSet } from '../provider/volume-content.js';

const DATA = '..data';
const DATA_TMP = '..data_tmp';
const LINK_TMP = '..link_tmp';
/** What `..data` may point at: a sibling folder of ours, never a path elsewhere. */
const DATA_FOLDER = /^\.\.[^/]+$/;

/** Who may read the files: a mode per file (else 0644) and, for a pod's fsGroup, their group. */
export interface FilePerms {
  modes?: ReadonlyMap<string, number>;
  gid?: number;
}

export const DEFAULT_FILE_MODE = 0o644;

/**
 * The target of the link at `path`, or undefined when there is no link there. Looked up
 * without throwing: a fresh volume has none of our entries, and an exception per missing
 * entry was a visible share of a mount burst's CPU (BENCHMARKS.md).
 */
function linkTarget(path: string): string | undefined {
  return lstat(path, { throwIfNoEntry: false })?.isSymbolicLink() ? readlink(path) : undefined;
}

function dataFolder(dir: string): string | undefined {
  const target = linkTarget(join(dir, DATA));
  return target !== undefined && DATA_FOLDER.test(target) && target !== DATA ? target : undefined;
}

/** The files currently published in `dir` (empty when nothing was written yet), by relative path. Follows no link. */
export function readPublished(dir: string): FileSet {
  const files: FileSet = new Map();
  const folder = dataFolder(dir);
  if (folder) readFolder(join(dir, folder), '', files);
  return files;
}

function readFolder(folder: string, prefix: string, files: FileSet): void {
  for (const name of readdir(folder)) {
    const path = join(folder, name);
    const st = lstat(path);
    if (st.isFile()) files.set(prefix + name, readFile(path));
    else if (st.isDirectory()) readFolder(path, `${prefix}${name}/`, files);
  }
}

/** The top-level entries that publish `files`: each file's first path component. */
function topLevel(files: FileSet): Set<string> {
  return new Set([...files.keys()].map((name) => name.split('/')[0]));
}

function sameFiles(a: FileSet, b: FileSet): boolean {
  if (a.size !== b.size) return false;
  for (const [name, content] of a) {
    const other = b.get(name);
    if (!other || !other.equals(content)) return false;
  }
  return true;
}

function isLinkTo(path: string, want: string): boolean {
  return linkTarget(path) === want;
}

/** Each published file already has the mode and group asked for. */
function samePerms(dir: string, folder: string, files: FileSet, perms: FilePerms): boolean {
  for (const name of files.keys()) {
    const st = lstat(join(dir, folder, name));
    if ((st.mode & 0o777) !== (perms.modes?.get(name) ?? DEFAULT_FILE_MODE)) return false;
    if (perms.gid !== undefined && st.gid !== perms.gid) return false;
  }
  return true;
}

/** Nothing but `..data`, its folder and one correct link per top-level entry. */
function isClean(dir: string, files: FileSet, folder: string): boolean {
  const tops = topLevel(files);
  for (const entry of readdir(dir)) {
    if (entry === DATA || entry === folder) continue;
    if (!tops.has(entry) || !isLinkTo(join(dir, entry), join(DATA, entry))) return false;
  }
  for (const name of tops) if (!isLinkTo(join(dir, name), join(DATA, name))) return false;
  return true;
}

/** Removes the writer's entries other than `keep`, and links into `..data` for files not in `names`. */
function removeLeftovers(dir: string, keep: string | undefined, names: Iterable<string>): void {
  const wanted = new Set(names);
  for (const entry of readdir(dir)) {
    if (entry === DATA || entry === keep || wanted.has(entry)) continue;
    const path = join(dir, entry);
    if (entry.startsWith('..') || readlinkOrEmpty(path).startsWith(`${DATA}/`))
      rm(path, { recursive: true, force: true });
  }
}

function readlinkOrEmpty(path: string): string {
  return linkTarget(path) ?? '';
}

/** Publishes `files` into `dir`. Returns false, touching nothing, when they are already there intact. */
export function writeAtomically(dir: string, files: FileSet, perms: FilePerms = {}): boolean {
  const folder = dataFolder(dir);
  const previous = readPublished(dir);
  if (
    folder &&
    previous.size > 0 &&
    sameFiles(previous, files) &&
    isClean(dir, files, folder) &&
    samePerms(dir, folder, files, perms)
  )
    return false;

  let fresh: string | undefined;
  try {
    removeLeftovers(dir, folder, topLevel(previous));
    fresh = mkdtemp(join(dir, `..${timestamp()}.`));
    // mkdtemp makes it 0700, which would hide the files from a pod running as non-root.
    chmod(fresh, 0o755);
    for (const [name, content] of files) {
      // A folder of our fresh one, which holds nothing but what we made: no link to follow.
      if (name.includes('/')) makeFolders(fresh, dirname(name), perms.gid);
      writeOne(join(fresh, name), content, perms.modes?.get(name) ?? DEFAULT_FILE_MODE, perms.gid);
    }
    symlink(basename(fresh), join(dir, DATA_TMP));
    rename(join(dir, DATA_TMP), join(dir, DATA));
  } catch (err) {
    quietly(() => fresh && rm(fresh, { recursive: true, force: true }));
    quietly(() => rm(join(dir, DATA_TMP), { force: true }));
    throw err;
  }
  // Readers see the new set from here on; the links and the old folder follow.
  try {
    const tops = topLevel(files);
    for (const name of tops) ensureLink(dir, name);
    removeLeftovers(dir, basename(fresh), tops);
  } catch (err) {
    quietly(() => rm(join(dir, LINK_TMP), { force: true }));
    throw err;
  }
  return true;
}

/** `relative` (and each folder above it) inside `root`, world-readable as the tmpfs root is. */
function makeFolders(root: string, relative: string, gid: number | undefined): void {
  let path = root;
  for (const part of relative.split('/')) {
    path = join(path, part);
    if (lstat(path, { throwIfNoEntry: false })?.isDirectory()) continue;
    mkdir(path, { mode: 0o755 });
    chmod(path, 0o755);
    if (gid !== undefined) chown(path, 0, gid);
  }
}

function writeOne(path: string, content: Buffer, mode: number, gid: number | undefined): void {
  writeFile(path, content, { mode });
  // The process umask may have taken bits away (group write, say); the mode asked for is exact.
  chmod(path, mode);
  if (gid !== undefined) chown(path, 0, gid);
}

function ensureLink(dir: string, name: string): void {
  const path = join(dir, name);
  const want = join(DATA, name);
  const entry = lstat(path, { throwIfNoEntry: false });
  if (!entry) {
    // Nothing to replace (a fresh volume, a new file): no temporary link needed.
    symlink(want, path);
    return;
  }
  if (entry.isSymbolicLink() && readlink(path) === want) return;
  const tmp = join(dir, LINK_TMP);
  rm(tmp, { force: true });
  symlink(want, tmp);
  rename(tmp, path);
}

function quietly(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // best effort: the next write removes what is left
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '_').replace('T', '_').replace('Z', '');
}

/** What the publisher needs of a volume's files; `atomicWriter` is the real one. */
export interface VolumeWriter {
  /** Publishes `files` into `dir`; false when they were already there intact, with those permissions. */
  write(dir: string, files: FileSet, perms?: FilePerms): boolean;
  /** The files published in `dir` (empty when none). */
  read(dir: string): FileSet;
}

export const atomicWriter: VolumeWriter = { write: writeAtomically, read: readPublished };

/** The permissions of a volume's files: their modes and, when the pod has an fsGroup, that group with read access. */
export function filePerms(modes: ReadonlyMap<string, number>, files: FileSet, fsGroup: number | undefined): FilePerms {
  if (fsGroup === undefined || !Number.isInteger(fsGroup) || fsGroup < 0 || fsGroup > 0xfffffffe) return { modes };
  const withGroup = new Map<string, number>();
  for (const name of files.keys()) withGroup.set(name, (modes.get(name) ?? DEFAULT_FILE_MODE) | 0o040);
  return { modes: withGroup, gid: fsGroup };
}
