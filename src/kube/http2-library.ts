// client-node's HTTP library over Node's own http2: every API call of a process shares one
// TLS connection to the API server, multiplexed, as client-go does, instead of a pool of
// HTTP/1.1 connections. Plugged in through client-node's documented extension point (a
// configuration's httpApi); the TLS material and headers are the ones client-node's
// authentication put on the request. Answers keep the object budget (object-budget.ts).
// Watches stay on HTTP/1.1: one long stream each, which multiplexing does not help.
//
// One connection carries every call, so it must not fail silently: a call with no progress for
// `callTimeoutMs` fails and takes the connection down with it (the next call opens a new one,
// as client-go's HTTP/2 health check does); a connection that does not finish its handshake in
// time is dropped; a call the server refused before reading it (GOAWAY, REFUSED_STREAM, an API
// server restart) is sent once more on a new connection; a server that does not speak HTTP/2
// (a TLS proxy) sends this origin back to HTTP/1.1.
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { answerBudget } from './object-budget.js';

/** Headers HTTP/2 forbids (connection-specific) or carries as pseudo-headers. */
const DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
  'te',
  'http2-settings',
]);

/** An idle connection is closed after this, before load balancers drop it silently. */
const IDLE_MS = 30_000;
/** Flow-control windows: one large answer does not hold back the others sharing the connection. */
const STREAM_WINDOW = 4 * 1024 * 1024;
const CONNECTION_WINDOW = 32 * 1024 * 1024;

export class OverBudgetError extends Error {
  /** As node-fetch's: isOverBudget() recognises it. */
  readonly type = 'max-size';
  constructor(readonly limit: number) {
    super(`the API server's answer is larger than ${limit} bytes`);
  }
}

/** The server did not take the call (it never read it): safe to send again. */
class RefusedError extends Error {}

export interface Http2Options {
  /** A call with no progress for this long fails, and its connection is replaced. */
  callTimeoutMs?: number;
  /** A connection whose TLS and HTTP/2 handshake take longer is dropped. */
  connectTimeoutMs?: number;
}

export class Http2Library implements k8s.HttpLibrary {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  /** Calls under way per session: an idle connection does not keep a process alive. */
  private readonly busy = new Map<http2.ClientHttp2Session, number>();
  /** Origins that answered without HTTP/2 (a TLS proxy): they get the fallback from then on. */
  private readonly http1Only = new Set<string>();
  private readonly callTimeoutMs: number;
  private readonly connectTimeoutMs: number;

  constructor(
    private readonly maxObjectBytes: number,
    /** For what HTTP/2 does not carry here: plain http, a proxy's agent, a server without h2. */
    private readonly fallback: k8s.HttpLibrary,
    opts: Http2Options = {},
  ) {
    this.callTimeoutMs = opts.callTimeoutMs ?? 30_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  }

  send(request: k8s.RequestContext): k8s.Observable<k8s.ResponseContext> {
    const url = new URL(request.getUrl());
    const agent = request.getAgent() as (https.Agent & { options?: https.AgentOptions }) | undefined;
    if (
      url.protocol !== 'https:' ||
      this.http1Only.has(url.origin) ||
      !agent?.options ||
      Object.getPrototypeOf(agent) !== https.Agent.prototype
    )
      return this.fallback.send(request);
    const tls = agent.options;
    const answer = this.call(request, url, tls).catch((err: unknown) => {
      if (noHttp2(err)) this.http1Only.add(url.origin);
      if (!(err instanceof RefusedError) && !noHttp2(err)) throw err;
      // Sent again once, on a new connection (RFC 9113 §8.7: the server never processed it).
      return this.http1Only.has(url.origin) ? this.fallback.send(request).toPromise() : this.call(request, url, tls);
    });
    return new k8s.Observable(answer);
  }

  /** One per origin: the TLS material is that of the kubeconfig's pooled agent (client.ts), built once. */
  private session(origin: string, tls: https.AgentOptions): http2.ClientHttp2Session {
    const { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername } = tls;
    const open = this.sessions.get(origin);
    if (open && !open.closed && !open.destroyed) return open;
    const session = http2.connect(origin, {
      ...{ ca, cert, key, pfx, passphrase, rejectUnauthorized, servername },
      settings: { initialWindowSize: STREAM_WINDOW },
    });
    this.sessions.set(origin, session);
    const forget = () => {
      if (this.sessions.get(origin) === session) this.sessions.delete(origin);
    };
    // A failed or closed connection (GOAWAY, an API server restart) is replaced by the next
    // call; the streams on it fail with its error.
    session.on('error', (err: NodeJS.ErrnoException) => {
      // A TLS server offering no HTTP/2 refuses the handshake outright (no application protocol).
      if (noHttp2(err)) this.http1Only.add(origin);
      forget();
    });
    session.on('goaway', forget);
    session.on('close', forget);
    const handshake = setTimeout(
      () => session.destroy(new Error('no HTTP/2 connection to the API server in time')),
      this.connectTimeoutMs,
    );
    session.once('connect', () => {
      clearTimeout(handshake);
      if (session.alpnProtocol !== 'h2') {
        this.http1Only.add(origin);
        session.destroy(new RefusedError(`${origin} does not speak HTTP/2; its calls use HTTP/1.1`));
        return;
      }
      session.setLocalWindowSize(CONNECTION_WINDOW);
    });
    session.once('close', () => clearTimeout(handshake));
    session.setTimeout(IDLE_MS, () => {
      if (!this.busy.has(session)) session.close();
    });
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
    const limit = answerBudget(url, this.maxObjectBytes);
    const headers: http2.OutgoingHttpHeaders = {
      ':method': request.getHttpMethod().toString(),
      ':path': `${url.pathname}${url.search}`,
      // The URL's host, as HTTP/1.1 sent it (not the TLS server name).
      ':authority': url.host,
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
      stream.setTimeout(this.callTimeoutMs, () => {
        // No progress: the connection is taken to be dead, and every call on it fails now.
        const err = new Error(`the API server did not answer within ${this.callTimeoutMs} ms`);
        session.destroy(err);
        stream.destroy(err);
      });
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
        if (status === 0 || stream.rstCode) {
          reject(new Error(`the API server ended the call without an answer (HTTP/2 code ${stream.rstCode ?? 0})`));
          return;
        }
        const bytes = Buffer.concat(chunks);
        resolve(
          new k8s.ResponseContext(status, answer, {
            text: () => Promise.resolve(bytes.toString('utf8')),
            binary: () => Promise.resolve(bytes),
          }),
        );
      });
      stream.on('error', (err: NodeJS.ErrnoException) =>
        reject(status === 0 && refused(err, stream) ? new RefusedError(err.message) : err),
      );
      stream.end(body);
    }).finally(() => this.hold(session, -1));
  }
}

/** The server (a TLS proxy, say) does not speak HTTP/2: its handshake refused h2, or chose HTTP/1.1. */
function noHttp2(err: unknown): boolean {
  const cause = (err as { cause?: unknown }).cause;
  const code = (e: unknown) => {
    const c = (e as { code?: unknown } | undefined)?.code;
    return typeof c === 'string' ? c : '';
  };
  return (
    cause instanceof RefusedError ||
    /NO_APPLICATION_PROTOCOL/.test(code(err)) ||
    /NO_APPLICATION_PROTOCOL/.test(code(cause))
  );
}

/** An error that means the server never took the call: refused, or cut off before it was sent. */
function refused(err: NodeJS.ErrnoException, stream: http2.ClientHttp2Stream): boolean {
  const cause = (err as { cause?: unknown }).cause;
  return (
    err instanceof RefusedError ||
    cause instanceof RefusedError ||
    stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ||
    err.code === 'ERR_HTTP2_GOAWAY_SESSION'
  );
}
