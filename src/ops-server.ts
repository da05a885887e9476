// The operations endpoint: /metrics for Prometheus, /healthz and /readyz for probes.
// /healthz is the liveness check: it passes only while `live` does (the CSI socket answers).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export function parseListenAddress(addr: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(addr);
  if (!m || Number(m[2]) > 65535) throw new Error(`--metrics-addr "${addr}" must look like :8095 or 127.0.0.1:8095`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}

export async function startOpsServer(
  addr: string,
  ready: () => boolean,
  registry: Registry,
  live: () => Promise<boolean> = async () => true,
): Promise<Server> {
  const { host, port } = parseListenAddress(addr);
  const liveness = sharedCheck(live);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': registry.contentType });
          res.end(text);
        },
        (err) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
      return;
    }
    if (path === '/healthz') {
      void liveness().then((ok) => {
        res.writeHead(ok ? 200 : 503);
        res.end(ok ? 'ok' : 'the CSI socket does not answer, or kubelet refused the registration');
      });
      return;
    }
    if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503);
      return void res.end(ok ? 'ok' : 'caches not synced');
    }
    res.writeHead(404);
    res.end('not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}

/**
 * One check in flight at a time and its answer kept a second: whoever can reach the port
 * (any pod) cannot make the driver dial its socket at will. A check that throws is a failure.
 */
function sharedCheck(check: () => Promise<boolean>): () => Promise<boolean> {
  let last: { at: number; answer: Promise<boolean> } | undefined;
  return () => {
    if (last && Date.now() - last.at < 1_000) return last.answer;
    const answer = check().catch(() => false);
    last = { at: Date.now(), answer };
    return answer;
  };
}
