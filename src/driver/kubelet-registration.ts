// kubelet's plugin registration API, served by the driver itself (the one job of the
// node-driver-registrar sidecar): a socket in <kubelet root>/plugins_registry that kubelet's
// plugin watcher finds, asks which CSI socket to call, and tells whether it registered the
// driver. Removing the socket on stop unregisters the driver.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { DRIVER_NAME } from '../crds/types.js';
import { bindOwnerOnly } from '../grpc/socket.js';
import type { Logger } from '../log.js';
import { packageRoot } from '../package-info.js';

export interface KubeletRegistrationOptions {
  /** kubelet's plugins_registry folder, as this process sees it. */
  dir: string;
  /** The CSI socket's path as kubelet sees it (on the host). */
  csiSocket: string;
  log: Logger;
  /** Told what kubelet answered, each time it does. */
  onStatus?: (registered: boolean) => void;
}

type Status = { registered: boolean; error: string };
type Reported = { plugin_registered: boolean; error: string };

export class KubeletRegistration {
  private readonly server = new grpc.Server();
  readonly socket: string;
  private last?: Status;

  constructor(private readonly opts: KubeletRegistrationOptions) {
    this.socket = join(opts.dir, `${DRIVER_NAME}-reg.sock`);
    const def = protoLoader.loadSync(join(packageRoot, 'csi-proto/pluginregistration.proto'), {
      keepCase: true,
      defaults: true,
    });
    const api = grpc.loadPackageDefinition(def).pluginregistration as grpc.GrpcObject;
    this.server.addService((api.Registration as grpc.ServiceClientConstructor).service, {
      GetInfo: (_: unknown, cb: grpc.sendUnaryData<object>) =>
        cb(null, { type: 'CSIPlugin', name: DRIVER_NAME, endpoint: opts.csiSocket, supported_versions: ['1.0.0'] }),
      NotifyRegistrationStatus: (call: grpc.ServerUnaryCall<Reported, object>, cb: grpc.sendUnaryData<object>) => {
        this.reported(call.request);
        cb(null, {});
      },
    });
  }

  /** What kubelet said last; undefined until it has called. */
  get status(): Status | undefined {
    return this.last;
  }

  async start(): Promise<void> {
    await bindOwnerOnly(this.server, this.socket);
    this.opts.log.info('Serving kubelet plugin registration', { socket: this.socket, csiSocket: this.opts.csiSocket });
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    await rm(this.socket, { force: true });
  }

  private reported(status: Reported): void {
    this.last = { registered: status.plugin_registered, error: status.error };
    if (status.plugin_registered) this.opts.log.info('Registered with kubelet', { driver: DRIVER_NAME });
    else this.opts.log.error('kubelet did not register the driver', { error: status.error });
    this.opts.onStatus?.(status.plugin_registered);
  }
}
