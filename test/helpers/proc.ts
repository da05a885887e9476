// What a process uses and what is mounted, read from /proc: for the tests' memory bounds, the
// benchmarks' tables and the harness's clean-up.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Resident memory of a process, from /proc. */
export function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return kb / 1024;
}

/**
 * Anonymous resident memory of a process (its heaps and stacks), from /proc: its RSS without
 * the pages of its executable and libraries, which the page cache shares among processes.
 */
export function anonMiB(pid: number): number {
  const kb = Number(/^Anonymous:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1]);
  return kb / 1024;
}

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc (clock ticks of 10 ms):
 * its own, and with that of the children it has waited for (such as the `mount` and `umount`
 * commands a driver runs).
 */
export function cpuMs(pid: number): { own: number; withChildren: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // Fields 14–17 of stat (utime, stime, cutime, cstime) are 11–14 after the command name.
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
  return { own: (utime + stime) * 10, withChildren: (utime + stime + cutime + cstime) * 10 };
}

export interface Mount {
  point: string;
  fsType: string;
  /** The whole /proc/self/mountinfo line (its options, e.g. a tmpfs's size). */
  line: string;
}

/** This process's mounts, oldest first, from /proc/self/mountinfo. */
export function mounts(): Mount[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      return { point: fields[4], fsType: fields[fields.indexOf('-') + 1], line };
    });
}

/** Lazily unmounts, newest first, every mount point `select` picks; returns how many. */
export function unmountWhere(select: (point: string) => boolean): number {
  const picked = mounts()
    .map((m) => m.point)
    .filter(select)
    .reverse();
  for (const point of picked) execFileSync('umount', ['-l', point]);
  return picked.length;
}

/** `path` itself or anything below it. */
export const within = (path: string) => (point: string) => point === path || point.startsWith(`${path}/`);

/**
 * This process's established TCP connections to `port` (any address): its socket inodes from
 * /proc/self/fd, matched in /proc/net/tcp and tcp6. How a test sees what a client really opened,
 * whatever HTTP library it uses.
 */
export function tcpConnectionsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed while listing
    }
  }
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const remotePort = parseInt(f[2].split(':')[1], 16);
      if (f[3] === '01' && remotePort === port && inodes.has(f[9])) n++;
    }
  }
  return n;
}
