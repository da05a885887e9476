// `cce-secrets-manager webhook` as a child process with a certificate made by openssl,
// registered with the test API server by url and caBundle for one namespace: what the
// webhook test and the admission benchmark share.
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, logTail, startProcess, stopProcess, waitFor, type Managed } from '../cluster/processes.js';
import { kubeconfigPath, kubectl, webhookClient } from './cluster.js';
import { executable } from './driver.js';
import { makeCa, signLeaf } from '../cluster/pki.js';

export class WebhookHarness {
  readonly dir = mkdtempSync(join(tmpdir(), 'cce-webhook-'));
  port = 0;
  /** The CA of the current serving certificate, base64 PEM (a caBundle). */
  ca = '';
  private process?: Managed;

  /** A CA and a serving certificate for 127.0.0.1; replaces the files whole, as a Secret volume's update does. */
  makeCerts(): string {
    const ca = makeCa(this.dir, 'ca');
    const leaf = signLeaf(this.dir, ca, 'new', '127.0.0.1', ['IP:127.0.0.1', 'DNS:localhost']);
    renameSync(leaf.key, join(this.dir, 'tls.key'));
    renameSync(leaf.cert, join(this.dir, 'tls.crt'));
    this.ca = readFileSync(ca.cert).toString('base64');
    return this.ca;
  }

  /**
   * Starts it trusting the test API server's client certificate for webhooks (as an admin
   * who can write the AdmissionConfiguration does), or, with `authenticated: false`, anyone.
   */
  async start(extraArgs: string[] = [], { authenticated = true } = {}): Promise<void> {
    if (!this.ca) this.makeCerts();
    this.port ||= await freePort();
    const args = [
      'webhook',
      `--port=${this.port}`,
      `--tls-cert-file=${join(this.dir, 'tls.crt')}`,
      `--tls-private-key-file=${join(this.dir, 'tls.key')}`,
      `--kubeconfig=${kubeconfigPath}`,
      ...(authenticated ? [`--client-ca=${webhookClient.ca}`] : []),
      ...extraArgs,
    ];
    this.process = startProcess('webhook', executable, args, join(this.dir, `webhook-${Date.now()}.log`));
    await waitFor(
      'the webhook to serve',
      async () => this.logs.includes('Serving the admission webhook'),
      15_000,
      () => this.logs,
    );
  }

  get pid(): number | undefined {
    return this.process?.child.pid;
  }

  get logs(): string {
    return this.process ? logTail(this.process, 200) : '';
  }

  async stop(): Promise<void> {
    if (this.process) await stopProcess(this.process);
  }

  /** GET over TLS, trusting only `ca` (base64 PEM), on a fresh connection. */
  get(path: string, ca = this.ca): Promise<string> {
    return new Promise<string>((resolve, reject) =>
      https
        .get(`https://127.0.0.1:${this.port}${path}`, { ca: Buffer.from(ca, 'base64'), agent: false }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject),
    );
  }

  /**
   * POST of `body` over TLS: status and body. As any caller that reaches the port could send
   * it, or with `asApiServer`, presenting the API server's client certificate.
   */
  post(path: string, body: string, { asApiServer = false } = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        `https://127.0.0.1:${this.port}${path}`,
        {
          method: 'POST',
          ca: Buffer.from(this.ca, 'base64'),
          agent: false,
          headers: { 'Content-Type': 'application/json' },
          ...(asApiServer ? webhookClient.credentials() : {}),
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Registers it for `namespace` only, as the chart's configuration does for the cluster. */
  async register(namespace: string, failurePolicy: 'Ignore' | 'Fail'): Promise<void> {
    const file = join(this.dir, `vwc-${failurePolicy}.yaml`);
    writeFileSync(file, stringify(this.configuration(namespace, failurePolicy)));
    await kubectl('apply', '-f', file);
  }

  unregister(namespace: string): Promise<string> {
    return kubectl('delete', 'validatingwebhookconfiguration', `cce-test-webhook-${namespace}`, '--ignore-not-found');
  }

  private configuration(namespace: string, failurePolicy: 'Ignore' | 'Fail') {
    const common = {
      clientConfig: { url: `https://127.0.0.1:${this.port}/validate`, caBundle: this.ca },
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      failurePolicy,
      timeoutSeconds: 5,
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
    };
    const rule = (apiGroups: string[], resources: string[], apiVersions = ['v1']) => [
      { apiGroups, apiVersions, operations: ['CREATE', 'UPDATE'], resources },
    ];
    return {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: `cce-test-webhook-${namespace}` },
      webhooks: [
        {
          name: 'secretproviderclasses.cce-secrets-manager.io',
          ...common,
          rules: rule(['secrets-store.csi.x-k8s.io'], ['secretproviderclasses']),
          matchConditions: [
            { name: 'provider-cce', expression: "has(object.spec.provider) && object.spec.provider == 'cce'" },
          ],
        },
        {
          name: 'secretsyncs.cce-secrets-manager.io',
          ...common,
          rules: rule(['secret-sync.x-k8s.io'], ['secretsyncs'], ['v1alpha1']),
        },
        {
          name: 'serviceaccounts.cce-secrets-manager.io',
          ...common,
          rules: rule([''], ['serviceaccounts']),
          matchConditions: [
            {
              name: 'has-allow-list',
              expression: "has(object.metadata.annotations) && 'cce.io/dew-resource' in object.metadata.annotations",
            },
          ],
        },
      ],
    };
  }
}
