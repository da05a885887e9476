// tmpfs mounts for volume targets: secrets live in memory only and vanish on unmount.
//
// Node cannot call mount(2), and spawning mount(8) per volume forks this whole process
// (~12 ms at our size on a 2-core node, blocking the event loop) and then loads
// util-linux (~6 ms). Instead one long-lived perl co-process, started while we are
// small, makes the mount(2)/umount2(2) system calls itself: well under a millisecond
// each, off our event loop. perl-base is part of every Debian system (Essential).

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import type { FileSet } from './atomic-writer.js';

const PERL = '/usr/bin/perl';
// MS_NOSUID | MS_NODEV | MS_NOEXEC; MS_REMOUNT changes the size of a mounted one.
const TMPFS_FLAGS = 2 | 4 | 8;
const MS_REMOUNT = 32;
/**
 * The mount source of every tmpfs this driver makes. Only a process with CAP_SYS_ADMIN
 * can make a mount, so a tmpfs with this source at a volume path is one of ours: that
 * is how a restarted driver tells its own volumes from anything an SPCPS points at.
 */
export const MOUNT_SOURCE = 'cce-secrets-manager';
/** How long one mount(2)/umount2(2) may take before the helper is replaced. */
const SYSCALL_TIMEOUT_MS = 10_000;
const PAGE = 4096;
/** System call numbers of mount(2) and umount2(2) on the CPUs CCE nodes run. */
const SYSCALLS: Partial<Record<NodeJS.Architecture, { mount: number; umount2: number }>> = {
  x64: { mount: 165, umount2: 166 },
  arm64: { mount: 40, umount2: 39 },
};

// One request per line: "<id> <mount|remount|umount> <data> <path>"; one answer per line:
// "<id> <errno, 0 if done> <error text>". `+ 0` makes perl pass numbers as integers, not
// as pointers to their text.
const HELPER_SCRIPT = `
use strict;
my ($sys_mount, $sys_umount2, $flags, $remount, $source) = @ARGV;
my $fstype = 'tmpfs'; # syscall() wants writable strings, not literals
$| = 1;
while (my $line = <STDIN>) {
  chomp $line;
  my ($id, $op, $data, $path) = split / /, $line, 4;
  my $rc;
  if ($op eq 'mount') { $rc = syscall($sys_mount + 0, $source, $path, $fstype, $flags + 0, $data); }
  elsif ($op eq 'remount') { $rc = syscall($sys_mount + 0, $source, $path, $fstype, ($flags | $remount) + 0, $data); }
  elsif ($op eq 'umount') { $rc = syscall($sys_umount2 + 0, $path, 0); }
  else { $! = 22; $rc = -1; }
  if ($rc == 0) { print "$id 0\n"; } else { printf "%s %d %s\n", $id, $! + 0, "$!"; }
}
`;

class MountHelper {
  private child?: ChildProcessWithoutNullStreams;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

  run(op: 'mount' | 'remount' | 'umount', path: string, data = '-'): Promise<void> {
    if (/[\n\r]/.test(path)) return Promise.reject(new Error(`path ${JSON.stringify(path)} contains a line break`));
    const child = this.ensure();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      // A call stuck in the kernel must not hold every later volume: give up on this helper.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${op} did not return within ${SYSCALL_TIMEOUT_MS / 1000} s; the mount helper was restarted`));
        child.kill('SIGKILL');
      }, SYSCALL_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      // Keep the process alive while an answer is due (a one-shot CLI has nothing else).
      (child.stdout as unknown as { ref(): void }).ref();
      child.stdin.write(`${id} ${op} ${data} ${path}\n`);
    });
  }

  /** Starts the helper early, while this process is still small and forks cheaply. */
  ensure(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const calls = SYSCALLS[process.arch];
    if (!calls) throw new Error(`tmpfs mounts are supported on x64 and arm64 nodes, not ${process.arch}`);
    const args = [String(calls.mount), String(calls.umount2), String(TMPFS_FLAGS), String(MS_REMOUNT), MOUNT_SOURCE];
    const child = spawn(PERL, ['-e', HELPER_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr] as unknown as { unref?: () => void }[]) s.unref?.();
    createInterface({ input: child.stdout }).on('line', (line) => this.answer(line));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-500);
    });
    const fail = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined; // the next request starts a new helper
      for (const p of this.pending.values()) p.reject(new Error(why));
      this.pending.clear();
    };
    child.on('error', (err) =>
      fail(`the mount helper (${PERL}, Debian package perl-base) could not run: ${err.message}`),
    );
    child.on('exit', (code, signal) =>
      fail(`the mount helper exited (${signal ?? `code ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`),
    );
    child.stdin.on('error', () => undefined); // a dead helper is reported by 'exit'/'error'
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

/** What the publisher needs of mounts; TmpfsMounter is the real one, tests give their own. */
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

/** A mount point sits on another device than its parent folder (our tmpfs always does). */
export async function isMountPoint(path: string): Promise<boolean> {
  try {
    const [self, parent] = await Promise.all([stat(path), stat(dirname(path))]);
    return self.dev !== parent.dev;
  } catch {
    return false;
  }
}

/**
 * The tmpfs size for `files`: two copies of every file (old and new during an update),
 * a page per link, and some headroom. The size is a bound, not a reservation.
 */
export function tmpfsSizeFor(files: FileSet): number {
  let pages = 16;
  for (const content of files.values()) pages += 2 * Math.ceil(content.length / PAGE) + 1;
  return pages * PAGE;
}

function tmpfsData(sizeBytes: number): string {
  // Inodes: two copies of each file and a link per file, the folders, and headroom.
  const inodes = Math.ceil(sizeBytes / PAGE) + 16;
  // The tmpfs root is world-readable: a non-root app reads its files.
  return `mode=0755,size=${sizeBytes},nr_inodes=${inodes}`;
}

export class TmpfsMounter implements Mounter {
  private readonly helper = new MountHelper();

  /** Starts the helper early, while this process is still small and forks cheaply. */
  start(): void {
    this.helper.ensure();
  }

  isMountPoint(path: string): Promise<boolean> {
    return isMountPoint(path);
  }

  async mount(path: string, sizeBytes: number): Promise<void> {
    await mkdir(path, { recursive: true, mode: 0o750 });
    await this.helper.run('mount', path, tmpfsData(sizeBytes)).catch((err: Error) => {
      throw new Error(`mounting tmpfs at ${path} failed: ${err.message}`, { cause: err });
    });
  }

  async resize(path: string, sizeBytes: number): Promise<void> {
    await this.helper.run('remount', path, tmpfsData(sizeBytes)).catch((err: Error) => {
      throw new Error(`resizing the tmpfs at ${path} failed: ${err.message}`, { cause: err });
    });
  }

  async unmountAndRemove(path: string, layers = 8): Promise<void> {
    // Several layers: a crashed run may have left mounts stacked on the same folder.
    for (let layer = 0; layer < layers && (await isMountPoint(path)); layer++) {
      await this.helper.run('umount', path).catch((err: Error) => {
        throw new Error(`unmounting ${path} failed: ${err.message}`, { cause: err });
      });
    }
    if (await isMountPoint(path)) return;
    // Only the empty mount point remains once the tmpfs is gone; never delete through a mount.
    await rmdir(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT')
        throw new Error(`removing ${path} after unmount failed: ${err.message}`, { cause: err });
    });
  }
}

export interface OwnMount {
  sizeBytes: number;
}

/** The top mount at `path` if it is a tmpfs this driver made (see MOUNT_SOURCE), else undefined. */
export function ownMountAt(
  path: string,
  mountinfo = readFileSync('/proc/self/mountinfo', 'utf8'),
): OwnMount | undefined {
  let top: string[] | undefined;
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    if (fields.length > 4 && unescapeMountPath(fields[4]) === path) top = fields;
  }
  if (!top) return undefined;
  const rest = top.slice(top.indexOf('-') + 1); // fstype, source, super options
  if (rest[0] !== 'tmpfs' || rest[1] !== MOUNT_SOURCE) return undefined;
  const size = /(?:^|,)size=(\d+)k(?:,|$)/.exec(rest[2] ?? '');
  return { sizeBytes: size ? Number(size[1]) * 1024 : 0 };
}

/** mountinfo writes space, tab, newline and backslash as octal escapes. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
