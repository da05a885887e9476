// ServiceAccount tokens as kube-apiserver signs them (RS256 over its key), for unit tests that
// have no API server; integration tests ask the real API server for theirs (TokenRequest).
import { createSign, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';

export interface TokenSigner {
  jwks: { keys: JsonWebKey[] };
  token(namespace: string, serviceAccount: string, claims?: Record<string, unknown>): string;
}

export function tokenSigner(kid = 'test-key'): TokenSigner {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] },
    token: (namespace, serviceAccount, claims = {}) => sign(privateKey, kid, namespace, serviceAccount, claims),
  };
}

function sign(key: KeyObject, kid: string, namespace: string, sa: string, claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', kid };
  const payload = {
    aud: ['service.cce.pods'],
    iss: 'https://kubernetes.default.svc',
    sub: `system:serviceaccount:${namespace}:${sa}`,
    iat: now,
    nbf: now,
    exp: now + 600,
    'kubernetes.io': { namespace, serviceaccount: { name: sa } },
    ...claims,
  };
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const data = `${part(header)}.${part(payload)}`;
  return `${data}.${createSign('RSA-SHA256').update(data).sign(key).toString('base64url')}`;
}
