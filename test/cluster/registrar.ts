// A stand-in for csi-node-driver-registrar, which the Go module proxy here does not serve:
// it does that sidecar's one job, serving kubelet's plugin registration API on a socket in
// <kubelet root>/plugins_registry and naming the driver's CSI socket, so that kubelet's own
// plugin watcher and CSI volume plugin find and call the driver.
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface Registration {
  /** Whether kubelet said it registered the driver, and its error if not. */
  status(): { registered: boolean; error: string } | undefined;
  stop(): Promise<void>;
}

export async function registerWithKubelet(kubeletRoot: string, driverName: string, driverSocket: string) {
  const proto = resolve(import.meta.dirname, '../../../test/cluster/pluginregistration.proto');
  const def = protoLoader.loadSync(proto, { keepCase: true, defaults: true });
  const api = grpc.loadPackageDefinition(def).pluginregistration as grpc.GrpcObject;
  const service = (api.Registration as grpc.ServiceClientConstructor).service;
  let last: { registered: boolean; error: string } | undefined;
  const server = new grpc.Server();
  server.addService(service, {
    GetInfo: (_: unknown, cb: grpc.sendUnaryData<object>) =>
      cb(null, { type: 'CSIPlugin', name: driverName, endpoint: driverSocket, supported_versions: ['1.0.0'] }),
    NotifyRegistrationStatus: (
      call: grpc.ServerUnaryCall<{ plugin_registered: boolean; error: string }, object>,
      cb: grpc.sendUnaryData<object>,
    ) => {
      last = { registered: call.request.plugin_registered, error: call.request.error };
      cb(null, {});
    },
  });
  const dir = join(kubeletRoot, 'plugins_registry');
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, `${driverName}-reg.sock`);
  await new Promise<void>((ok, fail) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? fail(err) : ok())),
  );
  return {
    status: () => last,
    stop: async () => {
      await new Promise<void>((ok) => server.tryShutdown(() => ok()));
      rmSync(socket, { force: true });
    },
  } satisfies Registration;
}
