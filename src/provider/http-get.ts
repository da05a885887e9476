// One request over a kept-alive connection, the whole reply body as text. CSMS reads (GET)
// and the pod identity exchange (POST) use this rather than fetch(): fetch costs about three
// times the CPU per request (its WHATWG streams), and a mount makes one request per object
// (BENCHMARKS.md).
import * as http from 'node:http';
import * as https from 'node:https';

export interface HttpReply {
  status: number;
  body: string;
}

// `timeout` closes a connection idle for 4 s (as fetch did) and lets Node honour a shorter
// `Keep-Alive: timeout=` from the server, so we do not reuse a socket it is closing.
const keep = { keepAlive: true, maxFreeSockets: 16, timeout: 4_000 };
const agents = { 'http:': new http.Agent(keep), 'https:': new https.Agent(keep) };

/** No complete reply within the request's timeout. */
export class ReplyTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no complete reply within ${timeoutMs} ms`);
    this.name = 'ReplyTimeoutError';
  }
}

/** The reply's body passed the request's byte limit (the rest was not read). */
export class ReplyTooLargeError extends Error {
  constructor(maxBytes: number) {
    super(`the reply is larger than ${maxBytes} bytes`);
    this.name = 'ReplyTooLargeError';
  }
}

export interface HttpGetOptions {
  /** The reply must be complete within this; else rejects with a ReplyTimeoutError. */
  timeoutMs: number;
  /** As soon as the body passes this, rejects with a ReplyTooLargeError. */
  maxBytes?: number;
  /** Aborting it destroys the request (rejects with an error named `AbortError`). */
  signal?: AbortSignal;
}

export function httpGet(url: URL, headers: Record<string, string>, opts: HttpGetOptions): Promise<HttpReply> {
  return httpRequest('GET', url, headers, undefined, opts);
}

/** A POST of `body` (JSON, say), read as httpGet reads. */
export function httpPost(
  url: URL,
  headers: Record<string, string>,
  body: string,
  opts: HttpGetOptions,
): Promise<HttpReply> {
  return httpRequest('POST', url, headers, body, opts);
}

function httpRequest(
  method: string,
  url: URL,
  headers: Record<string, string>,
  body: string | undefined,
  { timeoutMs, maxBytes = Infinity, signal }: HttpGetOptions,
): Promise<HttpReply> {
  const agent = agents[url.protocol as keyof typeof agents];
  if (!agent) return Promise.reject(new Error(`unsupported protocol ${url.protocol} in ${url.origin}`));
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers, signal, method }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const declared = Number(res.headers['content-length'] ?? 0);
      // Refused as soon as it is known to be too large: rejected first, so that an 'end' that
      // still follows the destroy (the whole reply may already be in) cannot resolve it cut short.
      const refuse = () => {
        fail(new ReplyTooLargeError(maxBytes));
        req.destroy();
      };
      if (declared > maxBytes) return refuse();
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) refuse();
        else chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end(body);
    const timer = setTimeout(() => req.destroy(new ReplyTimeoutError(timeoutMs)), timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      reject(err);
    }
  });
}
