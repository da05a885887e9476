// Taking over volumes after a restart (reconciler/recovery.ts): an SPCPS is user-writable, so
// each way a hostile or stale one could point the driver somewhere else is refused, with one
// Event and nothing adopted; the one that matches a pod, its spec and our own tmpfs is taken.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import type { OwnMount } from '../../src/driver/mounter.js';
import type { MountedVolume } from '../../src/driver/volumes.js';
import type { SpcpsObject } from '../../src/kube/view.js';
import { createLogger } from '../../src/log.js';
import { recoverVolumes } from '../../src/reconciler/recovery.js';

const NODE = 'node-a';
const root = mkdtempSync(join(tmpdir(), 'cce-recovery-'));
const uid = '11111111-2222-3333-4444-555555555555';
const target = (podUid = uid, volume = 'secrets') => `${root}/pods/${podUid}/volumes/kubernetes.io~csi/${volume}/mount`;
mkdirSync(target(), { recursive: true });

const pod = (over: { nodeName?: string; spc?: string; uid?: string; volume?: string } = {}): k8s.V1Pod => ({
  metadata: { name: 'app', namespace: 'shop', uid: over.uid ?? uid },
  spec: {
    nodeName: over.nodeName ?? NODE,
    containers: [],
    volumes: [
      {
        name: over.volume ?? 'secrets',
        csi: { driver: 'secrets-store.csi.k8s.io', volumeAttributes: { secretProviderClass: over.spc ?? 'db' } },
      },
    ],
  },
});

const spcps = (targetPath = target(), owner = uid): SpcpsObject =>
  ({
    metadata: { name: 'app-shop-db', namespace: 'shop', ownerReferences: [{ kind: 'Pod', uid: owner }] },
    status: { podName: 'app', secretProviderClassName: 'db', targetPath, mounted: true, objects: [] },
  }) as unknown as SpcpsObject;

/** One take-over with one SPCPS: what was adopted, and the Events. */
async function takeOver(item: SpcpsObject, thePod: k8s.V1Pod | undefined, mounts: Map<string, OwnMount>) {
  const adopted: MountedVolume[] = [];
  const events: string[] = [];
  const count = await recoverVolumes({
    kube: {
      nodeName: NODE,
      pods: { get: () => thePod } as never,
      spcpsOnNode: async function* () {
        yield item;
      },
      secretData: async () => ({}),
    },
    publisher: { volumes: { get: () => undefined } as never, adopt: async (v: MountedVolume) => void adopted.push(v) },
    events: {
      emit: (_pod: unknown, _type: string, reason: string, message: string) => events.push(`${reason}: ${message}`),
    },
    log: createLogger({ verbosity: 0, json: false, name: 'test', stream: new PassThrough() }),
    kubeletRoot: root,
    ownMounts: () => mounts,
  });
  return { count, adopted, events };
}

const ours = new Map([[target(), { sizeBytes: 8192 }]]);

it('takes over a volume whose SPCPS, pod, spec and tmpfs all agree', async () => {
  const { count, adopted, events } = await takeOver(spcps(), pod(), ours);
  assert.equal(count, 1);
  assert.equal(adopted[0].request.targetPath, target());
  assert.equal(adopted[0].sizeBytes, 8192);
  assert.deepEqual(events, []);
});

const elsewhere = join(root, 'elsewhere');
mkdirSync(elsewhere);
symlinkSync(elsewhere, join(root, 'pods', uid, 'volumes', 'kubernetes.io~csi', 'linked'));

const refusals: [string, SpcpsObject, k8s.V1Pod, Map<string, OwnMount>, RegExp][] = [
  ['a path outside the kubelet root', spcps('/etc/secrets'), pod(), ours, /outside the kubelet root/],
  ['a path of another pod', spcps(target('99999999-2222-3333-4444-555555555555')), pod(), ours, /belongs to pod uid 9/],
  ['a pod on another node', spcps(), pod({ nodeName: 'node-b' }), ours, /runs on node "node-b", not on this node/],
  ['a pod whose volume names another SPC', spcps(), pod({ spc: 'other' }), ours, /names SecretProviderClass "other"/],
  ['no tmpfs of ours at the path', spcps(), pod(), new Map(), /no tmpfs made by this driver is mounted/],
  ['a link on the way', spcps(target(uid, 'linked')), pod({ volume: 'linked' }), ours, /symbolic link/],
];
for (const [what, item, thePod, mounts, message] of refusals) {
  it(`refuses ${what}: nothing adopted, one Event`, async () => {
    const { count, adopted, events } = await takeOver(item, thePod, mounts);
    assert.equal(count, 0);
    assert.deepEqual(adopted, []);
    assert.equal(events.length, 1);
    assert.match(
      events[0],
      /^SecretProviderClassPodStatusIgnored: SecretProviderClassPodStatus shop\/app-shop-db was not taken over/,
    );
    assert.match(events[0], message);
  });
}

it('leaves an SPCPS whose pod is gone or replaced to kubelet and the garbage collector, silently', async () => {
  for (const thePod of [undefined, pod({ uid: 'another-uid' })]) {
    const { count, events } = await takeOver(spcps(), thePod, ours);
    assert.equal(count, 0);
    assert.deepEqual(events, []);
  }
});
