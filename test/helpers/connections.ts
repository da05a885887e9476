// Counts the client connections that HTTP responses arrived on while `work` ran, through
// Node's own diagnostics channel: how the tests see that a client keeps its connections.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';

export async function connectionsUsed(work: () => Promise<void>): Promise<number> {
  const sockets = new Set<unknown>();
  const seen = (message: unknown) => {
    sockets.add((message as { request: { socket: unknown } }).request.socket);
  };
  subscribe('http.client.response.finish', seen);
  try {
    await work();
  } finally {
    unsubscribe('http.client.response.finish', seen);
  }
  return sockets.size;
}
