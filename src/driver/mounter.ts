// tmpfs mounts for volume targets: secrets live in memory only and vanish on unmount.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rmdir } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export async function isMountPoint(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const want = path.replace(/\/+$/, '');
  return info.split('\n').some((line) => unescapeMountPath(line.split(' ')[4] ?? '') === want);
}

export async function mountTmpfs(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o750 });
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'mode=0755,nosuid,nodev,noexec', 'tmpfs', path]);
  } catch (err) {
    throw new Error(`mounting tmpfs at ${path} failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
}

/** Unmounts (if mounted) and removes the target folder; a missing path is fine. */
export async function unmountAndRemove(path: string): Promise<void> {
  if (await isMountPoint(path)) {
    try {
      await run('umount', [path]);
    } catch (err) {
      throw new Error(`unmounting ${path} failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
    }
  }
  // Only the empty mount point remains once the tmpfs is gone; never delete through a mount.
  await rmdir(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw new Error(`removing ${path} after unmount failed: ${err.message}`);
  });
}
