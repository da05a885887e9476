// tmpfs mounts for volume targets: secrets live in memory only and vanish on unmount.
//
// Node has no binding for mount(2), so libc's mount() and umount2() are called through
// koffi, a foreign-function library with prebuilt binaries. The calls run on libuv's
// thread pool, never blocking the event loop, and a few at a time, since koffi bounds the
// calls in flight. mount(8) would fork this whole process per volume, and an earlier perl
// co-process was harder to follow for no gain; BENCHMARKS.md has the comparison.
import { dirname } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { errorMessage } from '../errors.js';
import { Semaphore } from '../util/async.js';
import type { FileSet } from '../provider/volume-content.js';

// MS_NOSUID | MS_NODEV | MS_NOEXEC; MS_REMOUNT changes the size of a mounted one.
const TMPFS_FLAGS = 2 | 4 | 8;
const MS_REMOUNT = 32;
/**
 * The mount source of every tmpfs this driver makes. Only a process with CAP_SYS_ADMIN
 * can make a mount, so a tmpfs with this source at a volume path is one of ours: that
 * is how a restarted driver tells its own volumes from anything an SPCPS points at.
 */
export const MOUNT_SOURCE = 'cce-secrets-manager';
/** How long one mount(2)/umount2(2) may take before the volume's call fails. */
const SYSCALL_TIMEOUT_MS = 10_000;
/** Calls in flight at once; the rest queue (koffi refuses beyond its own bound). */
const SYSCALL_CONCURRENCY = 8;
const PAGE = 4096;

type AsyncCall = { async: (...args: unknown[]) => void };

/** libc's mount(2) and umount2(2), loaded on first use. */
export class Syscalls {
  private loaded?: Promise<{ mount: AsyncCall; umount2: AsyncCall; errno: () => number }>;
  private readonly slots = new Semaphore(SYSCALL_CONCURRENCY);

  load() {
    this.loaded ??= import('koffi').then(({ default: koffi }) => {
      const libc = koffi.load('libc.so.6');
      return {
        mount: libc.func(
          'int mount(const char *src, const char *target, const char *fs, unsigned long flags, const char *data)',
        ),
        umount2: libc.func('int umount2(const char *target, int flags)'),
        errno: () => koffi.errno(),
      };
    });
    return this.loaded;
  }

  async call(name: 'mount' | 'umount2', ...args: unknown[]): Promise<void> {
    const libc = await this.load();
    const release = await this.slots.acquire();
    try {
      await new Promise<void>((resolve, reject) => {
        // A call stuck in the kernel holds one pool thread; the volume's caller is told.
        const timer = setTimeout(
          () => reject(new Error(`${name} did not return within ${SYSCALL_TIMEOUT_MS / 1000} s`)),
          SYSCALL_TIMEOUT_MS,
        );
        libc[name].async(...args, (err: Error | null, rc: number) => {
          clearTimeout(timer);
          if (err) reject(err);
          else if (rc === 0) resolve();
          else reject(new Error(getSystemErrorName(-libc.errno())));
        });
      });
    } finally {
      release();
    }
  }
}

export interface Mounter {
  /** Whether a file system other than the parent folder's is mounted at `path`. */
  isMountPoint(path: string): Promise<boolean>;
  /** Creates `path` if needed and mounts a tmpfs of `sizeBytes` there. */
  mount(path: string, sizeBytes: number): Promise<void>;
  /** Changes the size bound of a tmpfs of ours in place; its files stay. */
  resize(path: string, sizeBytes: number): Promise<void>;
  /** Unmounts (up to `layers` mounts) and removes the folder if nothing is left mounted; a missing path is fine. */
  unmountAndRemove(path: string, layers?: number): Promise<void>;
}

/**
 * A mount point sits on another device than its parent folder (our tmpfs always does).
 * Synchronous, as the atomic writer's calls: two stats of kubelet's folders are cheaper
 * than two trips through libuv's thread pool, which a burst keeps busy (BENCHMARKS.md).
 */
export function isMountPointSync(path: string): boolean {
  try {
    return statSync(path).dev !== statSync(dirname(path)).dev;
  } catch {
    return false;
  }
}

export async function isMountPoint(path: string): Promise<boolean> {
  return isMountPointSync(path);
}

/**
 * The tmpfs size for `files`: two copies of every file (old and new during an update),
 * a page per link, and some headroom. The size is a bound, not a reservation.
 */
export function tmpfsSizeFor(files: FileSet): number {
  let pages = 16;
  const folders = new Set<string>();
  for (const [name, content] of files) {
    // Two copies and a link: at least three inodes, which a page each stands for, even when empty.
    pages += 2 * Math.max(1, Math.ceil(content.length / PAGE)) + 1;
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) folders.add(parts.slice(0, i).join('/'));
  }
  // A provider's folders: one in each of the two copies.
  return (pages + 2 * folders.size) * PAGE;
}

function tmpfsData(sizeBytes: number): string {
  // Inodes: two copies of each file and a link per file, the folders, and headroom.
  const inodes = Math.ceil(sizeBytes / PAGE) + 16;
  // The tmpfs root is world-readable: a non-root app reads its files.
  return `mode=0755,size=${sizeBytes},nr_inodes=${inodes}`;
}

export class TmpfsMounter implements Mounter {
  private readonly syscalls = new Syscalls();

  /** Loads libc's functions now, so a missing library stops start-up rather than a mount. */
  async start(): Promise<void> {
    await this.syscalls.load();
  }

  isMountPoint(path: string): Promise<boolean> {
    return isMountPoint(path);
  }

  async mount(path: string, sizeBytes: number): Promise<void> {
    mkdirSync(path, { recursive: true, mode: 0o750 });
    await this.syscalls
      .call('mount', MOUNT_SOURCE, path, 'tmpfs', TMPFS_FLAGS, tmpfsData(sizeBytes))
      .catch((err: Error) => {
        throw new Error(`mounting tmpfs at ${path} failed: ${err.message}`, { cause: err });
      });
  }

  async resize(path: string, sizeBytes: number): Promise<void> {
    await this.syscalls
      .call('mount', MOUNT_SOURCE, path, 'tmpfs', TMPFS_FLAGS | MS_REMOUNT, tmpfsData(sizeBytes))
      .catch((err: Error) => {
        throw new Error(`resizing the tmpfs at ${path} failed: ${err.message}`, { cause: err });
      });
  }

  async unmountAndRemove(path: string, layers = 8): Promise<void> {
    // Several layers: a crashed run may have left mounts stacked on the same folder.
    for (let layer = 0; layer < layers && isMountPointSync(path); layer++) {
      await this.syscalls.call('umount2', path, 0).catch((err: Error) => {
        throw new Error(`unmounting ${path} failed: ${err.message}`, { cause: err });
      });
    }
    if (isMountPointSync(path)) return;
    // Only the empty mount point remains once the tmpfs is gone; never delete through a mount.
    try {
      rmdirSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`removing ${path} after unmount failed: ${errorMessage(err)}`, { cause: err });
    }
  }
}

export interface OwnMount {
  sizeBytes: number;
}

/**
 * The tmpfs mounts this driver made (see MOUNT_SOURCE), by mount point: a path counts only
 * when our tmpfs is the top mount there (something mounted over it hides it).
 */
export function ownMounts(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): Map<string, OwnMount> {
  const top = new Map<string, string[]>();
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 4) top.set(unescapeMountPath(fields[4]), fields);
  }
  const own = new Map<string, OwnMount>();
  for (const [path, fields] of top) {
    const rest = fields.slice(fields.indexOf('-') + 1); // fstype, source, super options
    if (rest[0] !== 'tmpfs' || rest[1] !== MOUNT_SOURCE) continue;
    const size = /(?:^|,)size=(\d+)k(?:,|$)/.exec(rest[2] ?? '');
    own.set(path, { sizeBytes: size ? Number(size[1]) * 1024 : 0 });
  }
  return own;
}

/** mountinfo writes space, tab, newline and backslash as octal escapes. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
