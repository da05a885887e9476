// A real kubelet joined to the test control plane as a node, with Kubernetes' fake CRI
// server as its container runtime, started with flags for a test VM (no QoS cgroups, no
// node allocatable enforcement, swap allowed). Its volume manager, CSI volume plugin and
// plugin watcher are the code that calls the driver.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, logTail, startProcess, stopProcess, waitFor, type Managed } from './processes.js';

export interface KubeletNode {
  name: string;
  /** kubelet's --root-dir: pods, plugins and plugins_registry live below it. */
  root: string;
  logs(): string;
  stop(): Promise<void>;
}

/** An address of this machine that is not loopback: kubelet refuses a loopback node IP. */
export function nodeIp(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('no non-loopback IPv4 address for the kubelet node');
}

function kubeletConfig(dir: string, cri: string, port: number): string {
  // With a real runtime, containers' logs (kubectl logs) go to the test folder, not /var/log/pods.
  const path = join(dir, 'kubelet-config.yaml');
  writeFileSync(
    path,
    [
      'apiVersion: kubelet.config.k8s.io/v1beta1',
      'kind: KubeletConfiguration',
      'cgroupsPerQOS: false',
      'enforceNodeAllocatable: []',
      'failSwapOn: false',
      'cgroupDriver: cgroupfs',
      `containerRuntimeEndpoint: ${cri}`,
      `imageServiceEndpoint: ${cri}`,
      'authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}',
      'authorization: {mode: AlwaysAllow}',
      `port: ${port}`,
      'readOnlyPort: 0',
      'healthzPort: 0',
      'registerNode: true',
      'makeIPTablesUtilChains: false',
      'localStorageCapacityIsolation: false',
      // Volume and pod state are re-checked often, so the tests wait seconds, not minutes.
      'syncFrequency: 2s',
      'fileCheckFrequency: 2s',
      `podLogsDir: ${join(dir, 'pod-logs')}`,
    ].join('\n'),
  );
  return path;
}

/**
 * Starts kubelet, on Kubernetes' fake CRI (started here) unless `runtime` names a real one's
 * CRI endpoint (test/cluster/containerd.ts); resolves once kubelet has started.
 */
export async function startKubeletNode(
  binDir: string,
  kubeconfig: string,
  name: string,
  runtime?: string,
): Promise<KubeletNode> {
  const dir = mkdtempSync(join(tmpdir(), 'cce-node-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  const cri = runtime ?? `unix://${join(dir, 'cri.sock')}`;
  const procs: Managed[] = runtime
    ? []
    : [startProcess('fake-cri', join(binDir, 'fake-cri'), [cri], join(dir, 'fake-cri.log'))];
  const kubelet = startProcess(
    'kubelet',
    join(binDir, 'kubelet'),
    [
      `--config=${kubeletConfig(dir, cri, await freePort())}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${root}`,
      `--cert-dir=${join(dir, 'pki')}`,
      `--hostname-override=${name}`,
      `--node-ip=${nodeIp()}`,
      '-v=2',
    ],
    join(dir, 'kubelet.log'),
  );
  procs.push(kubelet);
  const stop = async () => {
    for (const p of procs.reverse()) await stopProcess(p);
    // kubelet bind-mounts its root onto itself (shared propagation), and volumes may remain.
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((p) => p === dir || p.startsWith(`${dir}/`));
    for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
  };
  const logs = () => logTail(kubelet, 60);
  return { name, root, logs, stop: () => stop().then(() => rmSync(dir, { recursive: true, force: true })) };
}

/** Waits for `check` (e.g. the Node being Ready), showing kubelet's log on a timeout. */
export async function waitForNode(node: KubeletNode, what: string, check: () => Promise<boolean>): Promise<void> {
  await waitFor(what, check, 60_000, () => node.logs());
}
