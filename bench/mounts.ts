// How the driver makes its tmpfs mounts, two ways, alternating in one process made about
// the driver's size, each with the same folder work around the call: libc through koffi
// (what ships, src/driver/mounter.ts) and mount(8)/umount(8) spawned per call.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { MOUNT_SOURCE, Syscalls } from '../src/driver/mounter.js';
import { markdownHeader, markdownRow, percentile } from './stats.js';

const exec = promisify(execFile);
// What the driver passes for a small volume: nosuid, nodev, noexec (14) and a size bound.
const DATA = 'mode=0755,size=131072,nr_inodes=48';

interface Way {
  name: string;
  mount(path: string): Promise<void>;
  umount(path: string): Promise<void>;
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
  const extra0 = childrenCpuMs();
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
  const cpuMs = (cpu.user + cpu.system) / 1000 + childrenCpuMs() - extra0;
  seq.sort((a, b) => a - b);
  return { p50: percentile(seq, 50), p99: percentile(seq, 99), burst, cpuMs, loopMaxMs: loop.max / 1e6 };
}

export async function run(): Promise<void> {
  // About the driver's resident size: what a fork of this process copies page tables for.
  const ballast = Array.from({ length: 400_000 }, (_, i) => ({ i, s: `x${i}` }));
  const root = mkdtempSync('/tmp/cce-bench-mounts-');
  const ways = [koffiWay(), mount8Way()];
  for (const w of ways) await measure(w, root); // warm-up
  console.log(
    `process RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB (ballast ${ballast.length} objects)`,
  );
  console.log(
    markdownHeader([
      'way',
      'round',
      'mount p50 ms',
      'mount p99 ms',
      '110 at once ms',
      'CPU ms, 420 calls',
      'event loop max ms',
    ]),
  );
  for (let round = 1; round <= 3; round++) {
    for (const w of ways) {
      const r = await measure(w, root);
      console.log(
        markdownRow([
          w.name,
          round,
          r.p50.toFixed(3),
          r.p99.toFixed(3),
          r.burst.toFixed(0),
          r.cpuMs.toFixed(0),
          r.loopMaxMs.toFixed(1),
        ]),
      );
    }
  }
  rmdirSync(root);
}
