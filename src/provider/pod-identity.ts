// Per-pod cloud identity through CCE Pod Identity: a pod's ServiceAccount token (audience
// service.cce.pods, passed by kubelet through the CSIDriver's tokenRequests) is traded at the
// cluster's CCE endpoint for the temporary keys of the IAM agency associated with that
// (namespace, ServiceAccount). The exchange itself is signed with the node's identity, which
// needs cce::assumeAgencyForPodIdentity and nothing in CSMS. Keys are kept per ServiceAccount
// until shortly before they expire and never handed to another ServiceAccount; concurrent
// mounts of one ServiceAccount share one exchange. Knows nothing of Kubernetes beyond the
// token being an opaque string.
import { createHash } from 'node:crypto';
import {
  errorMessage,
  NotAllowedError,
  PreconditionError,
  StoreUnavailableError,
  UnauthenticatedError,
} from '../errors.js';
import type { CredentialProvider } from './credentials.js';
import { endpointForRegion, parseErrorBody } from './csms-client.js';
import { untilAborted } from '../util/async.js';
import { httpPost, ReplyTimeoutError } from './http-get.js';
import { signRequest, type Credentials } from './signer.js';

/** The audience CCE Pod Identity accepts, fixed by CCE. */
export const POD_IDENTITY_AUDIENCE = 'service.cce.pods';

export function cceEndpointForRegion(region: string): string {
  return endpointForRegion('cce', region);
}

export interface PodSubject {
  namespace: string;
  serviceAccount: string;
}

export interface PodIdentityOptions {
  /** e.g. https://cce.cn-north-4.myhuaweicloud.com */
  endpoint: string;
  clusterId: string;
  projectId: () => Promise<string>;
  /** The node's own identity, which signs the exchange (never used to read a pod's secrets). */
  node: CredentialProvider;
  timeoutMs?: number;
  /** Keys are exchanged again this long before they expire (at most half their lifetime). */
  refreshAheadMs?: number;
  now?: () => number;
}

interface Held {
  creds: Credentials;
  expiresAt: number;
  /** When to exchange again. */
  renewAt: number;
}

/** Answers are small JSON; anything larger is not CCE's. */
const MAX_REPLY_BYTES = 64 * 1024;
/** Kept keys still this valid serve a caller while CCE cannot be reached. */
const OUTAGE_MARGIN_MS = 30_000;
/** A refusal (no association, a refused token) is answered again for this long, without asking CCE. */
const REFUSAL_MS = 30_000;
/** Refusals remembered at most; the oldest goes first. */
const MAX_REFUSALS = 1024;

export class PodIdentityExchange {
  private readonly held = new Map<string, Held>();
  private readonly inflight = new Map<string, Promise<Held>>();
  /** Recent refusals by ServiceAccount and token: kubelet's retries and rotation do not each ask CCE again. */
  private readonly refused = new Map<string, { err: Error; until: number }>();
  private readonly endpoint: string;
  private readonly now: () => number;

  constructor(private readonly opts: PodIdentityOptions) {
    this.endpoint = opts.endpoint.replace(/\/+$/, '');
    this.now = opts.now ?? Date.now;
  }

  /** The agency keys of `subject`, exchanged with `token` unless kept ones are still fresh. */
  async credentials(subject: PodSubject, token: string, signal?: AbortSignal): Promise<Credentials> {
    const key = `${subject.namespace}/${subject.serviceAccount}`;
    const now = this.now();
    this.forgetExpired(now);
    // Kept keys go only to a caller whose token names the same ServiceAccount (CCE checked the
    // token they came from; this one is checked when it is exchanged).
    const named = tokenNames(token, subject);
    const kept = named ? this.held.get(key) : undefined;
    if (kept && now < kept.renewAt) return kept.creds;
    const refusalKey = `${key}\0${createHash('sha256').update(token).digest('hex')}`;
    const refusal = this.refused.get(refusalKey);
    if (refusal && now < refusal.until) throw refusal.err;
    // Only a token naming the ServiceAccount joins its exchange in flight; any other is
    // exchanged on its own, and CCE's answer must then name the ServiceAccount asked for.
    let exchange = named ? this.inflight.get(key) : undefined;
    if (!exchange) {
      // Not cancelled by one caller giving up (others may wait on it); its timeout bounds it.
      exchange = this.exchange(subject, token).then((fresh) => {
        this.held.set(key, fresh);
        return fresh;
      });
      if (named) {
        this.inflight.set(key, exchange);
        const shared = exchange;
        void shared
          .finally(() => this.inflight.get(key) === shared && this.inflight.delete(key))
          .catch(() => undefined);
      }
    }
    try {
      return (await untilAborted(exchange, signal)).creds;
    } catch (err) {
      // CCE unreachable while the keys we hold still work: running volumes keep rotating.
      if (err instanceof StoreUnavailableError && kept && this.now() < kept.expiresAt - OUTAGE_MARGIN_MS)
        return kept.creds;
      if (err instanceof NotAllowedError || err instanceof UnauthenticatedError) this.remember(refusalKey, err);
      throw err;
    }
  }

  /** How many ServiceAccounts' keys are kept (tests, metrics). */
  get size(): number {
    return this.held.size;
  }

  private forgetExpired(now: number): void {
    for (const [key, h] of this.held) if (now >= h.expiresAt) this.held.delete(key);
  }

  /** Refusals are kept in the order they came, so the expired ones are the oldest. */
  private remember(key: string, err: Error): void {
    const now = this.now();
    for (const [k, r] of this.refused) {
      if (now < r.until && this.refused.size < MAX_REFUSALS) break;
      this.refused.delete(k);
    }
    this.refused.delete(key);
    this.refused.set(key, { err, until: now + REFUSAL_MS });
  }

  private async exchange(subject: PodSubject, token: string): Promise<Held> {
    const who = `ServiceAccount ${subject.namespace}/${subject.serviceAccount}`;
    const projectId = await this.opts.projectId();
    const url = new URL(
      `${this.endpoint}/api/v3/projects/${encodeURIComponent(projectId)}/clusters/${encodeURIComponent(this.opts.clusterId)}/assume-agency-for-pod-identity`,
    );
    const body = JSON.stringify({ token });
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'X-Project-Id': projectId };
    const signed = signRequest({ method: 'POST', url, headers, body }, await this.opts.node.credentials());
    delete signed.host;
    const timeoutMs = this.opts.timeoutMs ?? 5_000;
    let reply;
    try {
      reply = await httpPost(url, { ...headers, ...signed }, body, { timeoutMs, maxBytes: MAX_REPLY_BYTES });
    } catch (err) {
      const problem = err instanceof ReplyTimeoutError ? `timed out after ${timeoutMs} ms` : errorMessage(err);
      throw new StoreUnavailableError(
        `CCE Pod Identity at ${this.endpoint} did not answer for ${who} (${problem}); it is retried on the next mount or rotation`,
        { cause: err },
      );
    }
    if (reply.status === 200) return this.parse(reply.body, subject, who);
    throw this.refusal(reply.status, reply.body, subject, who);
  }

  private parse(text: string, subject: PodSubject, who: string): Held {
    let body: {
      credentials?: { accessKeyId?: string; secretAccessKey?: string; securityToken?: string; expiration?: string };
      subject?: { namespace?: string; serviceAccount?: string };
    };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new StoreUnavailableError(`CCE Pod Identity answered ${who} with a body that is not JSON`);
    }
    const c = body.credentials;
    const expiresAt = Date.parse(c?.expiration ?? '');
    if (!c?.accessKeyId || !c.secretAccessKey || !c.securityToken || Number.isNaN(expiresAt))
      throw new StoreUnavailableError(`CCE Pod Identity answered ${who} without complete temporary credentials`);
    if (!body.subject)
      throw new StoreUnavailableError(
        `CCE Pod Identity answered ${who} without the subject of its credentials; they are not used`,
      );
    // The keys must be the ServiceAccount's we asked for, never another's.
    if (body.subject.namespace !== subject.namespace || body.subject.serviceAccount !== subject.serviceAccount)
      throw new NotAllowedError(
        `CCE Pod Identity answered ${who} with the credentials of another subject; they are not used`,
      );
    const now = this.now();
    const ahead = Math.min(this.opts.refreshAheadMs ?? 5 * 60_000, Math.max(0, expiresAt - now) / 2);
    return {
      creds: { accessKey: c.accessKeyId, secretKey: c.secretAccessKey, securityToken: c.securityToken },
      expiresAt,
      renewAt: expiresAt - ahead,
    };
  }

  private refusal(status: number, text: string, subject: PodSubject, who: string): Error {
    const { code, message } = parseErrorBody(text);
    const detail = code ? ` (${code}${message ? `: ${message}` : ''})` : ` (HTTP ${status})`;
    if (status === 404)
      return new NotAllowedError(
        `${who} has no pod identity association in cluster ${this.opts.clusterId}${detail}; a cluster admin associates it with an IAM agency that may read the secrets: ` +
          `CCE console > the cluster > Settings > Pod Identity, or POST /api/v3/projects/{project_id}/clusters/${this.opts.clusterId}/pod-identity-associations ` +
          `with namespace "${subject.namespace}" and serviceAccount "${subject.serviceAccount}" ` +
          `(if this cluster is not ${this.opts.clusterId}, the admin fixes the driver's --cluster-id, podIdentity.clusterID)`,
      );
    if (status === 401 && code?.startsWith('APIGW.'))
      return new UnauthenticatedError(
        `CCE refused the node's own credentials for the pod identity exchange of ${who}${detail}; check the node agency or HUAWEICLOUD_SDK_AK/SK`,
      );
    if (status === 401)
      return new UnauthenticatedError(
        `CCE Pod Identity refused the ServiceAccount token of ${who}${detail}; kubelet passes a new one on its next republish`,
      );
    if (status === 403)
      return new NotAllowedError(
        `CCE refused the pod identity exchange of ${who}${detail}; grant cce::assumeAgencyForPodIdentity to the node's identity`,
      );
    if (status === 429 || status >= 500)
      return new StoreUnavailableError(
        `CCE Pod Identity at ${this.endpoint} answered HTTP ${status} for ${who}${detail}; it is retried on the next mount or rotation`,
      );
    return new PreconditionError(`CCE Pod Identity rejected the exchange of ${who}${detail}`);
  }
}

/**
 * Whether a token's (unverified) subject is `subject`'s ServiceAccount: enough to keep one
 * ServiceAccount's kept keys from a caller holding another's token or none at all; CCE
 * verifies every token that is exchanged.
 */
function tokenNames(token: string, subject: PodSubject): boolean {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      sub?: unknown;
    };
    return claims.sub === `system:serviceaccount:${subject.namespace}:${subject.serviceAccount}`;
  } catch {
    return false;
  }
}
