// The CSI gRPC server kubelet talks to: Identity and Node on a unix socket.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { DRIVER_NAME } from '../crds/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { packageRoot, version } from '../package-info.js';
import { errorType } from '../errors.js';
import { bindOwnerOnly, stopServer } from '../grpc/socket.js';
import { unary, type Handler } from '../grpc/unary.js';
import { sharedAbortController } from '../util/async.js';
import type { Publisher } from './publisher.js';
import { parsePublishRequest, parseUnpublishRequest } from './volume-request.js';

export interface CsiServerOptions {
  /** The socket's path (`--endpoint` unix:///path/csi.sock). */
  socket: string;
  nodeId: string;
  publisher: Publisher;
  /** kubelet's root folder; target paths outside its pods' CSI volume folders are refused. */
  kubeletRoot: string;
  ready: () => boolean;
  log: Logger;
  metrics: Metrics;
  maxReceiveMessageBytes?: number;
}

export function loadCsiProto(): grpc.GrpcObject {
  const def = protoLoader.loadSync(join(packageRoot, 'csi-proto/csi.proto'), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def);
}

/**
 * Whether the CSI socket answers: an Identity.Probe over it, as kubelet would call, within
 * a few seconds. The liveness check: a process that serves /healthz but not its socket is stuck.
 */
export function csiSocketAnswers(socket: string): () => Promise<boolean> {
  const csi = (loadCsiProto().csi as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const Identity = csi.Identity as grpc.ServiceClientConstructor;
  // A fresh connection each time, as kubelet dials the socket's path: a kept one would outlive the file.
  return () => {
    const client = new Identity(`unix:${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Probe(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void;
    };
    return new Promise<boolean>((resolve) =>
      client.Probe({}, { deadline: Date.now() + 3_000 }, (err) => resolve(!err)),
    ).finally(() => client.close());
  };
}

export class CsiServer {
  private readonly server: grpc.Server;
  private readonly path: string;
  private readonly shutdown = sharedAbortController();

  constructor(private readonly opts: CsiServerOptions) {
    this.path = opts.socket;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': opts.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
    });
    const csi = (loadCsiProto().csi as grpc.GrpcObject).v1 as grpc.GrpcObject;
    this.server.addService((csi.Identity as grpc.ServiceClientConstructor).service, this.identity());
    this.server.addService((csi.Node as grpc.ServiceClientConstructor).service, this.node());
    // A node-only driver: no controller capabilities (csi-sanity and some tools ask).
    this.server.addService((csi.Controller as grpc.ServiceClientConstructor).service, {
      ControllerGetCapabilities: unary('ControllerGetCapabilities', this.callOptions, async () => ({
        capabilities: [],
      })),
    });
  }

  private get callOptions() {
    return { log: this.opts.log, shutdown: this.shutdown.signal };
  }

  private identity(): grpc.UntypedServiceImplementation {
    const { ready } = this.opts;
    return {
      GetPluginInfo: unary('GetPluginInfo', this.callOptions, async () => ({
        name: DRIVER_NAME,
        vendor_version: version,
      })),
      GetPluginCapabilities: unary('GetPluginCapabilities', this.callOptions, async () => ({ capabilities: [] })),
      Probe: unary('Probe', this.callOptions, async () => ({ ready: { value: ready() } })),
    };
  }

  private node(): grpc.UntypedServiceImplementation {
    const { publisher, nodeId, kubeletRoot, metrics } = this.opts;
    const unimplemented: Handler = (call, cb) =>
      cb({
        code: grpc.status.UNIMPLEMENTED,
        details: `${call.getPath()} is not implemented: secrets-store volumes are ephemeral and node-published only`,
      });
    const publish = async (raw: object, signal: AbortSignal) => {
      const end = metrics.publishDuration.startTimer();
      // The provider is known once the SPC is read; a request refused before that counts under "".
      const labels: { provider?: string } = {};
      try {
        await publisher.publish(parsePublishRequest(raw, kubeletRoot), signal, labels);
        metrics.nodePublish.inc({ provider: labels.provider ?? '' });
      } catch (err) {
        metrics.nodePublishError.inc({ provider: labels.provider ?? '', error_type: errorType(err) });
        throw err;
      } finally {
        end();
        metrics.mountedVolumes.set(publisher.volumes.size);
      }
      return {};
    };
    const unpublish = async (raw: object) => {
      await publisher.unpublish(parseUnpublishRequest(raw, kubeletRoot));
      metrics.mountedVolumes.set(publisher.volumes.size);
      return {};
    };
    return {
      NodePublishVolume: unary('NodePublishVolume', this.callOptions, publish),
      NodeUnpublishVolume: unary('NodeUnpublishVolume', this.callOptions, unpublish, (error) =>
        error ? metrics.nodeUnpublishError.inc({ error_type: error }) : metrics.nodeUnpublish.inc(),
      ),
      NodeGetCapabilities: unary('NodeGetCapabilities', this.callOptions, async () => ({ capabilities: [] })),
      NodeGetInfo: unary('NodeGetInfo', this.callOptions, async () => ({ node_id: nodeId, max_volumes_per_node: '0' })),
      NodeStageVolume: unimplemented,
      NodeUnstageVolume: unimplemented,
      NodeGetVolumeStats: unimplemented,
      NodeExpandVolume: unimplemented,
    };
  }

  async start(): Promise<void> {
    await bindOwnerOnly(this.server, this.path);
    this.opts.log.info('Listening for connections', { address: this.path });
  }

  /**
   * Stops accepting and lets the calls under way finish for `graceMs`; then cancels
   * them (each takes back what it made and answers CANCELLED) and removes the socket.
   */
  stop(graceMs = 10_000): Promise<void> {
    return stopServer(this.server, this.shutdown, this.path, graceMs);
  }
}
