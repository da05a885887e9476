// Binding a gRPC server to a unix socket that only root may use: whoever can call the CSI
// socket or a provider socket can ask for any pod's secrets.
import { connect } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';

/** Binds `server` to `path`, created owner-only (no moment when others could connect). */
export async function bindOwnerOnly(server: grpc.Server, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await removeStaleSocket(path);
  const oldUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  } finally {
    process.umask(oldUmask);
  }
  await chmod(path, 0o600);
}

/** A socket file left by a crashed run is removed; a live one means another process serves it. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch {
    return;
  }
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another process is serving ${path}; stop it first`);
  await unlink(path);
}
