// Access to the real control plane that test/run.ts started for this run.
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { errorMessage } from '../../src/errors.js';

const run = promisify(execFile);

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through 'npm test', which starts the control plane`);
  return value;
}

export const kubeconfigPath = required('CCE_TEST_KUBECONFIG');
/** The test API server's client certificate for webhooks (control-plane.ts), and its CA. */
export const webhookClient = {
  ca: join(dirname(kubeconfigPath), 'webhook-client-ca.crt'),
  credentials: () => ({
    cert: readFileSync(join(dirname(kubeconfigPath), 'webhook-client.crt')),
    key: readFileSync(join(dirname(kubeconfigPath), 'webhook-client.key')),
  }),
};
export const binDir = required('CCE_TEST_BIN');

export const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfigPath);
export const core = kc.makeApiClient(k8s.CoreV1Api);
export const custom = kc.makeApiClient(k8s.CustomObjectsApi);

export const GROUP = 'secrets-store.csi.x-k8s.io';

/** kubectl apply of one manifest: stdout and stderr (where admission warnings go), and whether it succeeded. */
export function applyManifest(obj: object): { ok: boolean; out: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'cce-apply-')), 'manifest.yaml');
  writeFileSync(file, stringify(obj));
  const r = spawnSync(join(binDir, 'kubectl'), ['--kubeconfig', kubeconfigPath, 'apply', '-f', file], {
    encoding: 'utf8',
  });
  rmSync(file, { force: true });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

/** Runs the built kubectl against the test cluster; rejects with its stderr on failure. */
export async function kubectl(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(join(binDir, 'kubectl'), ['--kubeconfig', kubeconfigPath, ...args]);
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')}: ${e.stderr || e.message}`, { cause: err });
  }
}

/**
 * A fresh namespace per test keeps tests independent on the shared control plane; `permit`
 * is its cluster admin's permit (cce.io/dew-resource-permitted), as a configured cluster has.
 */
export async function createNamespace(prefix: string, permit?: string[]): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  const annotations = permit && { 'cce.io/dew-resource-permitted': JSON.stringify(permit) };
  await core.createNamespace({ body: { metadata: { name, annotations } } });
  return name;
}

export async function deleteNamespace(name: string): Promise<void> {
  await core.deleteNamespace({ name }).catch(() => undefined);
}

export interface PodOptions {
  nodeName?: string;
  serviceAccountName?: string;
  /** secrets-store csi volumes: volume name → SPC name (default: none). */
  volumes?: Record<string, string>;
  /** Shorthand for one volume `secrets-store-inline` with this SPC. */
  spc?: string;
  /** spec.securityContext.fsGroup */
  fsGroup?: number;
  /** More volumeAttributes on each csi volume. */
  volumeAttributes?: Record<string, string>;
}

/** A Pod bound to `nodeName`; nothing runs it, but its API object is as kubelet would see it. */
export async function createPod(namespace: string, name: string, opts: PodOptions = {}) {
  const volumes = Object.entries(opts.volumes ?? (opts.spc ? { 'secrets-store-inline': opts.spc } : {})).map(
    ([volume, spc]) => ({
      name: volume,
      csi: {
        driver: 'secrets-store.csi.k8s.io',
        readOnly: true,
        volumeAttributes: { ...opts.volumeAttributes, secretProviderClass: spc },
      },
    }),
  );
  return core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: {
        nodeName: opts.nodeName ?? 'node-1',
        serviceAccountName: opts.serviceAccountName,
        ...(opts.fsGroup === undefined ? {} : { securityContext: { fsGroup: opts.fsGroup } }),
        containers: [
          {
            name: 'app',
            image: 'registry.invalid/app:1',
            volumeMounts: volumes.map((v) => ({ name: v.name, mountPath: `/mnt/${v.name}`, readOnly: true })),
          },
        ],
        volumes,
      },
    },
  });
}

export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${errorMessage(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function createServiceAccount(namespace: string, name: string, allowed?: string[] | string) {
  const annotations =
    allowed === undefined
      ? undefined
      : { 'cce.io/dew-resource': typeof allowed === 'string' ? allowed : JSON.stringify(allowed) };
  return core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, annotations } } });
}

/** An SPC of provider cce with these objects; `spec` and `metadata` add to (or replace) its fields. */
export async function createSpc(
  namespace: string,
  name: string,
  objects: string,
  spec: Record<string, unknown> = {},
  metadata: Record<string, unknown> = {},
) {
  return custom.createNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace,
    plural: 'secretproviderclasses',
    body: {
      apiVersion: `${GROUP}/v1`,
      kind: 'SecretProviderClass',
      metadata: { ...metadata, name },
      spec: { provider: 'cce', parameters: { objects }, ...spec },
    },
  });
}

export async function getSpcps(namespace: string, name: string): Promise<Record<string, any> | undefined> {
  try {
    return await custom.getNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace,
      plural: 'secretproviderclasspodstatuses',
      name,
    });
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** Waits until the SPCPS is gone: the driver deletes it right after answering an unpublish. */
export async function spcpsGone(namespace: string, name: string): Promise<void> {
  await eventually(`SPCPS ${namespace}/${name} to be deleted`, async () =>
    (await getSpcps(namespace, name)) === undefined ? true : undefined,
  );
}

export async function patchSpcObjects(namespace: string, name: string, objects: string): Promise<void> {
  await kubectl(
    'patch',
    'spc',
    name,
    '-n',
    namespace,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { parameters: { objects } } }),
  );
}

export async function podEvents(
  namespace: string,
  pod: string,
): Promise<{ reason?: string; message?: string; type?: string }[]> {
  const list = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${pod}` });
  return list.items;
}

export async function readSecret(namespace: string, name: string) {
  try {
    return await core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** One key of a Secret's data, decoded; undefined when the Secret or the key is missing. */
export async function secretValue(namespace: string, name: string, key: string): Promise<string | undefined> {
  const value = (await readSecret(namespace, name))?.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString();
}

/** A kubeconfig at `path` for the test API server with a token of ServiceAccount namespace/name. */
export async function serviceAccountKubeconfig(namespace: string, name: string, path: string): Promise<string> {
  const token = (await kubectl('create', 'token', name, '-n', namespace)).trim();
  writeFileSync(
    path,
    `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${kc.getCurrentCluster()!.server}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: "${token}"}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
  );
  return path;
}

export const chartDir = resolve(import.meta.dirname, '../../../charts/cce-secrets-manager');

/** Runs the tools cache's helm; a failure is returned (code, output), not thrown. */
export async function helm(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return run(join(binDir, 'helm'), args, { maxBuffer: 16 * 1024 * 1024 }).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );
}

/** Creates an SPCPS by hand, as anyone who may write in the namespace could. */
export async function createSpcps(
  namespace: string,
  metadata: Record<string, unknown>,
  status: Record<string, unknown>,
) {
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace,
    plural: 'secretproviderclasspodstatuses',
    body: { apiVersion: `${GROUP}/v1`, kind: 'SecretProviderClassPodStatus', metadata, status },
  });
}
