// Calls an external Secrets Store provider (AWS, Azure, GCP, Vault, ...) over the
// provider API on its socket <folder>/<provider>.sock, and checks what it returns
// before anything is written: every file must be a plain name inside the volume with
// a mode in 0..0777. One client per socket, a Version handshake before its first
// Mount, a deadline per call and a bound on the reply's size.
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { relativePathProblem } from '../crds/objects.js';
import type { SpcpsObjectVersion } from '../crds/types.js';
import { ProductError, type ErrorKind } from '../errors.js';
import type { Logger } from '../log.js';
import {
  PROVIDER_API_VERSION,
  providerService,
  type MountRequest,
  type MountResponse,
  type VersionResponse,
} from './protocol.js';
import type { FileSet } from '../provider/volume-content.js';

/** The provider API's folders, as upstream's `--provider-volume` and `--additional-provider-volume-paths`. */
export const DEFAULT_PROVIDER_DIRS = [
  '/var/run/secrets-store-csi-providers',
  '/etc/kubernetes/secrets-store-csi-providers',
];

/** The `error_type` label upstream's driver uses for a provider whose call itself failed. */
export const GRPC_PROVIDER_ERROR = 'GRPCProviderError';

/** The provider error codes that have become `error_type` labels, at most LABELLED_CODES_MAX. */
const labelledCodes = new Set<string>();
const LABELLED_CODES_MAX = 32;

/** A provider's error code as a metric label: a plain word among the first 32 seen, else "other". */
export function errorCodeLabel(code: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(code)) return 'other';
  if (!labelledCodes.has(code) && labelledCodes.size >= LABELLED_CODES_MAX) return 'other';
  labelledCodes.add(code);
  return code;
}

/** A provider's refusal or failure; `errorType` feeds the metric's `error_type` label, as upstream. */
export class ProviderError extends ProductError {
  constructor(
    kind: ErrorKind,
    message: string,
    private readonly providerErrorType: string,
    options?: ErrorOptions,
  ) {
    super(kind, message, options);
  }

  override get errorType(): string {
    return this.providerErrorType;
  }
}

export interface ProviderMount {
  files: FileSet;
  /** Mode of each file, as the provider set it. */
  modes: Map<string, number>;
  versions: SpcpsObjectVersion[];
}

export interface ExternalProvidersOptions {
  /** Searched in order for `<provider>.sock`. */
  dirs: string[];
  /** Largest reply accepted (`--max-call-recv-msg-size`). */
  maxReceiveBytes: number;
  /** Deadline of each call to a provider. */
  timeoutMs: number;
  log: Logger;
}

type Client = grpc.Client &
  Record<
    string,
    (
      req: object,
      meta: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: grpc.requestCallback<unknown>,
    ) => grpc.ClientUnaryCall
  >;

export class ExternalProviders {
  private readonly clients = new Map<string, { client: Client; greeted: boolean }>();

  constructor(private readonly opts: ExternalProvidersOptions) {}

  async mount(provider: string, req: MountRequest, signal?: AbortSignal): Promise<ProviderMount> {
    const socket = this.socketOf(provider);
    const entry = this.clientFor(socket);
    if (!entry.greeted) {
      const v = await this.call<VersionResponse>(
        entry.client,
        provider,
        socket,
        'Version',
        { version: PROVIDER_API_VERSION },
        signal,
      );
      this.opts.log.info('Connected to provider', {
        provider,
        socket,
        runtime: v.runtime_name,
        version: v.runtime_version,
      });
      entry.greeted = true;
    }
    const res = await this.call<MountResponse>(entry.client, provider, socket, 'Mount', req, signal);
    return checkMountResponse(provider, res);
  }

  /** Whether `provider` has a socket here: only such names become metric labels. */
  has(provider: string): boolean {
    try {
      this.socketOf(provider);
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }

  private socketOf(provider: string): string {
    for (const dir of this.opts.dirs) {
      const path = join(dir, `${provider}.sock`);
      try {
        if (lstatSync(path).isSocket()) return path;
      } catch {
        // not in this folder
      }
    }
    const looked = this.opts.dirs.map((d) => join(d, `${provider}.sock`)).join(', ');
    throw new ProviderError(
      'unavailable',
      `provider "${provider}" is not running on this node: no socket at ${looked}; install the provider's DaemonSet, or fix spec.provider of the SecretProviderClass`,
      GRPC_PROVIDER_ERROR,
    );
  }

  private clientFor(socket: string): { client: Client; greeted: boolean } {
    let entry = this.clients.get(socket);
    if (!entry) {
      const Service = providerService();
      const client = new Service(`unix:${socket}`, grpc.credentials.createInsecure(), {
        'grpc.max_receive_message_length': this.opts.maxReceiveBytes,
      }) as unknown as Client;
      entry = { client, greeted: false };
      this.clients.set(socket, entry);
    }
    return entry;
  }

  private call<T>(
    client: Client,
    provider: string,
    socket: string,
    method: string,
    req: object,
    signal?: AbortSignal,
  ): Promise<T> {
    signal?.throwIfAborted();
    return new Promise<T>((resolve, reject) => {
      const deadline = Date.now() + this.opts.timeoutMs;
      const call = client[method](req, new grpc.Metadata(), { deadline }, (err, res) => {
        signal?.removeEventListener('abort', cancel);
        if (!err) return resolve(res as T);
        if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
          const entry = this.clients.get(socket);
          if (entry) entry.greeted = false;
        }
        reject(signal?.aborted ? (signal.reason as Error) : callError(provider, socket, method, err, this.opts));
      });
      const cancel = () => call.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
    });
  }
}

const KINDS: Partial<Record<grpc.status, ErrorKind>> = {
  [grpc.status.INVALID_ARGUMENT]: 'invalid-argument',
  [grpc.status.FAILED_PRECONDITION]: 'failed-precondition',
  [grpc.status.NOT_FOUND]: 'not-found',
  [grpc.status.PERMISSION_DENIED]: 'permission-denied',
  [grpc.status.UNAUTHENTICATED]: 'unauthenticated',
  [grpc.status.UNAVAILABLE]: 'unavailable',
  // A provider that does not answer in time is as good as down; kubelet retries.
  [grpc.status.DEADLINE_EXCEEDED]: 'unavailable',
  [grpc.status.CANCELLED]: 'cancelled',
};

function callError(
  provider: string,
  socket: string,
  method: string,
  err: grpc.ServiceError,
  opts: ExternalProvidersOptions,
): ProviderError {
  const name = grpc.status[err.code] ?? String(err.code);
  let fix = '';
  if (err.code === grpc.status.UNAVAILABLE) fix = '; is the provider running on this node?';
  if (err.code === grpc.status.DEADLINE_EXCEEDED)
    fix = `; it did not answer within ${opts.timeoutMs} ms (--provider-timeout); is the provider running and healthy?`;
  if (err.code === grpc.status.RESOURCE_EXHAUSTED)
    fix = `; raise --max-call-recv-msg-size (now ${opts.maxReceiveBytes} bytes) if the volume is meant to be that large`;
  return new ProviderError(
    KINDS[err.code] ?? 'internal',
    `provider "${provider}" (${socket}) failed ${method} with ${name}: ${err.details}${fix}`,
    GRPC_PROVIDER_ERROR,
    { cause: err },
  );
}

/** Everything the provider returned, checked before any of it is written. */
export function checkMountResponse(provider: string, res: MountResponse): ProviderMount {
  const code = res.error?.code;
  if (code) {
    throw new ProviderError(
      'failed-precondition',
      `provider "${provider}" refused the mount with error code ${JSON.stringify(code.slice(0, 128))}; its own log says why`,
      errorCodeLabel(code),
    );
  }
  const refuse = (what: string) =>
    new ProviderError('internal', `provider "${provider}" returned ${what}; nothing was written`, GRPC_PROVIDER_ERROR);
  if (res.object_version.length === 0) throw refuse('no object versions');
  if (res.files.length === 0) {
    throw refuse(
      'no files (providers that write into the volume themselves are not supported: the driver writes every file)',
    );
  }
  const files: FileSet = new Map();
  const modes = new Map<string, number>();
  const folders = new Set<string>();
  for (const f of res.files) {
    const problem = relativePathProblem(f.path);
    if (problem)
      throw refuse(
        `file path ${JSON.stringify(f.path)}, which ${problem}; only relative paths inside the volume are accepted`,
      );
    if (files.has(f.path)) throw refuse(`file "${f.path}" twice`);
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) folders.add(parts.slice(0, i).join('/'));
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o777)
      throw refuse(`file "${f.path}" with mode ${f.mode}, outside 0..0777`);
    files.set(f.path, Buffer.from(f.contents));
    modes.set(f.path, f.mode);
  }
  for (const name of files.keys())
    if (folders.has(name)) throw refuse(`"${name}" both as a file and as a folder of other files`);
  const versions = res.object_version.map((v) => ({ id: v.id, version: v.version }));
  versions.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { files, modes, versions };
}
