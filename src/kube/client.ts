// Loads cluster access: an explicit kubeconfig, else the in-cluster ServiceAccount.
import * as http from 'node:http';
import * as https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { ApiServerError } from '../errors.js';
import { Http2Library } from './http2-library.js';
import { BudgetedHttpLibrary, BudgetedWatch, DEFAULT_MAX_OBJECT_BYTES, isOverBudget } from './object-budget.js';

/**
 * client-node 1.x builds a new, non-keep-alive agent for every API call, so each
 * SPCPS or Secret write paid a fresh TCP + TLS handshake on both ends and parsed
 * the CA again. We keep its authentication (headers, client certificates, proxies)
 * and only swap a plain agent for one pooled keep-alive agent with the same options.
 */
class PooledKubeConfig extends k8s.KubeConfig {
  private pooled?: http.Agent;

  constructor(readonly maxObjectBytes: number) {
    super();
  }

  /** client-node's own construction, with the HTTP library that keeps answers within the object budget. */
  override makeApiClient<T extends k8s.ApiType>(apiClientType: k8s.ApiConstructor<T>): T {
    const cluster = this.getCurrentCluster();
    if (!cluster) throw new Error('No active cluster!');
    const config = k8s.createConfiguration({
      baseServer: new k8s.ServerConfiguration(cluster.server, {}),
      authMethods: { default: this },
      httpApi: this.httpApi(),
    });
    return new apiClientType(config);
  }

  /**
   * One HTTP library for every API client of this kubeconfig, so they share its connection:
   * HTTP/2, multiplexed, as client-go (BENCHMARKS.md: a quarter less CPU for a burst of
   * mounts than the pooled HTTP/1.1 it replaced). CCE_KUBE_TRANSPORT=http1 goes back to that
   * pool, for a proxy or load balancer in front of the API server that mishandles HTTP/2.
   */
  private httpLibrary?: k8s.HttpLibrary;
  private httpApi(): k8s.HttpLibrary {
    if (!this.httpLibrary) {
      const http1 = new BudgetedHttpLibrary(this.maxObjectBytes);
      this.httpLibrary =
        process.env.CCE_KUBE_TRANSPORT === 'http1' ? http1 : new Http2Library(this.maxObjectBytes, http1);
    }
    return this.httpLibrary;
  }

  override async applySecurityAuthentication(context: k8s.RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const made = context.getAgent();
    if (!made || (made.constructor !== https.Agent && made.constructor !== http.Agent)) return;
    if (!this.pooled) {
      // Agent keeps the options it was built with; Node has always exposed them.
      const options = (made as http.Agent & { options: https.AgentOptions }).options;
      const Agent = made.constructor as typeof https.Agent;
      // client-go keeps 25 idle connections per host; close them after 30 s idle, before load balancers do.
      this.pooled = new Agent({
        ...options,
        keepAlive: true,
        keepAliveMsecs: 30_000,
        // As many sockets as are kept: a burst of mounts queues for a warm connection instead
        // of opening (and then closing) a TLS connection per call.
        maxSockets: 25,
        maxFreeSockets: 25,
        timeout: 30_000,
      });
    }
    context.setAgent(this.pooled);
  }
}

export function loadKubeConfig(path?: string, maxObjectBytes = DEFAULT_MAX_OBJECT_BYTES): k8s.KubeConfig {
  const kc = new PooledKubeConfig(maxObjectBytes);
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
}

/** A watch that decodes no event over the kubeconfig's object budget (object-budget.ts). */
export function budgetedWatch(kc: k8s.KubeConfig): BudgetedWatch {
  return new BudgetedWatch(kc, kc instanceof PooledKubeConfig ? kc.maxObjectBytes : DEFAULT_MAX_OBJECT_BYTES);
}

/**
 * Per-call options for a list whose objects are needed only for their metadata: the API
 * server answers with a PartialObjectMetadataList, so an object's spec, however large,
 * is never sent or decoded. Through client-node's own middleware, on the one call.
 */
export const METADATA_ONLY: k8s.ConfigurationOptions<k8s.ObservableMiddleware> = {
  middleware: [
    {
      pre: (context) => {
        context.setHeaderParam('Accept', 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1');
        return new k8s.Observable(Promise.resolve(context));
      },
      post: (context) => new k8s.Observable(Promise.resolve(context)),
    },
  ],
  middlewareMergeStrategy: 'append',
};

/**
 * The token for a list's next page, if any. The shipped bundle leaves out client-node's
 * models, so a list is the API's own JSON (`continue`), not the model (`_continue`).
 */
export function continueToken(list: { metadata?: { _continue?: string; continue?: string } }): string | undefined {
  return list.metadata?._continue || list.metadata?.continue || undefined;
}

type Page<T> = { items: T[]; metadata?: { resourceVersion?: string; _continue?: string; continue?: string } };

/**
 * A whole list for a cache, read in pages of at most PAGE_LIMIT objects, each object trimmed
 * by `keep` as soon as its page arrives: a page is budgeted at its limit times the object
 * limit, and however large a namespace user made their objects, at most one page of them is
 * held whole. Every page is the same snapshot: the first one's resourceVersion is the list's.
 */
export async function pagedList<T>(
  page: (limit: number, token: string | undefined) => Promise<Page<T>>,
  keep: (obj: T) => T,
): Promise<{ items: T[]; metadata: { resourceVersion?: string } }> {
  const items: T[] = [];
  let resourceVersion: string | undefined;
  let token: string | undefined;
  do {
    const p = await page(PAGE_LIMIT, token);
    resourceVersion ??= p.metadata?.resourceVersion;
    items.push(...p.items.map(keep));
    token = continueToken(p);
  } while (token);
  return { items, metadata: { resourceVersion } };
}
const PAGE_LIMIT = 10;

/** The annotations of the object `read` fetches; undefined when it does not exist. */
export async function annotationsOf(
  what: string,
  read: () => Promise<{ metadata?: { annotations?: Record<string, string> } }>,
): Promise<Record<string, string> | undefined> {
  try {
    return (await read()).metadata?.annotations;
  } catch (err) {
    if (apiStatus(err) === 404) return undefined;
    throw new ApiServerError(`reading ${what} failed: ${apiErrorText(err)}`, { cause: err });
  }
}

/** HTTP status of a client-node API error, if it is one. */
export function apiStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  const code = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  return code;
}

/** A short, secret-free description of an API error for logs and messages. */
export function apiErrorText(err: unknown): string {
  if (isOverBudget(err)) {
    // Ours says it; node-fetch's (the http1 fallback) only writes it in its message.
    const limit = (err as { limit?: number }).limit ?? /over limit: (\d+)/.exec((err as Error).message)?.[1];
    return `the answer is over the ${limit}-byte object limit (--max-object-bytes)`;
  }
  const e = err as { code?: number; body?: unknown; message?: string };
  let reason = '';
  try {
    const body = (typeof e.body === 'string' ? JSON.parse(e.body) : e.body) as { message?: string } | undefined;
    reason = body?.message ?? '';
  } catch {
    // not JSON: the code or the message below says enough
  }
  return reason || (e.code ? `HTTP ${e.code}` : (e.message ?? String(err)));
}

/** Per-call options that abort the call with `signal` (through client-node's own middleware). */
export function abortableBy(signal: AbortSignal | undefined): k8s.ConfigurationOptions<k8s.ObservableMiddleware> {
  if (!signal) return {};
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(signal);
          return new k8s.Observable(Promise.resolve(context));
        },
        post: (context) => new k8s.Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
