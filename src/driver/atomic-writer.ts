// Writes a volume's files so that a reader never sees a partial or mixed set: the
// files go into a fresh hidden folder, then one rename swaps the `..data` symlink
// to it, the way kubelet updates its own secret volumes. Each visible file is a
// symlink `name -> ..data/name`, so it follows the swap.
import { chmod, lstat, mkdtemp, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const DATA = '..data';
const DATA_TMP = '..data_tmp';

export type FileSet = Map<string, Buffer>;

/** The files currently published in `dir` (empty when nothing was written yet). */
export async function readPublished(dir: string): Promise<FileSet> {
  const files: FileSet = new Map();
  let current: string;
  try {
    current = join(dir, await readlink(join(dir, DATA)));
  } catch {
    return files;
  }
  for (const name of await readdir(current)) files.set(name, await readFile(join(current, name)));
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
export async function writeAtomically(dir: string, files: FileSet, mode = 0o644): Promise<boolean> {
  const previous = await readPublished(dir);
  if (previous.size > 0 && sameFiles(previous, files)) return false;
  let oldTarget: string | undefined;
  try {
    oldTarget = await readlink(join(dir, DATA));
  } catch {
    oldTarget = undefined;
  }

  const fresh = await mkdtemp(join(dir, `..${timestamp()}.`));
  // mkdtemp makes it 0700, which would hide the files from a pod running as non-root.
  await chmod(fresh, 0o755);
  for (const [name, content] of files) await writeFile(join(fresh, name), content, { mode });
  await rm(join(dir, DATA_TMP), { force: true });
  await symlink(fresh.slice(dir.length + 1), join(dir, DATA_TMP));
  await rename(join(dir, DATA_TMP), join(dir, DATA));

  for (const name of files.keys()) await ensureLink(dir, name);
  for (const name of previous.keys()) if (!files.has(name)) await rm(join(dir, name), { force: true });
  if (oldTarget) await rm(join(dir, oldTarget), { recursive: true, force: true });
  return true;
}

async function ensureLink(dir: string, name: string): Promise<void> {
  const path = join(dir, name);
  const want = join(DATA, name);
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink() && (await readlink(path)) === want) return;
  } catch {
    // missing: create below
  }
  const tmp = join(dir, `..link_${name}`);
  await rm(tmp, { force: true });
  await symlink(want, tmp);
  await rename(tmp, path);
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '_').replace('T', '_').replace('Z', '');
}
