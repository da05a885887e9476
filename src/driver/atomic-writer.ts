// Writes a volume's files so that a reader never sees a partial or mixed set: the
// files go into a fresh hidden folder, then one rename swaps the `..data` symlink
// to it, the way kubelet updates its own secret volumes. Each visible file is a
// symlink `name -> ..data/name`, so it follows the swap.
//
// The calls are synchronous on purpose: the folder is our tmpfs, where each call is a
// memory operation of a few microseconds, while a trip through libuv's thread pool
// costs ~0.3 ms on a busy 2-core node; a publish makes ~25 of them (BENCHMARKS.md).
import { chmodSync as chmod, lstatSync as lstat, mkdtempSync as mkdtemp, readdirSync as readdir, readFileSync as readFile, readlinkSync as readlink, renameSync as rename, rmSync as rm, symlinkSync as symlink, writeFileSync as writeFile } from 'node:fs';
import { join } from 'node:path';

const DATA = '..data';
const DATA_TMP = '..data_tmp';

export type FileSet = Map<string, Buffer>;

/** The files currently published in `dir` (empty when nothing was written yet). */
export function readPublished(dir: string): FileSet {
  const files: FileSet = new Map();
  let current: string;
  try {
    current = join(dir, readlink(join(dir, DATA)));
  } catch {
    return files;
  }
  for (const name of readdir(current)) files.set(name, readFile(join(current, name)));
  return files;
}

function sameFiles(a: FileSet, b: FileSet): boolean {
  if (a.size !== b.size) return false;
  for (const [name, content] of a) {
    const other = b.get(name);
    if (!other || !other.equals(content)) return false;
  }
  return true;
}

/** Publishes `files` into `dir`. Returns false, touching nothing, when they are already there. */
export function writeAtomically(dir: string, files: FileSet, mode = 0o644): boolean {
  const previous = readPublished(dir);
  if (previous.size > 0 && sameFiles(previous, files)) return false;
  let oldTarget: string | undefined;
  try {
    oldTarget = readlink(join(dir, DATA));
  } catch {
    oldTarget = undefined;
  }

  const fresh = mkdtemp(join(dir, `..${timestamp()}.`));
  // mkdtemp makes it 0700, which would hide the files from a pod running as non-root.
  chmod(fresh, 0o755);
  for (const [name, content] of files) writeFile(join(fresh, name), content, { mode });
  rm(join(dir, DATA_TMP), { force: true });
  symlink(fresh.slice(dir.length + 1), join(dir, DATA_TMP));
  rename(join(dir, DATA_TMP), join(dir, DATA));

  for (const name of files.keys()) ensureLink(dir, name);
  for (const name of previous.keys()) if (!files.has(name)) rm(join(dir, name), { force: true });
  if (oldTarget) rm(join(dir, oldTarget), { recursive: true, force: true });
  return true;
}

function ensureLink(dir: string, name: string): void {
  const path = join(dir, name);
  const want = join(DATA, name);
  try {
    const st = lstat(path);
    if (st.isSymbolicLink() && (readlink(path)) === want) return;
  } catch {
    // missing: create below
  }
  const tmp = join(dir, `..link_${name}`);
  rm(tmp, { force: true });
  symlink(want, tmp);
  rename(tmp, path);
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '_').replace('T', '_').replace('Z', '');
}
