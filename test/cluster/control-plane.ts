// The test control plane: tools from the cache, then etcd, kube-apiserver and kube-controller-manager.
import { execFile, execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { makeCa, signLeaf } from './pki.js';
import { freePort, logTail, startProcess, stopProcess, waitFor, type Managed } from './processes.js';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../../..');
export const crdDir = join(repoRoot, 'charts/cce-secrets-manager/files/crds');

/** A real etcd + kube-apiserver + kube-controller-manager on loopback. */
export interface ControlPlane {
  binDir: string;
  kubeconfig: string;
  server: string;
  /** The `kubernetes` Service's ClusterIP, which pods are given as KUBERNETES_SERVICE_HOST. */
  serviceIp: string;
  /** With pods: the CA of the API server's client certificate towards kubelets. */
  kubeletClientCa?: string;
  stop(): Promise<void>;
}

/**
 * What a cluster with real pods needs besides: the API server on a node address (pods reach it
 * through the `kubernetes` Service), a serving certificate for that Service signed by a CA that
 * pods trust (kube-root-ca.crt), ServiceAccount admission (pods get their token volume), the
 * controllers behind DaemonSets, Deployments and Endpoints, and kube-scheduler. No CRDs: the
 * chart under test installs them.
 */
export interface PodClusterOptions {
  address: string;
}

const SERVICE_IP = '10.0.0.1';

/** Builds (first run) or finds (cached) the Kubernetes binaries; returns their folder. */
export function installTools(): string {
  const script = join(repoRoot, 'test/cluster/install-tools.sh');
  return execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export async function startControlPlane(binDir: string, pods?: PodClusterOptions): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'cce-control-plane-'));
  const procs: Managed[] = [];
  const stop = async () => {
    for (const p of procs.reverse()) await stopProcess(p);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const etcdUrl = await startEtcd(binDir, dir, procs);
    const { server, token } = await startApiServer(binDir, dir, etcdUrl, procs, pods);
    const kubeconfig = writeKubeconfig(dir, server, token);
    // Garbage collection (SPCPS and synced Secrets follow their Pod), namespace deletion,
    // default ServiceAccounts, and the aggregated bootstrap roles (admin, edit, view) that
    // namespace users are bound to; nothing else is needed by the tests without real pods.
    const controllers = ['garbagecollector', 'namespace', 'serviceaccount', 'clusterrole-aggregation'];
    if (pods)
      controllers.push(
        'daemonset',
        'deployment',
        'replicaset',
        'endpoint',
        'endpointslice',
        'root-ca-cert-publisher',
        'nodelifecycle',
      );
    procs.push(
      startProcess(
        'kube-controller-manager',
        join(binDir, 'kube-controller-manager'),
        [
          `--kubeconfig=${kubeconfig}`,
          `--controllers=${controllers.join(',')}`,
          ...(pods ? [`--root-ca-file=${join(dir, 'serving-ca.crt')}`] : []),
          '--leader-elect=false',
          '--secure-port=0',
        ],
        join(dir, 'kube-controller-manager.log'),
      ),
    );
    if (pods) {
      const args = [`--kubeconfig=${kubeconfig}`, '--leader-elect=false', '--secure-port=0'];
      procs.push(startProcess('kube-scheduler', join(binDir, 'kube-scheduler'), args, join(dir, 'kube-scheduler.log')));
    } else {
      await installCrds(binDir, kubeconfig);
    }
    const kubeletClientCa = pods ? join(dir, 'kubelet-client-ca.crt') : undefined;
    return { binDir, kubeconfig, server, serviceIp: SERVICE_IP, kubeletClientCa, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startEtcd(binDir: string, dir: string, procs: Managed[]): Promise<string> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const etcd = startProcess(
    'etcd',
    join(binDir, 'etcd'),
    [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      // Test data is thrown away: skipping fsync makes the suite several times faster.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    join(dir, 'etcd.log'),
  );
  procs.push(etcd);
  await waitFor(
    'etcd /health',
    () => httpOk(`${clientUrl}/health`),
    30_000,
    () => logTail(etcd),
  );
  return clientUrl;
}

async function startApiServer(
  binDir: string,
  dir: string,
  etcdUrl: string,
  procs: Managed[],
  pods?: PodClusterOptions,
) {
  const address = pods?.address ?? '127.0.0.1';
  const port = await freePort(address);
  const token = randomBytes(24).toString('hex');
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
  const apiserver = startProcess(
    'kube-apiserver',
    join(binDir, 'kube-apiserver'),
    [
      `--etcd-servers=${etcdUrl}`,
      `--secure-port=${port}`,
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
      ...(pods
        ? podClusterFlags(dir, address)
        : // Nothing in the cluster is a pod that would look up a ServiceAccount token.
          [`--cert-dir=${join(dir, 'certs')}`, '--disable-admission-plugins=ServiceAccount']),
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      `--admission-control-config-file=${webhookClientIdentity(dir)}`,
    ],
    join(dir, 'kube-apiserver.log'),
  );
  procs.push(apiserver);
  const server = `https://${address}:${port}`;
  await waitFor(
    'kube-apiserver /readyz',
    () => httpsOk(`${server}/readyz`, token),
    60_000,
    () => logTail(apiserver),
  );
  return { server, token };
}

/**
 * The API server flags of a cluster with pods: a CA (serving-ca.crt, which pods get as
 * kube-root-ca.crt) and a serving certificate by it for the `kubernetes` Service, a client
 * certificate towards kubelets (kubelet-client-ca.crt beside the kubeconfig, which a real
 * node's kubelet trusts, instead of answering anyone), and Service routing.
 */
function podClusterFlags(dir: string, address: string): string[] {
  const ca = makeCa(dir, 'serving-ca');
  const names = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];
  const serving = signLeaf(dir, ca, 'serving', 'kube-apiserver', [
    ...names.map((n) => `DNS:${n}`),
    `IP:${SERVICE_IP}`,
    `IP:${address}`,
  ]);
  const kubeletClient = signLeaf(
    dir,
    makeCa(dir, 'kubelet-client-ca'),
    'kubelet-client',
    'kube-apiserver-kubelet-client',
  );
  return [
    `--tls-cert-file=${serving.cert}`,
    `--tls-private-key-file=${serving.key}`,
    `--kubelet-client-certificate=${kubeletClient.cert}`,
    `--kubelet-client-key=${kubeletClient.key}`,
    // Webhooks (and other Services the API server calls) are reached at their endpoints' pod
    // IPs, and kubelets at their node IPs: the host has no cluster DNS and no kube-proxy.
    '--enable-aggregator-routing=true',
    '--kubelet-preferred-address-types=InternalIP',
  ];
}

/**
 * The API server's identity towards admission webhooks, as an admin configures it: a client
 * certificate (signed by webhook-client-ca.crt beside the kubeconfig, which a webhook's
 * --client-ca trusts) for every webhook, through the AdmissionConfiguration's kubeconfig.
 * Returns the AdmissionConfiguration's path.
 */
function webhookClientIdentity(dir: string): string {
  const client = signLeaf(dir, makeCa(dir, 'webhook-client-ca'), 'webhook-client', 'kube-apiserver');
  const kubeconfig = join(dir, 'webhook-kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'users:',
      `- name: "*"\n  user:\n    client-certificate: ${client.cert}\n    client-key: ${client.key}`,
      '',
    ].join('\n'),
  );
  const config = join(dir, 'admission.yaml');
  const plugin = (name: string) =>
    `- name: ${name}\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: ${kubeconfig}`;
  writeFileSync(
    config,
    [
      'apiVersion: apiserver.config.k8s.io/v1',
      'kind: AdmissionConfiguration',
      'plugins:',
      plugin('ValidatingAdmissionWebhook'),
      plugin('MutatingAdmissionWebhook'),
      '',
    ].join('\n'),
  );
  return config;
}

function writeKubeconfig(dir: string, server: string, token: string): string {
  const path = join(dir, 'kubeconfig');
  // The serving certificate is self-signed by kube-apiserver for this run only.
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: test\n  cluster:\n    server: ${server}\n    insecure-skip-tls-verify: true`,
      'users:',
      `- name: admin\n  user:\n    token: ${token}`,
      'contexts:',
      '- name: test\n  context:\n    cluster: test\n    user: admin',
      'current-context: test',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return path;
}

async function installCrds(binDir: string, kubeconfig: string): Promise<void> {
  const kubectl = join(binDir, 'kubectl');
  const files = readdirSync(crdDir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(crdDir, f));
  await run(kubectl, ['--kubeconfig', kubeconfig, 'apply', '--server-side', ...files.flatMap((f) => ['-f', f])]);
  await run(kubectl, [
    '--kubeconfig',
    kubeconfig,
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/secretproviderclasses.secrets-store.csi.x-k8s.io',
    'crd/secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io',
    'crd/secretsyncs.secret-sync.x-k8s.io',
  ]);
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    httpGet(url, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    }).on('error', () => resolve(false));
  });
}

function httpsOk(url: string, token: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { headers: { Authorization: `Bearer ${token}` }, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}
