// The CSMS client against the emulator: signing, errors by code, retries, limits and the metadata credentials.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CsmsClient, parseErrorBody } from '../../src/provider/csms-client.js';
import { MetadataCredentials, credentialsFromSecretRef, resolveCredentials } from '../../src/provider/credentials.js';
import { CsmsEmulator } from '../../src/emulator/server.js';
import { CsmsSecretSource } from '../../src/provider/csms-secret-source.js';
import { signRequest } from '../../src/provider/signer.js';
import { connectionsUsed } from '../helpers/connections.js';
import {
  CancelledError,
  NotAllowedError,
  NotFoundError,
  PreconditionError,
  StoreThrottledError,
  StoreUnavailableError,
  UnauthenticatedError,
} from '../../src/errors.js';

const projectId = 'abcdefabcdefabcdefabcdefabcdef12';
const creds = { accessKey: 'AK1', secretKey: 'SK1' };
const agency = { accessKey: 'AGENCYAK', secretKey: 'AGENCYSK', securityToken: 'agency-token' };

const emulator = new CsmsEmulator({
  projectId,
  credentials: [creds],
  agency,
  secrets: [
    { name: 'secret_1', versions: ['first', 'second'] },
    { name: 'bin', versions: [{ binary: Buffer.from([0, 1, 2, 255]).toString('base64') }] },
    { name: 'doomed', versions: ['x'], state: 'PENDING_DELETE' },
  ],
});
let endpoint: string;
let client: CsmsClient;
before(async () => {
  endpoint = await emulator.listen();
  client = new CsmsClient({ endpoint, projectId, backoffBaseMs: 5, backoffCapMs: 20, timeoutMs: 300 });
});
after(() => emulator.close());

it('reads a pinned version and resolves latest to its concrete id', async () => {
  const v1 = await client.getVersion('secret_1', 'v1', creds);
  assert.deepEqual([v1.versionId, v1.value.toString()], ['v1', 'first']);
  const latest = await client.getVersion('secret_1', 'latest', creds);
  assert.deepEqual([latest.versionId, latest.value.toString()], ['v2', 'second']);
});

it('reuses one kept-alive connection for sequential reads', async () => {
  const used = await connectionsUsed(async () => {
    for (let i = 0; i < 5; i++) await client.getVersion('secret_1', 'v1', creds);
  });
  assert.equal(used, 1);
});

it('decodes secret_binary to bytes', async () => {
  assert.deepEqual([...(await client.getVersion('bin', 'v1', creds)).value], [0, 1, 2, 255]);
});

it('maps a missing secret or version to NotFoundError naming both', async () => {
  await assert.rejects(
    client.getVersion('nope', 'v1', creds),
    (e: Error) => e instanceof NotFoundError && /secret "nope" version "v1" does not exist.*CSMS\.0005/.test(e.message),
  );
  await assert.rejects(client.getVersion('secret_1', 'v9', creds), NotFoundError);
  emulator.store.addFault({ status: 404, secret: 'secret_1', times: 1, errorCode: 'APIGW.0101', shape: 'gateway' });
  await assert.rejects(client.getVersion('secret_1', 'v1', creds), NotFoundError);
});

it('reports a secret pending deletion as a precondition', async () => {
  await assert.rejects(
    client.getVersion('doomed', 'v1', creds),
    (e: Error) => e instanceof PreconditionError && /pending deletion/.test(e.message),
  );
});

it('is refused with a wrong secret key, and never echoes the key', async () => {
  await assert.rejects(
    client.getVersion('secret_1', 'v1', { accessKey: 'AK1', secretKey: 'wrong-secret' }),
    (e: Error) =>
      e instanceof UnauthenticatedError && /APIGW\.0301/.test(e.message) && !e.message.includes('wrong-secret'),
  );
});

it('maps 403 to NotAllowedError', async () => {
  emulator.store.addFault({ status: 403, errorCode: 'CSMS.0401', shape: 'nested', times: 1 });
  await assert.rejects(
    client.getVersion('secret_1', 'v1', creds),
    (e: Error) => e instanceof NotAllowedError && /csms:secret:getVersion/.test(e.message),
  );
});

it('retries throttling with backoff and then succeeds', async () => {
  emulator.store.addFault({ status: 429, times: 2 });
  const before = client.requests;
  assert.equal((await client.getVersion('secret_1', 'v1', creds)).value.toString(), 'first');
  assert.equal(client.requests - before, 3);
});

it('gives up on persistent 5xx and timeouts with StoreUnavailableError', async () => {
  emulator.store.addFault({ status: 502, times: 4 });
  await assert.rejects(
    client.getVersion('secret_1', 'v1', creds),
    (e: Error) => e instanceof StoreUnavailableError && /after 4 attempts: HTTP 502/.test(e.message),
  );
  emulator.store.addFault({ status: 0, latencyMs: 600, times: 4 });
  await assert.rejects(
    client.getVersion('secret_1', 'v1', creds),
    (e: Error) => e instanceof StoreUnavailableError && /timed out after 300 ms/.test(e.message),
  );
});

it('says by its type, not its text, that CSMS kept throttling: StoreThrottledError after 429s only', async () => {
  emulator.store.addFault({ status: 429, times: 4 });
  await assert.rejects(
    client.getVersion('secret_1', 'v1', creds),
    (e: Error) => e instanceof StoreThrottledError && /after 4 attempts: HTTP 429 APIGW.0308/.test(e.message),
  );
  emulator.store.addFault({ status: 503, times: 4 });
  await assert.rejects(
    client.getVersion('secret_1', 'v1', creds),
    (e: Error) => e instanceof StoreUnavailableError && !(e instanceof StoreThrottledError),
  );
});

it('uses node-agency keys from the metadata service, with their security token', async () => {
  const metadata = new MetadataCredentials({ endpoint });
  assert.equal(await metadata.projectId(), projectId);
  const agencyCreds = await resolveCredentials({}, metadata);
  assert.deepEqual(agencyCreds, agency);
  assert.equal((await client.getVersion('secret_1', 'v2', agencyCreds)).value.toString(), 'second');
});

it('keeps using valid agency keys through a metadata hiccup, and says what is missing when it has none', async () => {
  const service = new CsmsEmulator({ projectId, credentials: [], secrets: [], agency });
  const metadataEndpoint = await service.listen();
  // Refresh on every call (refreshAheadMs covers the whole lifetime), so each call asks the metadata service.
  const metadata = new MetadataCredentials({ endpoint: metadataEndpoint, refreshAheadMs: 3_600_000 });
  assert.deepEqual(await metadata.credentials(), agency);
  await service.close();
  assert.deepEqual(await metadata.credentials(), agency, 'the cached keys, still valid');
  const fresh = new MetadataCredentials({ endpoint: metadataEndpoint });
  await assert.rejects(
    fresh.credentials(),
    (e: Error) =>
      e instanceof StoreUnavailableError &&
      /no CSMS credentials are configured .* and the ECS metadata service at .* is unreachable/.test(e.message),
  );
  await assert.rejects(
    fresh.projectId(),
    (e: Error) => e instanceof StoreUnavailableError && /the CSMS project id is not configured/.test(e.message),
  );
});

it('shares one in-flight request among identical concurrent fetches', async () => {
  const source = new CsmsSecretSource(client);
  emulator.store.addFault({ status: 0, latencyMs: 100, times: 1 });
  const before = client.requests;
  const results = await Promise.all(
    Array.from({ length: 10 }, () => source.fetch([{ name: 'secret_1', version: 'latest' }], creds)),
  );
  assert.equal(client.requests - before, 1);
  assert.ok(results.every((r) => r[0].value.toString() === 'second'));
});

it('a shared read goes on while one caller cancels, and stops when every caller has', async () => {
  const source = new CsmsSecretSource(client);
  const object = [{ name: 'secret_1', version: 'latest' }];
  emulator.store.addFault({ status: 0, latencyMs: 200, times: 1 });
  const quitter = new AbortController();
  const leaving = source.fetch(object, creds, quitter.signal);
  const staying = source.fetch(object, creds, new AbortController().signal);
  quitter.abort(new CancelledError('the first caller gave up'));
  await assert.rejects(leaving, /the first caller gave up/);
  assert.equal((await staying)[0].value.toString(), 'second');

  emulator.store.addFault({ status: 0, latencyMs: 2000, times: 1 });
  const everyone = new AbortController();
  const started = Date.now();
  const both = [source.fetch(object, creds, everyone.signal), source.fetch(object, creds, everyone.signal)];
  setTimeout(() => everyone.abort(new CancelledError('both gave up')), 50);
  for (const p of both) await assert.rejects(p, /both gave up/);
  assert.ok(Date.now() - started < 1000, 'the callers do not wait for the request');
  // The next read starts afresh rather than joining the cancelled one.
  assert.equal((await source.fetch(object, creds))[0].value.toString(), 'second');
});

it('stops retrying once its signal aborts', async () => {
  emulator.store.addFault({ status: 503, times: 100 });
  const controller = new AbortController();
  setTimeout(() => controller.abort(new CancelledError('shutting down')), 30);
  const slow = new CsmsClient({ endpoint, projectId, backoffBaseMs: 1000, backoffCapMs: 1000, maxAttempts: 10 });
  const started = Date.now();
  await assert.rejects(slow.getVersion('secret_1', 'latest', creds, controller.signal), /shutting down/);
  assert.ok(Date.now() - started < 900, 'no backoff sleep after the abort');
  emulator.store.clearFaults();
});

describe('CSMS emulator signature checks', () => {
  const emulator = new CsmsEmulator({
    projectId,
    credentials: [creds, { accessKey: 'TMP', secretKey: 'TMPSK', securityToken: 'tok' }],
    secrets: [{ name: 's', versions: ['v'] }],
  });
  let endpoint: string;
  before(async () => {
    endpoint = await emulator.listen();
  });
  after(() => emulator.close());

  async function call(
    c: { accessKey: string; secretKey: string; securityToken?: string },
    at: Date,
    extra: Record<string, string> = {},
  ) {
    const url = new URL(`${endpoint}/v1/${projectId}/secrets/s/versions/v1`);
    const signed = signRequest({ method: 'GET', url, headers: { 'X-Project-Id': projectId } }, c, at);
    delete signed.host;
    const res = await fetch(url, { headers: { 'X-Project-Id': projectId, ...signed, ...extra } });
    return { status: res.status, body: parseErrorBody(await res.text()) };
  }

  it('accepts a correctly signed request', async () => assert.equal((await call(creds, new Date())).status, 200));
  it('rejects a date more than 15 minutes off', async () => {
    assert.deepEqual(await call(creds, new Date(Date.now() - 16 * 60_000)), {
      status: 401,
      body: {
        code: 'APIGW.0303',
        message: 'Incorrect app authentication information: X-Sdk-Date is missing or more than 15 minutes off',
      },
    });
  });
  it('rejects a tampered signature', async () => {
    const r = await call(creds, new Date(), { 'X-Project-Id': 'another' });
    assert.equal(r.body.code, 'APIGW.0301');
  });
  it('rejects temporary keys whose security token is not signed', async () => {
    const r = await call({ accessKey: 'TMP', secretKey: 'TMPSK' }, new Date(), { 'X-Security-Token': 'tok' });
    assert.equal(r.status, 401);
    assert.equal((await call({ accessKey: 'TMP', secretKey: 'TMPSK', securityToken: 'tok' }, new Date())).status, 200);
  });
});

describe('credentials from nodePublishSecretRef', () => {
  it('takes access_key/secret_key/security_token and refuses half a pair', () => {
    assert.deepEqual(credentialsFromSecretRef({ access_key: 'a', secret_key: 'b', security_token: 't' }), {
      accessKey: 'a',
      secretKey: 'b',
      securityToken: 't',
    });
    assert.equal(credentialsFromSecretRef({}), undefined);
    assert.throws(() => credentialsFromSecretRef({ access_key: 'a' }), /both access_key and secret_key/);
  });
});
