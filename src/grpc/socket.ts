// A gRPC server on a unix socket that only root may use (whoever can call the CSI socket or
// a provider socket can ask for any pod's secrets): binding it, and stopping it the one way
// both of ours stop.
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

/** How long cancelled calls get to take back what they made before the server closes anyway. */
const FORCE_AFTER_CANCEL_MS = 5_000;

/**
 * Stops `server`: no new calls; calls under way get `graceMs`, then `cancel` aborts them
 * (each takes back what it made), and FORCE_AFTER_CANCEL_MS later the server closes whatever
 * is left. Then the socket file goes.
 */
export async function stopServer(server: grpc.Server, cancel: AbortController, path: string, graceMs: number) {
  await new Promise<void>((resolve) => {
    const cancelling = setTimeout(() => cancel.abort(), graceMs);
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs + FORCE_AFTER_CANCEL_MS);
    server.tryShutdown(() => {
      clearTimeout(cancelling);
      clearTimeout(force);
      resolve();
    });
  });
  await unlink(path).catch(() => undefined);
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
