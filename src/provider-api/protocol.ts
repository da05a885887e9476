// The Secrets Store provider API (csi-proto/provider.proto, v1alpha1) as TypeScript:
// the message shapes both sides use, and the loaded service definition. Our driver
// calls external providers with it (client.ts); `cce-secrets-manager provider` serves our
// CSMS provider with it (server.ts).
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../package-info.js';

/** The API version a driver announces in Version. */
export const PROVIDER_API_VERSION = 'v1alpha1';

export interface ObjectVersion {
  id: string;
  version: string;
}

export interface ProviderFile {
  path: string;
  mode: number;
  contents: Buffer;
}

export interface MountRequest {
  /** JSON object: SPC parameters plus the pod's volume attributes. */
  attributes: string;
  /** JSON object: the nodePublishSecretRef data. */
  secrets: string;
  target_path: string;
  /** JSON number: the default file mode in decimal ("420" is 0644). */
  permission: string;
  current_object_version: ObjectVersion[];
}

export interface MountResponse {
  object_version: ObjectVersion[];
  error: { code: string } | null;
  files: ProviderFile[];
}

export interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
}

let service: grpc.ServiceClientConstructor | undefined;

/** The CSIDriverProvider service, loaded once. */
export function providerService(): grpc.ServiceClientConstructor {
  if (!service) {
    const def = protoLoader.loadSync(join(packageRoot, 'csi-proto/provider.proto'), {
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def).v1alpha1 as grpc.GrpcObject;
    service = pkg.CSIDriverProvider as grpc.ServiceClientConstructor;
  }
  return service;
}
