// In-memory parts for a Publisher under unit test: the cluster's objects, the SPCPS
// store, the secret store and the mounter, each recording what it was asked and able
// to fail on demand. Files go through the real atomic writer into a temporary folder,
// so no root and no API server are needed.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import {
  ALLOW_LIST_ANNOTATION,
  DRIVER_NAME,
  PERMIT_ANNOTATION,
  type SecretProviderClass,
} from '../../src/crds/types.js';
import { atomicWriter, type VolumeWriter } from '../../src/driver/atomic-writer.js';
import type { FileSet } from '../../src/provider/volume-content.js';
import type { Mounter } from '../../src/driver/mounter.js';
import { Publisher } from '../../src/driver/publisher.js';
import type { PublisherDeps } from '../../src/driver/publisher-deps.js';
import type { ClusterReads } from '../../src/driver/volume-plan.js';
import type { PublishRequest } from '../../src/driver/volume-request.js';
import { NotFoundError } from '../../src/errors.js';
import type { SpcpsStore } from '../../src/kube/spcps-writer.js';
import type { Logger } from '../../src/log.js';
import type { ObjectRequest, SecretSource, SecretVersion } from '../../src/provider/secret-source.js';
import { VolumeCredentials } from '../../src/provider/volume-credentials.js';
import { sleep } from '../../src/util/async.js';

/** Names the step that fails next; each is checked once by the part that owns it. */
export type FailingStep = 'fetch' | 'mount' | 'write' | 'record' | 'sync' | undefined;

export class Parts {
  readonly root = mkdtempSync(join(tmpdir(), 'publisher-'));
  failing: FailingStep;
  /** While set, every store read waits for it (to cancel a publish mid-fetch). */
  fetchGate?: Promise<void>;
  readonly fetched: ObjectRequest[] = [];
  readonly mounts = new Map<string, number>();
  readonly spcps = new Map<string, string[]>();
  readonly synced: FileSet[] = [];
  readonly logs: string[] = [];
  /** name → versions, oldest first; `latest` is the last. */
  readonly store = new Map<string, string[]>([
    ['secret_1', ['one-v1', 'one-v2']],
    ['secret_2', ['two-v1']],
  ]);
  /** The annotations of Namespace `ns` (its permit). */
  namespaceAnnotations: Record<string, string> = { [PERMIT_ANNOTATION]: '["secret_*"]' };
  objects =
    '- objectName: secret_1\n  objectType: csms\n  objectVersion: latest\n- objectName: secret_2\n  objectType: csms\n  objectVersion: v1\n';

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  request(uid = '1111-2222'): PublishRequest {
    return {
      volumeId: `csi-${uid}`,
      targetPath: join(this.root, 'pods', uid, 'volumes', 'kubernetes.io~csi', 'secrets', 'mount'),
      volumeName: 'secrets',
      spcName: 'spc',
      podName: `pod-${uid}`,
      podNamespace: 'ns',
      podUid: uid,
      serviceAccount: 'app',
      secrets: { access_key: 'AK', secret_key: 'SK' },
    };
  }

  publisher(overrides: Partial<PublisherDeps> = {}): Publisher {
    return new Publisher({
      cluster: this.cluster(),
      kubeletRoot: this.root,
      spcps: this.spcpsStore(),
      source: this.source(),
      credentials: new VolumeCredentials({
        credentials: () => Promise.reject(new Error('the secret ref has the keys')),
      }),
      mounter: this.mounter(),
      writer: this.writer(),
      log: this.logger(),
      onContent: async (content) => {
        this.fail('sync');
        this.synced.push(content.files);
      },
      ...overrides,
    });
  }

  private fail(step: FailingStep): void {
    if (this.failing !== step) return;
    this.failing = undefined;
    throw new Error(`${step} failed on purpose`);
  }

  private cluster(): ClusterReads {
    const spc = (): SecretProviderClass => ({
      apiVersion: 'secrets-store.csi.x-k8s.io/v1',
      kind: 'SecretProviderClass',
      metadata: { name: 'spc', namespace: 'ns' },
      spec: { provider: 'cce', parameters: { objects: this.objects } },
    });
    const pod = (name: string, uid: string): k8s.V1Pod => ({
      metadata: { name, namespace: 'ns', uid },
      spec: {
        nodeName: 'node-1',
        serviceAccountName: 'app',
        containers: [],
        volumes: [{ name: 'secrets', csi: { driver: DRIVER_NAME, volumeAttributes: { secretProviderClass: 'spc' } } }],
      },
    });
    const allowed = { [ALLOW_LIST_ANNOTATION]: JSON.stringify(['secret_1', 'secret_2']) };
    return {
      nodeName: 'node-1',
      pod: async (_, name, uid) => pod(name, uid),
      spc: async () => spc(),
      serviceAccount: async () => ({ metadata: { name: 'app', namespace: 'ns', annotations: allowed } }),
      namespace: async (name) => ({ metadata: { name, annotations: this.namespaceAnnotations } }),
      checkSpcLimit: async () => undefined,
    };
  }

  private spcpsStore(): SpcpsStore {
    return {
      upsert: async (desired) => {
        this.fail('record');
        const versions = desired.status.objects.map((o) => `${o.id}@${o.version}`);
        this.spcps.set(desired.metadata.name, versions);
        return { name: desired.metadata.name, outcome: 'created' };
      },
      delete: async (_, name) => {
        this.spcps.delete(name);
      },
    };
  }

  /** The in-memory store as a SecretSource (what a publisher from `publisher()` reads). */
  source(): SecretSource {
    const readOne = (o: ObjectRequest): SecretVersion => {
      const versions = this.store.get(o.name);
      const index = o.version === 'latest' ? (versions?.length ?? 0) - 1 : Number(o.version.slice(1)) - 1;
      const value = versions?.[index];
      if (value === undefined) throw new NotFoundError(`secret "${o.name}" version "${o.version}" does not exist`);
      return { name: o.name, versionId: `v${index + 1}`, value: Buffer.from(value) };
    };
    return {
      fetch: async (objects, _creds, signal) => {
        this.fetched.push(...objects);
        if (this.fetchGate) await Promise.race([this.fetchGate, sleep(60_000, signal)]);
        signal?.throwIfAborted();
        this.fail('fetch');
        return objects.map(readOne);
      },
    };
  }

  private mounter(): Mounter {
    const isMountPoint = async (path: string) => this.mounts.has(path);
    return {
      isMountPoint,
      mount: async (path, size) => {
        this.fail('mount');
        mkdirSync(path, { recursive: true });
        this.mounts.set(path, size);
      },
      resize: async (path, size) => void this.mounts.set(path, size),
      unmountAndRemove: async (path) => {
        this.mounts.delete(path);
        rmSync(path, { recursive: true, force: true });
      },
    };
  }

  private writer(): VolumeWriter {
    return {
      read: (dir) => atomicWriter.read(dir),
      write: (dir, files) => {
        this.fail('write');
        return atomicWriter.write(dir, files);
      },
    };
  }

  private logger(): Logger {
    const keep = (msg: string) => void this.logs.push(msg);
    return { info: keep, warn: keep, error: keep, v: () => ({ info: keep }) };
  }
}
