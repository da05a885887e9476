// How much of one Kubernetes object the driver, the provider and the webhook will read and
// decode: every API answer and every watch event is refused past it before any of it is
// parsed, so an object a namespace user made huge costs a node a bounded read, never its heap.
// Answers go through client-node's own extension point for its HTTP library (a
// configuration's httpApi), with node-fetch's own body size limit; a list answer may hold
// `limit` objects. Watch events are split into lines here, so that a line is dropped as
// soon as it passes the budget (client-node's Watch reads any line whole).
import { STATUS_CODES } from 'node:http';
import * as k8s from '@kubernetes/client-node';
import fetch from 'node-fetch';
import type { Logger } from '../log.js';

/** Above etcd's default request limit (1.5 MiB) in JSON: no object a default cluster stores is refused. */
export const DEFAULT_MAX_OBJECT_BYTES = 2 * 1024 * 1024;

/** The most an API answer to `url` may hold: one object, or a list page of `limit` and its envelope. */
export function answerBudget(url: URL, maxObjectBytes: number): number {
  const limit = Number(url.searchParams.get('limit'));
  return limit > 0 ? maxObjectBytes * limit + 64 * 1024 : maxObjectBytes;
}

/** client-node's own HTTP library (node-fetch), with a body size limit. */
export class BudgetedHttpLibrary implements k8s.HttpLibrary {
  constructor(private readonly maxObjectBytes: number) {}

  send(request: k8s.RequestContext): k8s.Observable<k8s.ResponseContext> {
    const answer = fetch(request.getUrl(), {
      method: request.getHttpMethod().toString(),
      body: request.getBody() as string | undefined,
      headers: request.getHeaders(),
      signal: request.getSignal() as never,
      agent: request.getAgent(),
      size: answerBudget(new URL(request.getUrl()), this.maxObjectBytes),
    }).then((res) => {
      const headers: Record<string, string> = {};
      res.headers.forEach((value, name) => (headers[name] = value));
      return new k8s.ResponseContext(res.status, headers, { text: () => res.text(), binary: () => res.buffer() });
    });
    return new k8s.Observable(answer);
  }
}

/** Whether a failed call read an answer over the budget (node-fetch's max-size error). */
export function isOverBudget(err: unknown): boolean {
  return (err as { type?: unknown } | undefined)?.type === 'max-size';
}

type Callback = (phase: string, apiObj: unknown, watchObj?: unknown) => void;

const ENVELOPE_BYTES = 4 * 1024;

/** The phase of an event over the budget, in place of the event: its object is `{ bytes, limit }`. */
export const OVERSIZED = 'OVERSIZED';

/** The one log line of a skipped OVERSIZED event, whichever watch skipped it. */
export function logOversized(log: Logger, event: unknown, where: Record<string, string>): void {
  log.warn('Skipped a watch event over the object limit (--max-object-bytes)', {
    ...where,
    ...(event as { bytes: number; limit: number }),
  });
}

/**
 * client-node's Watch with one change: events are read line by line under the budget. An
 * event over it is not decoded; the callback gets an OVERSIZED one instead (which
 * client-node's ListWatch ignores).
 */
export class BudgetedWatch extends k8s.Watch {
  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly maxObjectBytes: number,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: Callback,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('No currently active cluster');
    const url = new URL(cluster.server + path);
    url.searchParams.set('watch', 'true');
    for (const [key, val] of Object.entries(queryParams)) if (val !== undefined) url.searchParams.set(key, String(val));
    const init = await this.kc.applyToFetchOptions({});
    const controller = new AbortController();
    let ended = false;
    const end = (err: unknown) => {
      if (ended) return;
      ended = true;
      controller.abort();
      done(err);
    };
    try {
      const res = await fetch(url, { ...init, method: 'GET', signal: controller.signal });
      // As client-node's Watch: TCP keep-alive, so a peer that vanished is noticed.
      const agent = init.agent as
        { sockets?: Record<string, ({ setKeepAlive(on: boolean, ms: number): void } | undefined)[]> } | undefined;
      for (const socket of Object.values(agent?.sockets ?? {}).flat()) socket?.setKeepAlive(true, 30_000);
      if (res.status !== 200) {
        throw Object.assign(new Error(res.statusText || STATUS_CODES[res.status] || 'Internal Server Error'), {
          statusCode: res.status,
        });
      }
      // The event's envelope ({"type":…,"object":…}) on top of the object.
      const limit = this.maxObjectBytes;
      const lines = new LineSplitter(
        limit + ENVELOPE_BYTES,
        (line) => parsed(line, callback),
        (bytes) => callback(OVERSIZED, { bytes, limit }),
      );
      res.body.on('data', (chunk: Buffer) => {
        try {
          lines.push(chunk);
        } catch (err) {
          // A handler that threw ends this watch (and is restarted by its owner), never the process.
          end(err);
        }
      });
      res.body.on('error', end);
      res.body.on('end', () => end(null));
      res.body.on('close', () => end(null));
    } catch (err) {
      end(err);
    }
    return controller;
  }
}

function parsed(line: Buffer, callback: Callback): void {
  let event: { type: string; object: unknown };
  try {
    event = JSON.parse(line.toString('utf8')) as typeof event;
  } catch {
    return; // as client-node's Watch: a line that is not JSON is no event
  }
  callback(event.type, event.object, event);
}

/** Newline-separated lines of at most `max` bytes; a longer one is skipped whole as it streams. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private length = 0;

  constructor(
    private readonly max: number,
    private readonly onLine: (line: Buffer) => void,
    private readonly onTooLong: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.add(chunk.subarray(start, nl));
      const [parts, length] = [this.parts, this.length];
      this.parts = [];
      this.length = 0;
      start = nl + 1;
      if (length > this.max) this.onTooLong(length);
      else if (length > 0) this.onLine(parts.length === 1 ? parts[0] : Buffer.concat(parts));
    }
    this.add(chunk.subarray(start));
  }

  private add(piece: Buffer): void {
    this.length += piece.length;
    // Past the limit, only the count goes on: the line's bytes are not kept.
    if (this.length > this.max) this.parts = [];
    else if (piece.length > 0) this.parts.push(piece);
  }
}
