// Admission latency of `cce-secrets-manager webhook` for an SPC of 20 objects: the webhook
// alone (an AdmissionReview posted to it over TLS) and as the API server adds it to an SPC
// create (server-side dry run, with and without the webhook registered, in one run).
import * as https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { GROUP, SPC_PLURAL, VERSION } from '../src/crds/types.js';
import { loadKubeConfig } from '../src/kube/client.js';
import { waitFor } from '../test/cluster/processes.js';
import {
  createNamespace,
  createServiceAccount,
  deleteNamespace,
  kubeconfigPath,
  webhookClient,
} from '../test/helpers/cluster.js';
import { WebhookHarness } from '../test/helpers/webhook.js';
import { printTable, summary } from './stats.js';

const N = 200;
const objects = Array.from(
  { length: 20 },
  (_, i) =>
    `- {objectName: secret_${i}, objectType: csms, objectVersion: ${i % 2 ? 'latest' : 'v1'}, jmesPath: [{path: user, objectAlias: user_${i}}]}\n`,
).join('');

function spc(ns: string, name: string, bad = false) {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'SecretProviderClass',
    metadata: { name, namespace: ns },
    spec: { provider: 'cce', parameters: { objects: bad ? objects.replace('csms', 'kms') : objects } },
  };
}

/** One AdmissionReview posted to the webhook; resolves to the round trip in ms. */
function review(hook: WebhookHarness, agent: https.Agent, ns: string, i: number): Promise<number> {
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: `u${i}`, kind: { kind: 'SecretProviderClass' }, operation: 'CREATE', object: spc(ns, `s${i}`) },
  });
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: hook.port,
        path: '/validate',
        method: 'POST',
        ca: Buffer.from(hook.ca, 'base64'),
        ...webhookClient.credentials(),
        agent,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - t0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function dryRunCreates(
  custom: k8s.CustomObjectsApi,
  ns: string,
  prefix: string,
  bad = false,
  n = N,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const body = spc(ns, `${prefix}-${i}`, bad);
    await custom
      .createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: SPC_PLURAL,
        namespace: ns,
        body,
        dryRun: 'All',
      })
      .catch(() => undefined);
    times.push(performance.now() - t0);
  }
  return times;
}

export async function run(): Promise<void> {
  const hook = new WebhookHarness();
  await hook.start();
  const ns = await createNamespace('bench-webhook', ['*']);
  const custom = loadKubeConfig(kubeconfigPath).makeApiClient(k8s.CustomObjectsApi);
  const agent = new https.Agent({ keepAlive: true });
  try {
    await createServiceAccount(
      ns,
      'app',
      Array.from({ length: 20 }, (_, i) => `secret_${i}`),
    );
    for (let i = 0; i < 20; i++) await review(hook, agent, ns, i);
    const direct: number[] = [];
    for (let i = 0; i < N; i++) direct.push(await review(hook, agent, ns, i));
    await dryRunCreates(custom, ns, 'warm');
    const without = await dryRunCreates(custom, ns, 'plain');
    await hook.register(ns, 'Fail');
    // Registered once a broken SPC is refused through the API server.
    const refusedCount = async () =>
      Number(
        /admission_reviews_total\{kind="SecretProviderClass",result="refused"\} (\d+)/.exec(
          await hook.get('/metrics'),
        )?.[1] ?? 0,
      );
    await waitFor(
      'the webhook to be called',
      async () => {
        await dryRunCreates(custom, ns, 'probe', true, 1);
        return (await refusedCount()) > 0;
      },
      15_000,
      () => hook.logs,
    );
    await dryRunCreates(custom, ns, 'warm2');
    const withHook = await dryRunCreates(custom, ns, 'hooked');
    const refused = await dryRunCreates(custom, ns, 'bad', true);
    const reviews = (await hook.get('/metrics'))
      .split('\n')
      .filter((l) => l.startsWith('admission_reviews_total'))
      .map((l) => l.replace('admission_reviews_total', ''))
      .join(', ');
    printTable(
      ['webhook', 'latency'],
      [
        ['the webhook alone, one AdmissionReview (SPC of 20 objects, TLS, keep-alive)', summary(direct)],
        ['SPC create (server-side dry run) without the webhook', summary(without)],
        ['SPC create (server-side dry run) with the webhook', summary(withHook)],
        ['refused SPC create (server-side dry run) with the webhook', summary(refused)],
        ['reviews counted by the webhook', reviews],
      ],
    );
  } finally {
    agent.destroy();
    await hook.unregister(ns);
    await hook.stop();
    await deleteNamespace(ns);
  }
}
