// Where CSMS credentials come from, in order: the volume's nodePublishSecretRef,
// the process environment, then the node's IAM agency via the ECS metadata service.
import { errorMessage, StoreUnavailableError, UnauthenticatedError } from '../errors.js';
import type { Credentials } from './signer.js';

export interface CredentialProvider {
  credentials(): Promise<Credentials>;
}

export const DEFAULT_METADATA_ENDPOINT = 'http://169.254.169.254';

/** From `nodePublishSecretRef` data: access_key, secret_key, optional security_token. */
export function credentialsFromSecretRef(secrets: Record<string, string>): Credentials | undefined {
  const accessKey = secrets.access_key?.trim();
  const secretKey = secrets.secret_key?.trim();
  if (!accessKey && !secretKey) return undefined;
  if (!accessKey || !secretKey) {
    throw new UnauthenticatedError(
      'nodePublishSecretRef must hold both access_key and secret_key (security_token is optional)',
    );
  }
  const securityToken = secrets.security_token?.trim() || undefined;
  return { accessKey, secretKey, securityToken };
}

export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  const accessKey = env.HUAWEICLOUD_SDK_AK;
  const secretKey = env.HUAWEICLOUD_SDK_SK;
  if (!accessKey || !secretKey) return undefined;
  return { accessKey, secretKey, securityToken: env.HUAWEICLOUD_SDK_SECURITY_TOKEN || undefined };
}

export interface MetadataOptions {
  endpoint?: string;
  timeoutMs?: number;
  /** Refresh this long before expires_at. */
  refreshAheadMs?: number;
}

/** Temporary keys of the node's agency, cached and refreshed ahead of expiry. */
export class MetadataCredentials implements CredentialProvider {
  private cached?: { creds: Credentials; expiresAt: number };
  private inflight?: Promise<Credentials>;
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly refreshAheadMs: number;

  constructor(opts: MetadataOptions = {}) {
    this.endpoint = (opts.endpoint ?? DEFAULT_METADATA_ENDPOINT).replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.refreshAheadMs = opts.refreshAheadMs ?? 10 * 60_000;
  }

  credentials(): Promise<Credentials> {
    const cached = this.cached;
    if (cached && Date.now() < cached.expiresAt - this.refreshAheadMs) return Promise.resolve(cached.creds);
    this.inflight ??= this.fetchKeys().finally(() => {
      this.inflight = undefined;
    });
    // A hiccup of the metadata service while the keys we hold are still valid costs nothing.
    if (cached && Date.now() < cached.expiresAt - 60_000) return this.inflight.catch(() => cached.creds);
    return this.inflight;
  }

  /** The project id from the metadata service; a failure is not remembered, so the next call tries again. */
  projectId(): Promise<string> {
    this.project ??= this.fetchProjectId().catch((err) => {
      this.project = undefined;
      throw err;
    });
    return this.project;
  }

  private project?: Promise<string>;

  private async fetchProjectId(): Promise<string> {
    const missing = 'the CSMS project id is not configured (--project-id or HUAWEICLOUD_SDK_PROJECT_ID)';
    const res = await this.get('/openstack/latest/meta_data.json', await this.sessionToken(), missing);
    const body = (await res.json().catch(() => ({}))) as { project_id?: string };
    if (!res.ok || !body.project_id)
      throw new StoreUnavailableError(
        `${missing} and the ECS metadata service at ${this.endpoint} did not provide it (HTTP ${res.status}); it is retried on the next mount`,
      );
    return body.project_id;
  }

  private async fetchKeys(): Promise<Credentials> {
    const missing = 'no CSMS credentials are configured (nodePublishSecretRef, HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK)';
    const res = await this.get('/openstack/latest/securitykey', await this.sessionToken(), missing);
    if (res.status === 401 || res.status === 404) {
      throw new StoreUnavailableError(
        `${missing} and the node has no IAM agency (metadata service answered HTTP ${res.status}); bind an agency with CSMS read access to the node, or use nodePublishSecretRef / HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK`,
      );
    }
    if (!res.ok)
      throw new StoreUnavailableError(
        `${missing} and the ECS metadata service answered HTTP ${res.status} for the node agency keys; it is retried on the next mount`,
      );
    const body = (await res.json()) as {
      credential?: { access?: string; secret?: string; securitytoken?: string; expires_at?: string };
    };
    const c = body.credential;
    if (!c?.access || !c.secret)
      throw new StoreUnavailableError(`${missing} and the ECS metadata service returned no agency keys`);
    const creds = { accessKey: c.access, secretKey: c.secret, securityToken: c.securitytoken };
    const expiresAt = c.expires_at ? Date.parse(c.expires_at) : Date.now() + 15 * 60_000;
    this.cached = { creds, expiresAt };
    return creds;
  }

  /** The optional session token; services without it answer 404/405. */
  private async sessionToken(): Promise<string | undefined> {
    try {
      const res = await fetch(`${this.endpoint}/meta-data/latest/api/token`, {
        method: 'PUT',
        headers: { 'X-Metadata-Token-Ttl-Seconds': '21600' },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      return res.ok ? (await res.text()).trim() : undefined;
    } catch {
      return undefined;
    }
  }

  private async get(path: string, token: string | undefined, missing: string): Promise<Response> {
    try {
      return await fetch(this.endpoint + path, {
        headers: token ? { 'X-Metadata-Token': token } : {},
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new StoreUnavailableError(
        `${missing} and the ECS metadata service at ${this.endpoint} is unreachable (${errorMessage(err)}); it is retried on the next mount`,
        { cause: err },
      );
    }
  }
}

/** Picks the credentials for one mount: its secret ref, else the process default. */
export async function resolveCredentials(
  secrets: Record<string, string>,
  fallback: CredentialProvider,
): Promise<Credentials> {
  return credentialsFromSecretRef(secrets) ?? fallback.credentials();
}

/** The process default: environment keys if set, else the node agency. */
export function defaultCredentialProvider(
  metadata: MetadataCredentials,
  env: NodeJS.ProcessEnv = process.env,
): CredentialProvider {
  const fromEnv = credentialsFromEnv(env);
  return fromEnv ? { credentials: () => Promise.resolve(fromEnv) } : metadata;
}
