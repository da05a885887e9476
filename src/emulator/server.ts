// A local CSMS: the read API of docs/csms-api.md over HTTP (or HTTPS), every request's
// SDK-HMAC-SHA256 signature verified, plus /_emulator/ controls for tests and users
// (publish a version, inject faults, read request counts), the ECS metadata endpoints
// that hand out node-agency keys, and CCE Pod Identity's exchange (pod-identity.ts): the
// keys it issues read only their agency's secrets.
import { errorMessage } from '../errors.js';
import { sleep } from '../util/async.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { canonicalRequest, parseAuthorization, parseSdkDate, signature, stringToSign } from '../provider/signer.js';
import { EmulatorStore, type EmulatorSeed, type Fault, type StoredCredentials, type StoredSecret } from './store.js';
import { PodIdentityRefusal, POD_IDENTITY_AUDIENCE, type PodIdentitySeed } from './pod-identity.js';
import { readBody } from '../util/read-body.js';

const MAX_CLOCK_SKEW_MS = 15 * 60_000;

type Reply = { status: number; body: unknown };

export class CsmsEmulator {
  readonly store: EmulatorStore;
  private server?: Server;

  constructor(seed?: EmulatorSeed) {
    this.store = new EmulatorStore(seed);
  }

  /** Serves HTTP, or HTTPS with `tls` (PEM key and certificate), as a real endpoint does. */
  async listen(port = 0, host = '127.0.0.1', tls?: { key: string; cert: string }): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = tls ? createTlsServer(tls, handler) : createServer(handler);
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, resolve);
    });
    const addr = this.server.address() as AddressInfo;
    return `${tls ? 'https' : 'http'}://${host}:${addr.port}`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    let reply: Reply;
    try {
      if (url.pathname.startsWith('/_emulator/')) reply = this.control(req.method ?? 'GET', url.pathname, body);
      else if (url.pathname.startsWith('/openstack/') || url.pathname.startsWith('/meta-data/'))
        reply = this.metadata(url.pathname);
      else reply = await this.api(req, url, body);
    } catch (err) {
      reply = { status: 400, body: { error_code: 'CSMS.0004', error_msg: errorMessage(err) } };
    }
    const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
    res.writeHead(reply.status, { 'Content-Type': typeof reply.body === 'string' ? 'text/plain' : 'application/json' });
    res.end(text);
  }

  private async api(req: IncomingMessage, url: URL, body: string): Promise<Reply> {
    const auth = this.verify(req, url, body);
    if ('reply' in auth) return auth.reply;
    const exchange = /^\/api\/v3\/projects\/([^/]+)\/clusters\/([^/]+)\/assume-agency-for-pod-identity$/.exec(
      url.pathname,
    );
    if (exchange && req.method === 'POST') return this.assumeAgency(auth.creds, exchange[1], exchange[2], body);
    const m = /^\/v1\/([^/]+)\/secrets\/([^/]+)(?:\/(versions|stages)(?:\/([^/]+))?)?$/.exec(url.pathname);
    const batch = /^\/v1\/([^/]+)\/secrets\/batch-get-secret-value$/.exec(url.pathname);
    const project = m?.[1] ?? batch?.[1];
    const secretName = m ? decodeURIComponent(m[2]) : undefined;
    this.store.count(`${req.method} ${secretName ?? url.pathname}${m?.[4] ? `/${m[4]}` : ''}`);
    const fault = this.store.takeFault(secretName);
    if (fault?.latencyMs) await sleep(fault.latencyMs);
    if (fault && fault.status !== 0) return faultReply(fault);
    if (project !== this.store.projectId)
      return csmsError(400, 'CSMS.0002', `project id ${project} does not match the credentials' project`);
    if (batch && req.method === 'POST') return this.batchGet(body, auth.creds);
    if (!m || req.method !== 'GET')
      return csmsError(400, 'CSMS.0003', `unsupported request ${req.method} ${url.pathname}`);
    this.store.logRequest({
      accessKey: auth.creds.accessKey,
      agency: auth.creds.agency,
      what: `${req.method} ${secretName}${m[4] ? `/${m[4]}` : ''}`,
    });
    const agency = auth.creds.agency;
    if (agency !== undefined && !this.store.podIdentity?.allows(agency, secretName!))
      return csmsError(403, 'CSMS.0403', `agency ${agency} may not read secret ${secretName}`);
    const secret = this.store.get(secretName!);
    if (!secret) return csmsError(400, 'CSMS.0005', `secret ${secretName} does not exist`);
    if (m[3] === undefined) return { status: 200, body: { secret: secretMetadata(secret) } };
    if (m[3] === 'stages') return this.stage(secret, decodeURIComponent(m[4] ?? ''));
    if (m[4] === undefined) return this.listVersions(secret);
    return this.value(secret, decodeURIComponent(m[4]));
  }

  private value(secret: StoredSecret, versionId: string): Reply {
    if (secret.state === 'PENDING_DELETE')
      return csmsError(400, 'CSMS.0103', `secret ${secret.name} is pending deletion`);
    if (secret.state !== 'ENABLED') return csmsError(400, 'CSMS.0003', `secret ${secret.name} is ${secret.state}`);
    const version = versionId === 'latest' ? secret.versions.at(-1) : secret.versions.find((v) => v.id === versionId);
    if (!version) return csmsError(400, 'CSMS.0005', `version ${versionId} of secret ${secret.name} does not exist`);
    return {
      status: 200,
      body: { version: { version_metadata: this.versionMetadata(secret, version.id), ...version.value } },
    };
  }

  private versionMetadata(secret: StoredSecret, id: string) {
    const v = secret.versions.find((x) => x.id === id)!;
    return {
      id: v.id,
      create_time: v.createTime,
      expire_time: null,
      kms_key_id: 'emulator-key',
      secret_name: secret.name,
      version_stages: this.store.stagesOf(secret, v),
    };
  }

  private listVersions(secret: StoredSecret): Reply {
    const metas = secret.versions.map((v) => this.versionMetadata(secret, v.id)).reverse();
    return {
      status: 200,
      body: {
        version_metadatas: metas,
        page_info: { next_marker: null, previous_marker: null, current_count: metas.length },
      },
    };
  }

  private stage(secret: StoredSecret, stage: string): Reply {
    const version = secret.versions.find((v) => this.store.stagesOf(secret, v).includes(stage));
    if (!version) return csmsError(400, 'CSMS.0005', `stage ${stage} of secret ${secret.name} does not exist`);
    return {
      status: 200,
      body: {
        stage: { name: stage, secret_name: secret.name, version_id: version.id, update_time: version.createTime },
      },
    };
  }

  private batchGet(body: string, caller: StoredCredentials): Reply {
    const names = (JSON.parse(body || '{}') as { secret_name_list?: string[] }).secret_name_list ?? [];
    this.store.logRequest({
      accessKey: caller.accessKey,
      agency: caller.agency,
      what: `POST batch ${names.join(',')}`,
    });
    const agency = caller.agency;
    const denied = agency === undefined ? undefined : names.find((n) => !this.store.podIdentity?.allows(agency, n));
    if (denied !== undefined) return csmsError(403, 'CSMS.0403', `agency ${agency} may not read secret ${denied}`);
    const versions = names.flatMap((n) => {
      const s = this.store.get(n);
      const v = s?.versions.at(-1);
      return s && v && s.state === 'ENABLED' ? [{ version_metadata: this.versionMetadata(s, v.id), ...v.value }] : [];
    });
    return { status: 200, body: { total_count: versions.length, versions } };
  }

  /** CCE Pod Identity's AssumeAgencyForPodIdentity, called with the node's own keys. */
  private assumeAgency(caller: StoredCredentials, project: string, cluster: string, body: string): Reply {
    this.store.logRequest({
      accessKey: caller.accessKey,
      agency: caller.agency,
      what: 'POST assume-agency-for-pod-identity',
    });
    const pi = this.store.podIdentity;
    if (!pi || cluster !== pi.seed.clusterId || project !== this.store.projectId)
      return cceError(404, 'CCE.01404002', `cluster ${cluster} does not exist in project ${project}`);
    if (caller.agency !== undefined)
      return cceError(403, 'CCE.01403001', 'pod identity keys may not assume another agency');
    try {
      const keys = pi.exchange((JSON.parse(body || '{}') as { token?: unknown }).token);
      this.store.addIssued(keys);
      return {
        status: 200,
        body: {
          credentials: {
            accessKeyId: keys.accessKey,
            secretAccessKey: keys.secretKey,
            securityToken: keys.securityToken,
            expiration: new Date(keys.expiresAt).toISOString(),
          },
          assumedAgency: { urn: `sts::emulator::assumed-agency:${keys.agency}/pod`, id: `${keys.agency}:pod` },
          audience: POD_IDENTITY_AUDIENCE,
          podIdentityAssociationId: `${keys.subject.namespace}-${keys.subject.serviceAccount}`,
          subject: keys.subject,
        },
      };
    } catch (err) {
      if (err instanceof PodIdentityRefusal) return cceError(err.status, err.code, err.message);
      return cceError(400, 'CCE.01400001', 'the request body must be {"token": "<ServiceAccount token>"}');
    }
  }

  /**
   * Recomputes the signature over the listed headers: the caller's credentials, or the
   * gateway-shaped refusal the real one answers.
   */
  private verify(req: IncomingMessage, url: URL, body: string): { reply: Reply } | { creds: StoredCredentials } {
    const auth = parseAuthorization(req.headers.authorization);
    const refuse = (status: number, code: string, msg: string) => ({ reply: gatewayError(status, code, msg) });
    if (!auth)
      return refuse(401, 'APIGW.0301', 'Incorrect IAM authentication information: missing or malformed Authorization');
    const creds = this.store.credentials.get(auth.accessKey);
    if (!creds) return refuse(401, 'APIGW.0301', 'Incorrect IAM authentication information: unknown access key');
    if (creds.expiresAt !== undefined && Date.now() >= creds.expiresAt)
      return refuse(401, 'APIGW.0301', 'Incorrect IAM authentication information: the security token has expired');
    const dateHeader = String(req.headers['x-sdk-date'] ?? '');
    const date = parseSdkDate(dateHeader);
    if (!date || Math.abs(Date.now() - date.getTime()) > MAX_CLOCK_SKEW_MS) {
      return refuse(
        401,
        'APIGW.0303',
        'Incorrect app authentication information: X-Sdk-Date is missing or more than 15 minutes off',
      );
    }
    const signed = auth.signedHeaders;
    if (!signed.includes('host') || !signed.includes('x-sdk-date')) {
      return refuse(401, 'APIGW.0301', 'Incorrect IAM authentication information: host and x-sdk-date must be signed');
    }
    const token = req.headers['x-security-token'];
    if (creds.securityToken !== undefined && (token !== creds.securityToken || !signed.includes('x-security-token'))) {
      return refuse(
        401,
        'APIGW.0301',
        'Incorrect IAM authentication information: temporary credentials need their signed X-Security-Token',
      );
    }
    const headers: Record<string, string> = {};
    for (const h of signed) headers[h] = String(req.headers[h] ?? '');
    const canonical = canonicalRequest({ method: req.method ?? 'GET', url, headers, body }, signed);
    const expected = Buffer.from(signature(creds.secretKey, stringToSign(dateHeader, canonical)));
    const got = Buffer.from(auth.signature);
    if (expected.length !== got.length || !timingSafeEqual(expected, got)) {
      return refuse(401, 'APIGW.0301', 'Incorrect IAM authentication information: verify aksk signature fail');
    }
    return { creds };
  }

  private metadata(path: string): Reply {
    const agency = this.store.agency;
    if (path === '/meta-data/latest/api/token') return { status: 200, body: 'emulator-metadata-token' };
    if (path === '/openstack/latest/meta_data.json')
      return { status: 200, body: { project_id: this.store.projectId, availability_zone: 'emulator-1a' } };
    if (path === '/openstack/latest/securitykey') {
      if (!agency) return { status: 404, body: { error: 'Cloud Service Agency is not configured for this server' } };
      const expiresAt = new Date(Date.now() + (agency.ttlSeconds ?? 3600) * 1000).toISOString();
      return {
        status: 200,
        body: {
          credential: {
            access: agency.accessKey,
            secret: agency.secretKey,
            securitytoken: agency.securityToken,
            expires_at: expiresAt,
          },
        },
      };
    }
    return { status: 404, body: { error: `no metadata at ${path}` } };
  }

  private control(method: string, path: string, body: string): Reply {
    const json = body ? (JSON.parse(body) as Record<string, unknown>) : {};
    const secretPath = /^\/_emulator\/secrets\/([^/]+)(\/versions|\/state)?$/.exec(path);
    if (secretPath && method === 'POST' && secretPath[2] === '/versions') {
      const value =
        typeof json.secret_binary === 'string'
          ? { secret_binary: json.secret_binary }
          : { secret_string: typeof json.secret_string === 'string' ? json.secret_string : '' };
      return { status: 201, body: { id: this.store.addVersion(decodeURIComponent(secretPath[1]), value) } };
    }
    if (secretPath && method === 'PUT' && secretPath[2] === '/state') {
      this.store.setState(decodeURIComponent(secretPath[1]), json.state as StoredSecret['state']);
      return { status: 204, body: '' };
    }
    if (secretPath && method === 'DELETE' && !secretPath[2]) {
      this.store.delete(decodeURIComponent(secretPath[1]));
      return { status: 204, body: '' };
    }
    if (path === '/_emulator/faults' && method === 'POST') {
      this.store.addFault(json as unknown as Fault);
      return { status: 204, body: '' };
    }
    if (path === '/_emulator/faults' && method === 'DELETE') {
      this.store.clearFaults();
      return { status: 204, body: '' };
    }
    if (path === '/_emulator/stats' && method === 'GET') {
      return { status: 200, body: { total: this.store.total, requests: Object.fromEntries(this.store.counts) } };
    }
    if (path === '/_emulator/pod-identity' && method === 'PUT') {
      this.store.setPodIdentity(json as unknown as PodIdentitySeed);
      return { status: 204, body: '' };
    }
    if (path === '/_emulator/requests' && method === 'GET') {
      return { status: 200, body: { requests: this.store.requestLog } };
    }
    if (path === '/_emulator/stats' && method === 'DELETE') {
      this.store.resetCounts();
      return { status: 204, body: '' };
    }
    return { status: 404, body: { error: `no control endpoint ${method} ${path}` } };
  }
}

function secretMetadata(s: StoredSecret) {
  return {
    id: s.name,
    name: s.name,
    state: s.state,
    kms_key_id: 'emulator-key',
    create_time: s.versions[0]?.createTime ?? 0,
  };
}

function csmsError(status: number, code: string, msg: string): Reply {
  return { status, body: { error_code: code, error_msg: msg } };
}

/** CCE's error body (the codes are the emulator's own; CCE documents the shape). */
function cceError(status: number, code: string, msg: string): Reply {
  return { status, body: { error_code: code, error_msg: msg } };
}

function gatewayError(status: number, code: string, msg: string): Reply {
  return { status, body: { error_code: code, error_msg: msg, request_id: randomUUID().replace(/-/g, '') } };
}

function faultReply(f: Fault): Reply {
  const code = f.errorCode ?? (f.status === 429 ? 'APIGW.0308' : f.status === 504 ? 'APIGW.0201' : 'CSMS.0001');
  const msg = `injected fault ${f.status}`;
  if (f.shape === 'nested') return { status: f.status, body: { error: { error_code: code, error_msg: msg } } };
  if (f.shape === 'gateway' || code.startsWith('APIGW')) return gatewayError(f.status, code, msg);
  return csmsError(f.status, code, msg);
}
