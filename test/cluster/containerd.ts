// containerd (Debian's, installed with apt when missing) as a real node's container runtime:
// its own root, state, sockets, runc root and CNI network in one test folder, so it shares
// nothing with the host; images come from buildah storage, nothing is ever pulled. The pod
// network is a CNI bridge; the `kubernetes` Service is reached as kube-proxy would do it, by one
// DNAT rule from the bridge to the API server. Everything it starts or creates, stop() removes.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exportImage, type ImageTools } from './images.js';
import { logTail, startProcess, stopProcess, waitFor, type Managed } from './processes.js';

const run = promisify(execFile);

export interface Containerd {
  /** The CRI endpoint for kubelet. */
  endpoint: string;
  /** The pods' subnet; the host is its first address on the bridge. */
  podSubnet: string;
  logs(): string;
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** The tools folder (test/cluster/install-tools.sh), with crictl. */
  binDir: string;
  images: ImageTools;
  /** Imported before kubelet starts; the first is the sandbox (pause) image. */
  load: string[];
  /** The `kubernetes` Service's ClusterIP and port, and where the API server really listens. */
  apiService: { clusterIp: string; port: number; target: string };
}

const BRIDGE = 'cce-test0';
const POD_SUBNET = '10.244.77.0/24';
const NAT_COMMENT = 'cce-secrets-manager test node';

function ensurePackages(): void {
  if (existsSync('/usr/bin/containerd') && existsSync('/usr/lib/cni/bridge')) return;
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', 'containerd', 'runc', 'containernetworking-plugins'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

function writeConfig(dir: string, sandboxImage: string): string {
  const cni = join(dir, 'cni');
  mkdirSync(cni);
  writeFileSync(
    join(cni, '10-cce-test.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'cce-test',
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_SUBNET }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: join(dir, 'ipam'),
          },
        },
      ],
    }),
  );
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
      `[${cri}.cni]\nbin_dir = "/usr/lib/cni"\nconf_dir = "${cni}"`,
      '',
    ].join('\n'),
  );
  return path;
}

function natRule(action: '-A' | '-D', api: ContainerdOptions['apiService']): string[] {
  return [
    '-t',
    'nat',
    action,
    'PREROUTING',
    '-i',
    BRIDGE,
    '-d',
    `${api.clusterIp}/32`,
    '-p',
    'tcp',
    '--dport',
    String(api.port),
    '-m',
    'comment',
    '--comment',
    NAT_COMMENT,
    '-j',
    'DNAT',
    '--to-destination',
    api.target,
  ];
}

/** For clean-up steps that may find nothing to remove (no shim left, no bridge made). */
function bestEffort(cmd: string, ...args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // nothing of that kind was left
  }
}

/** Mount points under `dir` (overlay rootfs, shm, netns), deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .reverse();
}

export async function startContainerd(opts: ContainerdOptions): Promise<Containerd> {
  ensurePackages();
  const dir = mkdtempSync(join(tmpdir(), 'cce-containerd-'));
  const config = writeConfig(dir, opts.load[0]);
  const socket = join(dir, 'containerd.sock');
  const containerd: Managed = startProcess('containerd', '/usr/bin/containerd', ['--config', config], join(dir, 'log'));
  const ctr = (...args: string[]) => run('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args]);
  execFileSync('iptables', natRule('-A', opts.apiService));

  const stop = async () => {
    // Pods through CRI first, as kubelet would remove them: CNI releases their addresses and
    // caches, and their shims exit. Then whatever that left (runc's own state, shims), then
    // containerd itself.
    const crictl = join(opts.binDir, 'crictl');
    bestEffort(crictl, '--runtime-endpoint', `unix://${socket}`, '--timeout', '30s', 'rmp', '--all', '--force');
    const runcRoot = join(dir, 'runc', 'k8s.io');
    if (existsSync(runcRoot)) {
      const list = JSON.parse(
        execFileSync('runc', ['--root', runcRoot, 'list', '--format', 'json'], { encoding: 'utf8' }) || '[]',
      ) as { id: string }[] | null;
      for (const { id } of list ?? []) execFileSync('runc', ['--root', runcRoot, 'delete', '--force', id]);
    }
    bestEffort('pkill', '-KILL', '-f', `containerd-shim-runc-v2 .*-address ${socket}`);
    await stopProcess(containerd);
    for (const m of mountsUnder(dir)) execFileSync('umount', ['-l', m]);
    bestEffort('iptables', ...natRule('-D', opts.apiService));
    bestEffort('ip', 'link', 'delete', BRIDGE);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'containerd',
      async () => (await ctr('version')).stdout.includes('Server'),
      30_000,
      () => logTail(containerd),
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
    logs: () => logTail(containerd, 60),
    stop,
  };
}
