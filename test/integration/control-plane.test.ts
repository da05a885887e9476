// Proves the harness is a real API server: CRD schema, printer columns, watch, GC.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import {
  GROUP,
  createNamespace,
  createPod,
  createSpcps,
  custom,
  deleteNamespace,
  eventually,
  kc,
  kubectl,
} from '../helpers/cluster.js';

/** The API server's refusal text (the body of the client's error, else its message). */
function apiErrorBody(err: Error): string {
  const body = (err as { body?: unknown }).body;
  return typeof body === 'string' ? body : body ? JSON.stringify(body) : err.message;
}

function spc(name: string, provider: unknown = 'cce') {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: 'SecretProviderClass',
    metadata: { name },
    spec: {
      provider,
      parameters: { objects: '- objectName: "secret_1"\n  objectVersion: "v1"\n  objectType: "csms"\n' },
    },
  };
}

let ns: string;
before(async () => {
  ns = await createNamespace('cp');
});
after(async () => {
  await deleteNamespace(ns);
});

/** Creates an SPC object as written, without the test helpers' defaults. */
async function applySpc(body: object): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace: ns,
    plural: 'secretproviderclasses',
    body,
  });
}

it('lists an applied SecretProviderClass with kubectl get spc', async () => {
  await applySpc(spc('spc-test'));
  const out = await kubectl('get', 'spc', '-n', ns);
  assert.match(out, /^NAME\s+PROVIDER\s+AGE/m);
  assert.match(out, /^spc-test\s+cce\s+/m);
});

it('shows pod, SPC and mounted columns for kubectl get spcps', async () => {
  await createSpcps(
    ns,
    { name: `web-0-${ns}-spc-test`, labels: { 'internal.secrets-store.csi.k8s.io/node-name': 'node-1' } },
    {
      podName: 'web-0',
      secretProviderClassName: 'spc-test',
      mounted: true,
      targetPath: '/t',
      objects: [{ id: 'secret_1', version: 'v1' }],
    },
  );
  const out = await kubectl('get', 'spcps', '-n', ns, '-o', 'wide');
  assert.match(out, /^NAME\s+POD\s+SPC\s+MOUNTED\s+NODE\s+AGE/m);
  assert.match(out, new RegExp(`^web-0-${ns}-spc-test\\s+web-0\\s+spc-test\\s+true\\s+node-1\\s+`, 'm'));
});

it('rejects an object that breaks the CRD schema, naming the field', async () => {
  await assert.rejects(applySpc(spc('bad', 42)), (err: Error) => /spec\.provider/.test(apiErrorBody(err)));
  const noProvider = spc('bad2');
  delete (noProvider.spec as { provider?: unknown }).provider;
  await assert.rejects(applySpc(noProvider), (err: Error) => /spec\.provider: Required value/.test(apiErrorBody(err)));
});

it('delivers an SPC update to a watch', async () => {
  await applySpc(spc('watched'));
  let stopWatch: AbortController | undefined;
  const seen = new Promise<string>((resolve, reject) => {
    void new k8s.Watch(kc)
      .watch(
        `/apis/${GROUP}/v1/namespaces/${ns}/secretproviderclasses`,
        {},
        (type, obj: { metadata: { name: string }; spec: { parameters: { objects: string } } }) => {
          if (type === 'MODIFIED' && obj.metadata.name === 'watched') resolve(obj.spec.parameters.objects);
        },
        (err: Error | null) => err && reject(err),
      )
      .then((req) => {
        stopWatch = req;
      });
  });
  await eventually('the watch to open', async () => stopWatch);
  await kubectl(
    'patch',
    'spc',
    'watched',
    '-n',
    ns,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { parameters: { objects: 'changed' } } }),
  );
  assert.equal(await seen, 'changed');
  stopWatch!.abort();
});

it('garbage-collects an SPCPS after its owner Pod is deleted', async () => {
  const pod = await createPod(ns, 'owner');
  const name = `owner-${ns}-spc-test`;
  await createSpcps(
    ns,
    {
      name,
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'owner', uid: pod.metadata!.uid! }],
    },
    { podName: 'owner', secretProviderClassName: 'spc-test', mounted: true, targetPath: '/t' },
  );
  await kubectl('delete', 'pod', 'owner', '-n', ns, '--grace-period=0', '--force', '--wait=false');
  await eventually('the SPCPS to be garbage-collected', async () => {
    const out = await kubectl('get', 'spcps', '-n', ns, '--ignore-not-found', '-o', 'name');
    return out.includes(name) ? undefined : true;
  });
});
