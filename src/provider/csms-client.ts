// Reads secret versions from Huawei Cloud CSMS. Knows nothing of Kubernetes: given
// credentials, a secret name and a version, it returns bytes and the version id.
import {
  errorMessage,
  NotAllowedError,
  NotFoundError,
  PreconditionError,
  ProductError,
  StoreThrottledError,
  StoreUnavailableError,
  UnauthenticatedError,
} from '../errors.js';
import type { Metrics } from '../metrics.js';
import { sleep } from '../util/async.js';
import { httpGet, ReplyTimeoutError, ReplyTooLargeError, type HttpReply } from './http-get.js';
import { signRequest, type Credentials } from './signer.js';
import type { SecretVersion } from './secret-source.js';

export interface CsmsClientOptions {
  /** e.g. https://kms.cn-north-4.myhuaweicloud.com */
  endpoint: string;
  /** The project id, or where to get it when it is first needed (the metadata service may be down at start-up). */
  projectId: string | (() => Promise<string>);
  timeoutMs?: number;
  /** Largest response body accepted; CSMS's own secrets are far smaller. */
  maxResponseBytes?: number;
  /** Attempts for throttling, 5xx and network errors, the first included. */
  maxAttempts?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Where requests are counted and timed; not counted when unset. */
  metrics?: Pick<Metrics, 'csmsRequests' | 'csmsDuration'>;
}

interface Read {
  name: string;
  version: string;
  path: string;
  projectId: string;
  /** How messages name the read. */
  what: string;
}

interface Retry {
  retry: string;
  cause?: unknown;
  /** The store answered 429. */
  throttled?: boolean;
}

interface CsmsErrorBody {
  code?: string;
  message?: string;
}

/** A CSMS secret value is at most 64 KB; base64 and the JSON around it stay far below this. */
export const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const NOT_FOUND_CODES = new Set(['CSMS.0005', 'CSMS.0106']);
const PENDING_DELETE_CODES = new Set(['CSMS.0103', 'CSMS.0107']);

/** A Huawei Cloud service's public endpoint in `region`, e.g. https://kms.cn-north-4.myhuaweicloud.com. */
export function endpointForRegion(service: 'kms' | 'cce', region: string): string {
  const domain = region === 'eu-west-101' ? 'myhuaweicloud.eu' : 'myhuaweicloud.com';
  return `https://${service}.${region}.${domain}`;
}

/** CSMS shares the KMS host. */
export function csmsEndpointForRegion(region: string): string {
  return endpointForRegion('kms', region);
}

export class CsmsClient {
  private readonly opts: Required<Omit<CsmsClientOptions, 'metrics'>> & Pick<CsmsClientOptions, 'metrics'>;
  /** Counts outbound HTTP requests, retries included (metrics and benchmarks read it). */
  requests = 0;

  constructor(options: CsmsClientOptions) {
    this.opts = {
      timeoutMs: 5000,
      maxAttempts: 4,
      backoffBaseMs: 200,
      backoffCapMs: 3000,
      maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
      ...options,
    };
    this.opts.endpoint = this.opts.endpoint.replace(/\/+$/, '');
  }

  private async project(): Promise<string> {
    const p = this.opts.projectId;
    return typeof p === 'string' ? p : p();
  }

  /** With `signal`, stops (between attempts and mid-request) with the signal's reason once it aborts. */
  async getVersion(name: string, version: string, creds: Credentials, signal?: AbortSignal): Promise<SecretVersion> {
    const projectId = await this.project();
    const path = `/v1/${encodeURIComponent(projectId)}/secrets/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`;
    const read = { name, version, path, projectId, what: `secret "${name}" version "${version}"` };
    let last: Retry | undefined;
    for (let attempt = 1; attempt <= this.opts.maxAttempts; attempt++) {
      if (attempt > 1) await sleep(this.backoff(attempt), signal);
      signal?.throwIfAborted();
      const outcome = await this.attempt(read, creds, signal);
      if (!('retry' in outcome)) return outcome;
      last = outcome;
    }
    const Unavailable = last?.throttled ? StoreThrottledError : StoreUnavailableError;
    throw new Unavailable(
      `CSMS at ${this.opts.endpoint} did not serve ${read.what} after ${this.opts.maxAttempts} attempts: ${last?.retry}; it is retried on the next mount or rotation`,
      { cause: last?.cause },
    );
  }

  /** One request: the version, a problem worth another attempt, or a thrown error that is final. */
  private async attempt(read: Read, creds: Credentials, signal?: AbortSignal): Promise<SecretVersion | Retry> {
    const done = this.timer();
    let res: HttpReply;
    try {
      res = await this.send(read.path, read.projectId, creds, signal);
    } catch (err) {
      if (signal?.aborted) {
        done('cancelled');
        throw signal.reason;
      }
      if (err instanceof ReplyTooLargeError) {
        done('too_large');
        throw new StoreUnavailableError(
          `CSMS answered ${read.what} with more than ${this.opts.maxResponseBytes} bytes, over the limit set by --csms-max-response-bytes`,
          { cause: err },
        );
      }
      const timedOut = err instanceof ReplyTimeoutError;
      done(timedOut ? 'timeout' : 'network_error');
      const problem = timedOut ? `timed out after ${this.opts.timeoutMs} ms` : `request failed (${errorMessage(err)})`;
      return { retry: problem, cause: err };
    }
    const ok = res.status >= 200 && res.status < 300;
    done(ok ? 'ok' : res.status === 429 ? 'throttled' : res.status >= 500 ? 'server_error' : 'client_error');
    if (ok) return parseVersion(read.name, read.version, res.body);
    const body = parseErrorBody(res.body);
    if (RETRYABLE_STATUS.has(res.status)) {
      return { retry: `HTTP ${res.status}${body.code ? ` ${body.code}` : ''}`, throttled: res.status === 429 };
    }
    throw this.classify(res.status, body, read.what, read.projectId);
  }

  /** Starts timing one request; the returned function records its outcome. */
  private timer(): (outcome: string) => void {
    const m = this.opts.metrics;
    if (!m) return () => undefined;
    const observe = m.csmsDuration.startTimer();
    return (outcome) => {
      observe({ outcome });
      m.csmsRequests.inc({ outcome });
    };
  }

  private send(path: string, projectId: string, creds: Credentials, signal?: AbortSignal): Promise<HttpReply> {
    const url = new URL(this.opts.endpoint + path);
    const headers: Record<string, string> = { 'X-Project-Id': projectId, 'Content-Type': 'application/json' };
    const signed = signRequest({ method: 'GET', url, headers }, creds);
    delete signed.host; // node:http derives Host from the URL; the signature already covers it
    this.requests++;
    return httpGet(
      url,
      { ...headers, ...signed },
      { timeoutMs: this.opts.timeoutMs, maxBytes: this.opts.maxResponseBytes, signal },
    );
  }

  private backoff(attempt: number): number {
    const exp = Math.min(this.opts.backoffCapMs, this.opts.backoffBaseMs * 2 ** (attempt - 2));
    return exp / 2 + Math.random() * (exp / 2);
  }

  private classify(status: number, body: CsmsErrorBody, what: string, projectId: string): ProductError {
    const detail = body.code ? ` (${body.code}${body.message ? `: ${body.message}` : ''})` : ` (HTTP ${status})`;
    if (status === 404 || (body.code && NOT_FOUND_CODES.has(body.code))) {
      return new NotFoundError(
        `${what} does not exist in CSMS project ${projectId}${detail}; create it in DEW or fix objectName/objectVersion`,
      );
    }
    if (body.code && PENDING_DELETE_CODES.has(body.code)) {
      return new PreconditionError(
        `${what} is pending deletion in CSMS${detail}; cancel the deletion or reference another secret`,
      );
    }
    if (status === 401) {
      const hint =
        body.code === 'APIGW.0303'
          ? 'the node clock is more than 15 minutes off'
          : 'check the access key, secret key and security token';
      return new UnauthenticatedError(`CSMS refused the credentials used for ${what}${detail}; ${hint}`);
    }
    if (status === 403) {
      return new NotAllowedError(
        `CSMS denied access to ${what}${detail}; grant csms:secret:getVersion and kms:cmk:decryptDataKey to the credentials in use`,
      );
    }
    return new PreconditionError(`CSMS rejected the request for ${what}${detail}`);
  }
}

function parseVersion(name: string, version: string, text: string): SecretVersion {
  let body: { version?: { version_metadata?: { id?: string }; secret_string?: string; secret_binary?: string } };
  try {
    body = JSON.parse(text) as typeof body;
  } catch (err) {
    throw new StoreUnavailableError(
      `CSMS answered secret "${name}" version "${version}" with a body that is not JSON`,
      {
        cause: err,
      },
    );
  }
  const v = body.version;
  const versionId = v?.version_metadata?.id ?? version;
  if (typeof v?.secret_string === 'string') return { name, versionId, value: Buffer.from(v.secret_string, 'utf8') };
  if (typeof v?.secret_binary === 'string') return { name, versionId, value: Buffer.from(v.secret_binary, 'base64') };
  throw new StoreUnavailableError(
    `CSMS answered secret "${name}" version "${version}" without secret_string or secret_binary`,
  );
}

/** Accepts the three documented shapes: flat CSMS, API gateway, and KMS-nested. */
export function parseErrorBody(text: string): CsmsErrorBody {
  try {
    const b = JSON.parse(text) as Record<string, unknown>;
    const inner = (b.error && typeof b.error === 'object' ? b.error : b) as Record<string, unknown>;
    const code = typeof inner.error_code === 'string' ? inner.error_code : undefined;
    const message = typeof inner.error_msg === 'string' ? inner.error_msg.slice(0, 300) : undefined;
    return { code, message };
  } catch {
    return {};
  }
}
