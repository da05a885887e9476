// The SDK-HMAC-SHA256 signer: a hand-derived vector, the canonical request, tokens, the header it writes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalRequest, parseAuthorization, signRequest } from '../../src/provider/signer.js';

// Expected values were derived outside this code: the canonical request typed out by
// hand from docs/csms-api.md, hashed with sha256sum and signed with `openssl dgst -hmac`.
const project = '0123456789abcdef0123456789abcdef';
const creds = { accessKey: 'AKEXAMPLE', secretKey: 'MySecretKey/abc+123' };
const at = new Date(Date.UTC(2026, 10, 28, 12, 0, 0));
const headers = { 'X-Project-Id': project, 'Content-Type': 'application/json' };

describe('SDK-HMAC-SHA256 signer', () => {
  it('signs a GET of a secret version as the hand-derived vector', () => {
    const url = new URL(`https://kms.cn-north-4.myhuaweicloud.com/v1/${project}/secrets/secret_1/versions/v1`);
    const out = signRequest({ method: 'GET', url, headers }, creds, at);
    assert.equal(out['X-Sdk-Date'], '20261128T120000Z');
    assert.equal(out.host, 'kms.cn-north-4.myhuaweicloud.com');
    assert.equal(out['X-Security-Token'], undefined);
    assert.equal(
      out.Authorization,
      'SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=content-type;host;x-project-id;x-sdk-date, ' +
        'Signature=1f170a8c81216915cfba2f3d8030e15e1dfef4846a85d0ba4e69af89398a61a6',
    );
  });

  it('builds the canonical request with a trailing slash, sorted headers and the empty-body hash', () => {
    const url = new URL(`https://kms.cn-north-4.myhuaweicloud.com/v1/${project}/secrets/secret_1/versions/v1`);
    const h = { ...headers, host: url.host, 'X-Sdk-Date': '20261128T120000Z' };
    assert.equal(
      canonicalRequest({ method: 'get', url, headers: h }, ['content-type', 'host', 'x-project-id', 'x-sdk-date']),
      [
        'GET',
        `/v1/${project}/secrets/secret_1/versions/v1/`,
        '',
        'content-type:application/json\nhost:kms.cn-north-4.myhuaweicloud.com\nx-project-id:' +
          project +
          '\nx-sdk-date:20261128T120000Z\n',
        'content-type;host;x-project-id;x-sdk-date',
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      ].join('\n'),
    );
  });

  it('signs the security token of temporary credentials and encodes path and query', () => {
    const url = new URL(
      `https://kms.cn-north-4.myhuaweicloud.com/v1/${project}/secrets/db pass/versions?marker=v%2B2&limit=10`,
    );
    const out = signRequest({ method: 'GET', url, headers }, { ...creds, securityToken: 'TOKEN-abc' }, at);
    assert.equal(out['X-Security-Token'], 'TOKEN-abc');
    assert.equal(
      out.Authorization,
      'SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=content-type;host;x-project-id;x-sdk-date;x-security-token, ' +
        'Signature=973d69d3f7d4fc6f8c677b6a8ebc09c180fee946b25b3c509d90c9abd5c14394',
    );
  });

  it('parses what it writes into the Authorization header', () => {
    const url = new URL(`https://kms.example/v1/${project}/secrets/a/versions/latest`);
    const parsed = parseAuthorization(signRequest({ method: 'GET', url, headers }, creds, at).Authorization);
    assert.deepEqual(parsed?.signedHeaders, ['content-type', 'host', 'x-project-id', 'x-sdk-date']);
    assert.equal(parsed?.accessKey, 'AKEXAMPLE');
    assert.equal(parseAuthorization('Bearer abc'), undefined);
  });
});
