// CPU per API call of this process, the floor under the driver's per-mount cost: each mount
// writes one SPCPS. The same ConfigMap creates and reads go through client-node as the
// driver configures it (loadKubeConfig's pooled agent) and, for scale only, through Node's
// https module with the same agent and credentials; 25 calls in flight, as in a burst. Each
// transport the driver can take is measured side by side (issue 27).
import * as https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/kube/client.js';
import { createNamespace, deleteNamespace, kubeconfigPath } from '../../test/helpers/cluster.js';
import { markdownHeader, markdownRow } from '../stats.js';

const CALLS = 330;
const IN_FLIGHT = 25;

type Call = (i: number) => Promise<unknown>;

/** Microseconds of this process's CPU per call, `CALLS` calls with `IN_FLIGHT` at once. */
async function cpuPerCall(call: Call): Promise<number> {
  const start = process.cpuUsage();
  let next = 0;
  const worker = async () => {
    while (next < CALLS) await call(next++);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const used = process.cpuUsage(start);
  return (used.user + used.system) / CALLS;
}

async function plainHttps(kc: k8s.KubeConfig) {
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  // client-node's own agent for this cluster carries its TLS options; keep them, pooled.
  const { options } = opts.agent as https.Agent & { options: https.AgentOptions };
  const agent = new https.Agent({ ...options, keepAlive: true, maxSockets: IN_FLIGHT });
  const server = new URL(kc.getCurrentCluster()!.server);
  return (method: string, path: string, body?: unknown) =>
    new Promise<unknown>((resolve, reject) => {
      const req = https.request(
        {
          host: server.hostname,
          port: server.port,
          method,
          path,
          agent,
          headers: { ...opts.headers, 'content-type': 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
}

/** client-node as the driver configures it, over each transport the driver can take (CCE_KUBE_TRANSPORT). */
const TRANSPORTS = ['http1', 'http2'];

function clientOver(transport: string): k8s.CoreV1Api {
  process.env.CCE_KUBE_TRANSPORT = transport;
  const core = loadKubeConfig(kubeconfigPath).makeApiClient(k8s.CoreV1Api);
  delete process.env.CCE_KUBE_TRANSPORT;
  return core;
}

export async function run(): Promise<void> {
  const kc = loadKubeConfig(kubeconfigPath);
  const request = await plainHttps(kc);
  const clients = TRANSPORTS.map((t) => [t, clientOver(t)] as const);
  const configMap = (name: string) => ({ metadata: { name, labels: { bench: 'api-write' } }, data: { key: 'value' } });
  const columns = [
    'round',
    ...TRANSPORTS.flatMap((t) => [`create, ${t}`, `read, ${t}`]),
    'create, https',
    'read, https',
  ];
  console.log(markdownHeader(columns));
  for (let round = 1; round <= 3; round++) {
    const namespace = await createNamespace('api-write');
    try {
      const us: number[] = [];
      for (const [t, core] of clients) {
        us.push(await cpuPerCall((i) => core.createNamespacedConfigMap({ namespace, body: configMap(`${t}-${i}`) })));
        us.push(await cpuPerCall((i) => core.readNamespacedConfigMap({ namespace, name: `${t}-${i}` })));
      }
      us.push(
        await cpuPerCall((i) => request('POST', `/api/v1/namespaces/${namespace}/configmaps`, configMap(`h${i}`))),
      );
      us.push(await cpuPerCall((i) => request('GET', `/api/v1/namespaces/${namespace}/configmaps/h${i}`)));
      console.log(markdownRow([round, ...us.map((u) => `${(u / 1000).toFixed(2)} ms`)]));
    } finally {
      await deleteNamespace(namespace);
    }
  }
}
