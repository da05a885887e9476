// How the driver makes its tmpfs mounts, three ways, alternating in one process made
// about the driver's size, each with the same folder work around the call: libc through
// koffi (what ships, src/driver/mounter.ts), mount(8)/umount(8) spawned per call, and a
// long-lived perl co-process making the system calls (what shipped before koffi, rebuilt
// here only to compare).
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { MOUNT_SOURCE, Syscalls } from '../src/driver/mounter.js';
import { percentile } from './stats.js';

const exec = promisify(execFile);
// What the driver passes for a small volume: nosuid, nodev, noexec (14) and a size bound.
const DATA = 'mode=0755,size=131072,nr_inodes=48';

interface Way {
  name: string;
  mount(path: string): Promise<void>;
  umount(path: string): Promise<void>;
  /** CPU of helper processes (ms), beyond this process and its waited-for children. */
  helperCpuMs(): number;
}

function koffiWay(): Way {
  const libc = new Syscalls();
  return {
    name: 'koffi (libc)',
    mount: async (p) => {
      mkdirSync(p, { recursive: true });
      await libc.call('mount', MOUNT_SOURCE, p, 'tmpfs', 14, DATA);
    },
    umount: async (p) => {
      await libc.call('umount2', p, 0);
      rmdirSync(p);
    },
    helperCpuMs: () => 0,
  };
}

function mount8Way(): Way {
  return {
    name: 'mount(8) spawn',
    mount: async (p) => {
      mkdirSync(p, { recursive: true });
      await exec('mount', ['-t', 'tmpfs', '-o', `nosuid,nodev,noexec,${DATA}`, MOUNT_SOURCE, p]);
    },
    umount: async (p) => {
      await exec('umount', [p]);
      rmdirSync(p);
    },
    helperCpuMs: () => 0,
  };
}

// syscall() wants writable strings, not literals; 165 and 166 are mount(2) and umount2(2) on x86-64.
const PERL = `$|=1; while (<STDIN>) { chomp; my ($id,$op,$p) = split / /, $_, 3; my $fs='tmpfs'; my $src='${MOUNT_SOURCE}'; my $data='${DATA}';
  my $rc = $op eq 'm' ? syscall(165, $src, $p, $fs, 14, $data) : syscall(166, $p, 0); print "$id ", ($rc == 0 ? 0 : $!+0), "\\n"; }`;

function perlWay(): Way {
  const child = spawn('/usr/bin/perl', ['-e', PERL], { stdio: ['pipe', 'pipe', 'inherit'] });
  const pending = new Map<string, (errno: string) => void>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    const [id, errno] = line.split(' ');
    pending.get(id)?.(errno);
    pending.delete(id);
  });
  let next = 0;
  const call = (op: string, p: string) =>
    new Promise<void>((resolve, reject) => {
      const id = String(next++);
      pending.set(id, (errno) => (errno === '0' ? resolve() : reject(new Error(`errno ${errno}`))));
      child.stdin.write(`${id} ${op} ${p}\n`);
    });
  return {
    name: 'perl co-process',
    mount: async (p) => {
      mkdirSync(p, { recursive: true });
      await call('m', p);
    },
    umount: async (p) => {
      await call('u', p);
      rmdirSync(p);
    },
    helperCpuMs: () => {
      const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
    },
  };
}

function childrenCpuMs(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1000) / 100; // cutime + cstime of waited-for children
}

async function measure(way: Way, root: string) {
  const seq: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const cpu0 = process.cpuUsage();
  const extra0 = childrenCpuMs() + way.helperCpuMs();
  loop.enable();
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await way.mount(`${root}/s${i}`);
    seq.push(performance.now() - t);
  }
  for (let i = 0; i < 200; i++) await way.umount(`${root}/s${i}`);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 110 }, (_, i) => way.mount(`${root}/c${i}`)));
  const burst = performance.now() - t0;
  await Promise.all(Array.from({ length: 110 }, (_, i) => way.umount(`${root}/c${i}`)));
  loop.disable();
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000 + childrenCpuMs() + way.helperCpuMs() - extra0;
  seq.sort((a, b) => a - b);
  return { p50: percentile(seq, 50), p99: percentile(seq, 99), burst, cpuMs, loopMaxMs: loop.max / 1e6 };
}

export async function run(): Promise<void> {
  // About the driver's resident size: what a fork of this process copies page tables for.
  const ballast = Array.from({ length: 400_000 }, (_, i) => ({ i, s: `x${i}` }));
  const root = mkdtempSync('/tmp/cce-bench-mounts-');
  const ways = [koffiWay(), mount8Way(), perlWay()];
  for (const w of ways) await measure(w, root); // warm-up
  console.log(
    `process RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB (ballast ${ballast.length} objects)`,
  );
  console.log('way              | mount p50 | mount p99 | 110 at once | CPU, 420 calls | event loop max');
  for (let round = 1; round <= 3; round++) {
    for (const w of ways) {
      const r = await measure(w, root);
      console.log(
        `${w.name.padEnd(16)} | ${r.p50.toFixed(3)} ms | ${r.p99.toFixed(3)} ms | ${r.burst.toFixed(0).padStart(6)} ms | ${r.cpuMs.toFixed(0).padStart(9)} ms | ${r.loopMaxMs.toFixed(1)} ms`,
      );
    }
  }
  rmdirSync(root);
}
