// Huawei Cloud API Gateway request signing, SDK-HMAC-SHA256 (see docs/csms-api.md).
// Shared by the CSMS client (signs) and the emulator (verifies), so both follow one
// reading of the algorithm, which the unit tests pin with hand-derived vectors.
import { createHash, createHmac } from 'node:crypto';

export const ALGORITHM = 'SDK-HMAC-SHA256';

export interface Credentials {
  accessKey: string;
  secretKey: string;
  /** Present for temporary credentials (agency, STS). */
  securityToken?: string;
}

export interface SignableRequest {
  method: string;
  url: URL;
  /** Header names in any case; values as sent. */
  headers: Record<string, string>;
  body?: string;
}

/** RFC 3986: unreserved characters kept, everything else %XY upper case. */
export function encodeRfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `YYYYMMDDTHHMMSSZ` in UTC. */
export function sdkDate(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

export function parseSdkDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : undefined;
}

function canonicalUri(pathname: string): string {
  const path = pathname
    .split('/')
    .map((seg) => encodeRfc3986(decodeURIComponent(seg)))
    .join('/');
  return path.endsWith('/') ? path : `${path}/`;
}

function canonicalQuery(url: URL): string {
  const pairs = [...url.searchParams.entries()].map(([k, v]) => [encodeRfc3986(k), encodeRfc3986(v)] as const);
  pairs.sort(([a, av], [b, bv]) => (a === b ? (av < bv ? -1 : 1) : a < b ? -1 : 1));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

export function canonicalRequest(req: SignableRequest, signedHeaders: string[]): string {
  const lower = new Map(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const headerLines = signedHeaders.map((h) => `${h}:${(lower.get(h) ?? '').trim()}\n`).join('');
  return [
    req.method.toUpperCase(),
    canonicalUri(req.url.pathname),
    canonicalQuery(req.url),
    headerLines,
    signedHeaders.join(';'),
    createHash('sha256')
      .update(req.body ?? '')
      .digest('hex'),
  ].join('\n');
}

export function stringToSign(date: string, canonical: string): string {
  return `${ALGORITHM}\n${date}\n${createHash('sha256').update(canonical).digest('hex')}`;
}

export function signature(secretKey: string, toSign: string): string {
  return createHmac('sha256', secretKey).update(toSign).digest('hex');
}

/** Returns the headers to add: X-Sdk-Date, host, X-Security-Token when temporary, Authorization. */
export function signRequest(req: SignableRequest, creds: Credentials, now: Date = new Date()): Record<string, string> {
  const added: Record<string, string> = { 'X-Sdk-Date': sdkDate(now), host: req.url.host };
  if (creds.securityToken) added['X-Security-Token'] = creds.securityToken;
  const headers = { ...req.headers, ...added };
  const signed = Object.keys(headers)
    .map((h) => h.toLowerCase())
    .sort();
  const canonical = canonicalRequest({ ...req, headers }, signed);
  const sig = signature(creds.secretKey, stringToSign(added['X-Sdk-Date'], canonical));
  added.Authorization = `${ALGORITHM} Access=${creds.accessKey}, SignedHeaders=${signed.join(';')}, Signature=${sig}`;
  return added;
}

export interface ParsedAuthorization {
  accessKey: string;
  signedHeaders: string[];
  signature: string;
}

export function parseAuthorization(value: string | undefined): ParsedAuthorization | undefined {
  const m = /^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)$/.exec(
    value ?? '',
  );
  return m ? { accessKey: m[1], signedHeaders: m[2].split(';'), signature: m[3] } : undefined;
}
