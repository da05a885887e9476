// client-node's HTTP library over Node's own http2: every API call of a process shares one
// TLS connection to the API server, multiplexed, as client-go does, instead of a pool of
// HTTP/1.1 connections. Plugged in through client-node's documented extension point (a
// configuration's httpApi); the TLS material and headers are the ones client-node's
// authentication put on the request. Answers keep the object budget (object-budget.ts).
// Watches stay on HTTP/1.1: one long stream each, which multiplexing does not help.
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as k8s from '@kubernetes/client-node';

/** Headers HTTP/2 forbids (connection-specific) or carries as pseudo-headers. */
const DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);

/** An idle connection is closed after this, before load balancers drop it silently. */
const IDLE_MS = 30_000;

export class OverBudgetError extends Error {
  /** As node-fetch's: isOverBudget() recognises it. */
  readonly type = 'max-size';
  constructor(readonly limit: number) {
    super(`the API server's answer is larger than ${limit} bytes`);
  }
}

export class Http2Library implements k8s.HttpLibrary {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  /** Calls under way per session: an idle connection does not keep a process alive. */
  private readonly busy = new Map<http2.ClientHttp2Session, number>();

  constructor(
    private readonly maxObjectBytes: number,
    /** For what HTTP/2 does not carry here: plain http, or a proxy's agent. */
    private readonly fallback: k8s.HttpLibrary,
  ) {}

  send(request: k8s.RequestContext): k8s.Observable<k8s.ResponseContext> {
    const url = new URL(request.getUrl());
    const agent = request.getAgent() as (https.Agent & { options?: https.AgentOptions }) | undefined;
    if (url.protocol !== 'https:' || !agent?.options || Object.getPrototypeOf(agent) !== https.Agent.prototype)
      return this.fallback.send(request);
    return new k8s.Observable(this.call(request, url, agent.options));
  }

  private session(origin: string, tls: https.AgentOptions): http2.ClientHttp2Session {
    const open = this.sessions.get(origin);
    if (open && !open.closed && !open.destroyed) return open;
    const { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername } = tls;
    const session = http2.connect(origin, { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername });
    this.sessions.set(origin, session);
    const forget = () => {
      if (this.sessions.get(origin) === session) this.sessions.delete(origin);
    };
    // A failed or closed connection (GOAWAY, an API server restart) is replaced by the next call;
    // the streams on it fail with its error.
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.setTimeout(IDLE_MS, () => session.close());
    session.unref();
    return session;
  }

  /** Holds the session (and the process) while a call is under way. */
  private hold(session: http2.ClientHttp2Session, by: 1 | -1): void {
    const n = (this.busy.get(session) ?? 0) + by;
    if (n > 0) this.busy.set(session, n);
    else this.busy.delete(session);
    if (session.destroyed) return;
    if (n === 1 && by === 1) session.ref();
    if (n === 0) session.unref();
  }

  private call(request: k8s.RequestContext, url: URL, tls: https.AgentOptions): Promise<k8s.ResponseContext> {
    const list = Number(url.searchParams.get('limit'));
    // A list page: its objects and its own envelope (kind, metadata, continue token).
    const limit = list > 0 ? this.maxObjectBytes * list + 64 * 1024 : this.maxObjectBytes;
    const headers: http2.OutgoingHttpHeaders = {
      ':method': request.getHttpMethod().toString(),
      ':path': `${url.pathname}${url.search}`,
    };
    for (const [name, value] of Object.entries(request.getHeaders()))
      if (!DROPPED.has(name.toLowerCase())) headers[name.toLowerCase()] = value;
    const body = request.getBody() as string | undefined;
    const session = this.session(url.origin, tls);
    this.hold(session, 1);
    return new Promise<k8s.ResponseContext>((resolve, reject) => {
      const stream = session.request(headers, { signal: request.getSignal() });
      const chunks: Buffer[] = [];
      let size = 0;
      let status = 0;
      let answer: Record<string, string> = {};
      stream.on('response', (h) => {
        status = Number(h[':status']);
        answer = Object.fromEntries(
          Object.entries(h)
            .filter(([k]) => !k.startsWith(':'))
            .map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]),
        );
      });
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > limit) stream.destroy(new OverBudgetError(limit));
        else chunks.push(c);
      });
      stream.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve(
          new k8s.ResponseContext(status, answer, {
            text: () => Promise.resolve(bytes.toString('utf8')),
            binary: () => Promise.resolve(bytes),
          }),
        );
      });
      stream.on('error', reject);
      stream.end(body);
    }).finally(() => this.hold(session, -1));
  }
}
