// Races between nodes over one SPCPS name (a StatefulSet's web-0 force-deleted and
// recreated on another node): against the real API server, no node's delete removes a
// status that another node has written since.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { NODE_LABEL } from '../../src/crds/types.js';
import { desiredSpcps } from '../../src/driver/spcps.js';
import type { PublishRequest } from '../../src/driver/volume-request.js';
import { SpcpsWriter } from '../../src/kube/spcps-writer.js';
import { createNamespace, createPod, custom, deleteNamespace, getSpcps } from '../helpers/cluster.js';

let ns: string;
before(async () => {
  ns = await createNamespace('spcps-race');
});
after(async () => {
  await deleteNamespace(ns);
});

it("a node's delete leaves an SPCPS that another node wrote after it (uid and resourceVersion preconditions)", async () => {
  const pod = await createPod(ns, 'web-0', { nodeName: 'node-a' });
  const uid = pod.metadata!.uid!;
  const request = (node: string) =>
    ({
      podName: 'web-0',
      podNamespace: ns,
      spcName: 'spc',
      targetPath: `/var/lib/kubelet/pods/${uid}/volumes/kubernetes.io~csi/${node}/mount`,
    }) as PublishRequest;
  const [nodeA, nodeB] = [new SpcpsWriter(custom), new SpcpsWriter(custom)];
  const { name } = await nodeA.upsert(desiredSpcps(request('a'), uid, 'node-a', [{ id: 's', version: 'v1' }]), 'x');
  // The other node takes the name over for web-0 (as a recreated web-0 would): same object, a new resourceVersion.
  assert.equal(
    (await nodeB.upsert(desiredSpcps(request('b'), uid, 'node-b', [{ id: 's', version: 'v2' }]), 'x')).outcome,
    'updated',
  );
  await nodeA.delete(ns, name, uid);
  const live = await getSpcps(ns, name);
  assert.ok(live, "node A's delete removed what node B wrote");
  assert.equal(live.metadata.labels[NODE_LABEL], 'node-b');
  // What a node wrote last and still holds, it deletes.
  await nodeB.delete(ns, name, uid);
  assert.equal(await getSpcps(ns, name), undefined);
});
