// The emulator's CCE Pod Identity: it checks a ServiceAccount token as CCE does (signed by
// one of the cluster's keys, its JWKS; audience service.cce.pods; not expired), finds the
// (namespace, ServiceAccount)'s association, and issues short-lived agency keys that CSMS
// then authorises against the agency's list of secrets. Pure state and checks, no HTTP.
import { createPublicKey, randomBytes, verify, type JsonWebKey, type KeyObject } from 'node:crypto';

export const POD_IDENTITY_AUDIENCE = 'service.cce.pods';

export interface PodIdentitySeed {
  clusterId: string;
  /** The cluster's token signing keys, as kube-apiserver serves them at /openid/v1/jwks. */
  jwks: { keys: JsonWebKey[] };
  /** Checked when set: the tokens' `iss`. */
  issuer?: string;
  /** Refuses tokens issued longer ago than this (short-lived tokens in tests); unset, only `exp` counts. */
  maxTokenAgeSeconds?: number;
  /** Lifetime of the keys it issues (default 3600). */
  credentialTtlSeconds?: number;
  associations: { namespace: string; serviceAccount: string; agency: string }[];
  /** Each agency's CSMS secrets by name ("*" for all). */
  agencies: { name: string; secrets: string[] }[];
}

export interface IssuedKeys {
  accessKey: string;
  secretKey: string;
  securityToken: string;
  expiresAt: number;
  agency: string;
  subject: { namespace: string; serviceAccount: string };
}

/** A refusal as CCE answers it: HTTP status, error code and message. */
export class PodIdentityRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Claims {
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  iss?: string;
  sub?: string;
}

export class EmulatedPodIdentity {
  private readonly keys: { kid?: string; key: KeyObject }[];

  constructor(readonly seed: PodIdentitySeed) {
    // RS256 only: a key of another type could verify a signature of another algorithm.
    this.keys = seed.jwks.keys
      .filter((jwk) => jwk.kty === 'RSA')
      .map((jwk) => ({
        kid: (jwk as { kid?: string }).kid,
        key: createPublicKey({ key: jwk, format: 'jwk' }),
      }));
  }

  /** Agency keys for the subject of a valid `token`; throws a PodIdentityRefusal otherwise. */
  exchange(token: unknown, now = Date.now()): IssuedKeys {
    if (typeof token !== 'string' || token === '')
      throw new PodIdentityRefusal(400, 'CCE.01400001', 'the request body must be {"token": "<ServiceAccount token>"}');
    const claims = this.verified(token, now);
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(claims.sub ?? '');
    if (!m) throw new PodIdentityRefusal(401, 'CCE.01401001', 'the token is not a ServiceAccount token');
    const subject = { namespace: m[1], serviceAccount: m[2] };
    const association = this.seed.associations.find(
      (a) => a.namespace === subject.namespace && a.serviceAccount === subject.serviceAccount,
    );
    if (!association)
      throw new PodIdentityRefusal(
        404,
        'CCE.01404001',
        `no pod identity association for ServiceAccount ${subject.namespace}/${subject.serviceAccount} in cluster ${this.seed.clusterId}`,
      );
    const ttl = (this.seed.credentialTtlSeconds ?? 3600) * 1000;
    return {
      accessKey: `PODAK${randomBytes(8).toString('hex').toUpperCase()}`,
      secretKey: randomBytes(20).toString('hex'),
      securityToken: randomBytes(32).toString('base64url'),
      expiresAt: now + ttl,
      agency: association.agency,
      subject,
    };
  }

  /** Whether `agency` may read secret `name`. */
  allows(agency: string, name: string): boolean {
    const a = this.seed.agencies.find((x) => x.name === agency);
    return !!a && (a.secrets.includes('*') || a.secrets.includes(name));
  }

  private verified(token: string, now: number): Claims {
    const refuse = (why: string) => new PodIdentityRefusal(401, 'CCE.01401001', `the ServiceAccount token ${why}`);
    const parts = token.split('.');
    if (parts.length !== 3) throw refuse('is not a JWT');
    let header: { alg?: string; kid?: string };
    let claims: Claims;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as typeof header;
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Claims;
    } catch {
      throw refuse('is not a JWT');
    }
    if (header.alg !== 'RS256') throw refuse(`is signed with ${header.alg}, not RS256`);
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2], 'base64url');
    const candidates = this.keys.filter((k) => !header.kid || !k.kid || k.kid === header.kid);
    if (!candidates.some((k) => verify('sha256', signed, k.key, sig)))
      throw refuse("is not signed by the cluster's keys");
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(POD_IDENTITY_AUDIENCE)) throw refuse(`is not for audience ${POD_IDENTITY_AUDIENCE}`);
    const seconds = now / 1000;
    if (typeof claims.exp !== 'number' || claims.exp <= seconds) throw refuse('has expired');
    if (typeof claims.nbf === 'number' && claims.nbf > seconds + 60) throw refuse('is not valid yet');
    const maxAge = this.seed.maxTokenAgeSeconds;
    if (maxAge !== undefined && (claims.iat ?? 0) < seconds - maxAge) throw refuse('has expired');
    if (this.seed.issuer && claims.iss !== this.seed.issuer) throw refuse(`was not issued by ${this.seed.issuer}`);
    return claims;
  }
}
