// containerd (Debian's, installed with apt when missing) as a real node's container runtime:
// its own root, state, sockets and runc root in one test folder; images come from buildah
// storage, nothing is ever pulled; the pod network is test/cluster/pod-network.ts. stop()
// removes pods through CRI, as kubelet would (so CNI and the shims clean up after themselves),
// then whatever is left; starting removes what a killed run left.
import { createHash } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { unmountWhere, within } from '../helpers/proc.js';
import { exportImage, type ImageTools } from './images.js';
import { bestEffort, setUpPodNetwork, POD_SUBNET, type ApiService, type PodNetwork } from './pod-network.js';
import { everyStep, logTail, startProcess, stopProcess, waitFor, type Managed } from './processes.js';

const run = promisify(execFile);
const FOLDER_PREFIX = 'cce-containerd-';
const NAMESPACE = 'k8s.io';
// containerd 1.6 puts shim sockets here whatever its state folder is.
const SHIM_SOCKETS = '/run/containerd/s';

export interface Containerd {
  /** The CRI endpoint for kubelet. */
  endpoint: string;
  /** The pods' subnet; the host is its first address on the bridge. */
  podSubnet: string;
  logs(): string;
  /** Idempotent. */
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** The tools folder (test/cluster/install-tools.sh), with crictl. */
  binDir: string;
  images: ImageTools;
  /** Imported before kubelet starts; the first is the sandbox (pause) image. */
  load: string[];
  /** The `kubernetes` Service, as pods reach it. */
  apiService: ApiService;
}

function ensurePackages(): void {
  if (existsSync('/usr/bin/containerd') && existsSync('/usr/lib/cni/bridge')) return;
  // On a host run by systemd, the package also enables its own containerd.service; the tests
  // never use that one.
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', 'containerd', 'runc', 'containernetworking-plugins'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

function writeConfig(dir: string, sandboxImage: string, cniConfDir: string): string {
  const path = join(dir, 'config.toml');
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  writeFileSync(
    path,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      `[grpc]\naddress = "${dir}/containerd.sock"`,
      `[ttrpc]\naddress = "${dir}/containerd.sock.ttrpc"`,
      `[plugins."io.containerd.internal.v1.opt"]\npath = "${dir}/opt"`,
      `[${cri}]`,
      `sandbox_image = "${sandboxImage}"`,
      // This VM's capability bounding set lacks CAP_SYS_RESOURCE: without it runc cannot start.
      'restrict_oom_score_adj = true',
      'netns_mounts_under_state_dir = true',
      `[${cri}.containerd]\nsnapshotter = "overlayfs"\ndefault_runtime_name = "runc"`,
      `[${cri}.containerd.runtimes.runc]\nruntime_type = "io.containerd.runc.v2"`,
      `[${cri}.containerd.runtimes.runc.options]\nSystemdCgroup = false\nRoot = "${dir}/runc"`,
      `[${cri}.cni]\nbin_dir = "/usr/lib/cni"\nconf_dir = "${cniConfDir}"`,
      '',
    ].join('\n'),
  );
  return path;
}

/**
 * What containerd may leave of a test folder once it is gone (or was killed): runc's
 * containers, their shims and shim sockets, mounts (rootfs, shm, netns); then the folder.
 */
function removeRuntimeState(dir: string): Promise<void> {
  const socket = join(dir, 'containerd.sock');
  const runcRoot = join(dir, 'runc', NAMESPACE);
  const steps: (() => void)[] = [
    () => {
      if (!existsSync(runcRoot)) return;
      const listed = execFileSync('runc', ['--root', runcRoot, 'list', '--format', 'json'], { encoding: 'utf8' });
      for (const { id } of (JSON.parse(listed || 'null') as { id: string }[] | null) ?? []) {
        bestEffort('runc', '--root', runcRoot, 'delete', '--force', id);
        const address = createHash('sha256')
          .update(join(socket, NAMESPACE, id))
          .digest('hex');
        rmSync(join(SHIM_SOCKETS, address), { force: true });
      }
    },
    () => bestEffort('pkill', '-KILL', '-f', `containerd-shim-runc-v2 .*-address ${socket}`),
    () => unmountWhere(within(dir)),
    () => rmSync(dir, { recursive: true, force: true }),
  ];
  return everyStep(steps);
}

/** Test folders of containerd that a killed run left (their containerd is gone with it). */
async function removeLeftovers(): Promise<void> {
  bestEffort('pkill', '-KILL', '-f', `^/usr/bin/containerd --config ${join(tmpdir(), FOLDER_PREFIX)}`);
  for (const name of readdirSync(tmpdir())) {
    if (name.startsWith(FOLDER_PREFIX)) await removeRuntimeState(join(tmpdir(), name));
  }
}

export async function startContainerd(opts: ContainerdOptions): Promise<Containerd> {
  ensurePackages();
  await removeLeftovers();
  const dir = mkdtempSync(join(tmpdir(), FOLDER_PREFIX));
  const socket = join(dir, 'containerd.sock');
  const ctr = (...args: string[]) => run('ctr', ['--address', socket, '--namespace', NAMESPACE, ...args]);
  let network: PodNetwork | undefined;
  let containerd: Managed | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      // Pods through CRI, as kubelet would remove them: CNI releases their addresses and
      // results, and their shims exit with their sockets.
      const crictl = join(opts.binDir, 'crictl');
      bestEffort(crictl, '--runtime-endpoint', `unix://${socket}`, '--timeout', '30s', 'rmp', '--all', '--force');
      if (containerd) await stopProcess(containerd);
      await removeRuntimeState(dir);
    } finally {
      network?.remove();
    }
  };
  try {
    network = setUpPodNetwork(dir, opts.apiService);
    const config = writeConfig(dir, opts.load[0], network.confDir);
    containerd = startProcess('containerd', '/usr/bin/containerd', ['--config', config], join(dir, 'log'));
    const started = containerd;
    await waitFor(
      'containerd',
      async () => (await ctr('version')).stdout.includes('Server'),
      30_000,
      () => logTail(started),
    );
    for (const image of opts.load) {
      const archive = join(dir, 'image.tar');
      await exportImage(opts.images, image, archive);
      await ctr('images', 'import', archive);
      rmSync(archive);
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return {
    endpoint: `unix://${socket}`,
    podSubnet: POD_SUBNET,
    logs: () => (containerd ? logTail(containerd, 60) : ''),
    stop,
  };
}
