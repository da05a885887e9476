// A CSI client as kubelet is one, and the assertion on its errors; needs no cluster.
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { loadCsiProto } from '../../src/driver/csi-server.js';

type Client = grpc.Client &
  Record<
    string,
    (req: unknown, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void
  >;

/** A CSI client as kubelet is one: unary calls over the driver's socket. */
export class Kubelet {
  private clients = new Map<string, Client>();

  constructor(private readonly socket: string) {}

  /** With `deadlineMs`, the call carries a deadline that far ahead, as kubelet's do. */
  call<T = unknown>(service: 'Identity' | 'Node', method: string, req: unknown, deadlineMs?: number): Promise<T> {
    let client = this.clients.get(service);
    if (!client) {
      const csi = (loadCsiProto().csi as grpc.GrpcObject).v1 as grpc.GrpcObject;
      const Ctor = csi[service] as grpc.ServiceClientConstructor;
      client = new Ctor(`unix://${this.socket}`, grpc.credentials.createInsecure()) as unknown as Client;
      this.clients.set(service, client);
    }
    const options = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
    return new Promise((resolve, reject) =>
      client[method](req, options, (err, res) => (err ? reject(err) : resolve(res as T))),
    );
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** Asserts a CSI call fails with `code` and a message matching `pattern`. */
export async function rejectsWith(p: Promise<unknown>, code: grpc.status, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: { code: number; details: string }) => {
    assert.equal(grpc.status[err.code], grpc.status[code], `code for: ${err.details}`);
    assert.match(err.details, pattern);
    return true;
  });
}
