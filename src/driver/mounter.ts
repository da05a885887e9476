// tmpfs mounts for volume targets: secrets live in memory only and vanish on unmount.
//
// mount(8) runs in a long-lived /bin/sh co-process instead of being spawned from
// Node: spawning forks this whole process, which costs ~12 ms at our heap size on a
// 2-core node and blocks the event loop meanwhile (BENCHMARKS.md), while the small
// shell forks in ~3 ms and off our event loop.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';

const TMPFS_OPTIONS = 'mode=0755,nosuid,nodev,noexec';

// One request per line: "<id> <mount|umount> <path>"; one answer per line: "<id> <exit code> <first stderr line>".
const HELPER_SCRIPT = `
err_file=$(mktemp)
while IFS= read -r line; do
  id=\${line%% *}; rest=\${line#* }; op=\${rest%% *}; path=\${rest#* }
  case "$op" in
    mount) mount -t tmpfs -o ${TMPFS_OPTIONS} tmpfs "$path" 2>"$err_file" ;;
    umount) umount "$path" 2>"$err_file" ;;
    *) echo "unknown operation $op" >"$err_file"; false ;;
  esac
  rc=$?
  err=""
  [ "$rc" -eq 0 ] || IFS= read -r err <"$err_file"
  printf '%s %s %s\\n' "$id" "$rc" "$err"
done
rm -f "$err_file"
`;

class MountHelper {
  private child?: ChildProcessWithoutNullStreams;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

  run(op: 'mount' | 'umount', path: string): Promise<void> {
    if (/[\n\r]/.test(path)) return Promise.reject(new Error(`path ${JSON.stringify(path)} contains a line break`));
    const child = this.ensure();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Keep the process alive while an answer is due (a one-shot CLI has nothing else).
      (child.stdout as unknown as { ref(): void }).ref();
      child.stdin.write(`${id} ${op} ${path}\n`);
    });
  }

  /** Starts the helper early, while this process is still small and forks cheaply. */
  ensure(): ChildProcessWithoutNullStreams {
    if (this.child && this.child.exitCode === null && !this.child.killed) return this.child;
    const child = spawn('/bin/sh', ['-c', HELPER_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr] as unknown as { unref?: () => void }[]) s.unref?.();
    createInterface({ input: child.stdout }).on('line', (line) => this.answer(line));
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('the mount helper exited'));
      this.pending.clear();
    });
    this.child = child;
    return child;
  }

  private answer(line: string): void {
    const m = /^(\d+) (\d+) ?(.*)$/.exec(line);
    if (!m) return;
    const p = this.pending.get(Number(m[1]));
    if (!p) return;
    this.pending.delete(Number(m[1]));
    if (this.pending.size === 0) (this.child?.stdout as unknown as { unref(): void } | undefined)?.unref();
    if (m[2] === '0') p.resolve();
    else p.reject(new Error(m[3] || `exit code ${m[2]}`));
  }
}

const helper = new MountHelper();

export function startMountHelper(): void {
  helper.ensure();
}

/** A mount point sits on another device than its parent folder (our tmpfs always does). */
export async function isMountPoint(path: string): Promise<boolean> {
  try {
    const [self, parent] = await Promise.all([stat(path), stat(dirname(path))]);
    return self.dev !== parent.dev;
  } catch {
    return false;
  }
}

export async function mountTmpfs(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o750 });
  await helper.run('mount', path).catch((err: Error) => {
    throw new Error(`mounting tmpfs at ${path} failed: ${err.message}`);
  });
}

/** Unmounts (if mounted) and removes the target folder; a missing path is fine. */
export async function unmountAndRemove(path: string): Promise<void> {
  // Loop: a crashed run may have left mounts stacked on the same folder.
  for (let layer = 0; layer < 8 && (await isMountPoint(path)); layer++) {
    await helper.run('umount', path).catch((err: Error) => {
      throw new Error(`unmounting ${path} failed: ${err.message}`);
    });
  }
  // Only the empty mount point remains once the tmpfs is gone; never delete through a mount.
  await rmdir(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw new Error(`removing ${path} after unmount failed: ${err.message}`);
  });
}
