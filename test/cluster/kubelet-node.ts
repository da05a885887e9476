// A real kubelet joined to the test control plane as a node, with Kubernetes' fake CRI
// server as its container runtime or a real one (containerd), started with flags for a test
// VM (no QoS cgroups, no node allocatable enforcement, swap allowed). Its volume manager, CSI
// volume plugin and plugin watcher are the code that calls the driver.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { unmountWhere, within } from '../helpers/proc.js';
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

/**
 * A real container runtime for kubelet (test/cluster/containerd.ts): its CRI endpoint, the CA
 * of the API server's client certificate (kubelet then answers only the API server: a real
 * runtime's exec into a privileged pod is root on the host), and how to stop it, which kubelet's
 * stop does after kubelet and before unmounting its folder.
 */
export interface RealRuntime {
  endpoint: string;
  clientCa: string;
  stop(): Promise<void>;
}

function kubeletConfig(dir: string, cri: string, port: number, clientCa?: string): string {
  const path = join(dir, 'kubelet-config.yaml');
  const authentication = clientCa
    ? `{anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: ${clientCa}}}`
    : '{anonymous: {enabled: true}, webhook: {enabled: false}}';
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
      `authentication: ${authentication}`,
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
      // With a real runtime, containers' logs (kubectl logs) go to the test folder, not /var/log/pods.
      `podLogsDir: ${join(dir, 'pod-logs')}`,
    ].join('\n'),
  );
  return path;
}

/**
 * Starts kubelet, on Kubernetes' fake CRI (started here) unless given a real runtime; resolves
 * once kubelet has started.
 */
export async function startKubeletNode(
  binDir: string,
  kubeconfig: string,
  name: string,
  runtime?: RealRuntime,
): Promise<KubeletNode> {
  const dir = mkdtempSync(join(tmpdir(), 'cce-node-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  const cri = runtime?.endpoint ?? `unix://${join(dir, 'cri.sock')}`;
  const procs: Managed[] = runtime
    ? []
    : [startProcess('fake-cri', join(binDir, 'fake-cri'), [cri], join(dir, 'fake-cri.log'))];
  const kubelet = startProcess(
    'kubelet',
    join(binDir, 'kubelet'),
    [
      `--config=${kubeletConfig(dir, cri, await freePort(nodeIp()), runtime?.clientCa)}`,
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
    try {
      for (const p of procs.reverse()) await stopProcess(p);
      await runtime?.stop();
    } finally {
      // kubelet bind-mounts its root onto itself (shared propagation), and volumes may remain.
      unmountWhere(within(dir));
      rmSync(dir, { recursive: true, force: true });
    }
  };
  return { name, root, logs: () => logTail(kubelet, 60), stop };
}

/** Waits for `check` (e.g. the Node being Ready), showing kubelet's log on a timeout. */
export async function waitForNode(node: KubeletNode, what: string, check: () => Promise<boolean>): Promise<void> {
  await waitFor(what, check, 60_000, () => node.logs());
}
