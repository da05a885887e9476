// Secrets from secretObjects: the kubernetes.io/tls split of a PEM bundle.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tlsPart } from '../../src/crds/secret-objects.js';

describe('kubernetes.io/tls Secret data', () => {
  const key = '-----BEGIN PRIVATE KEY-----\nMIIkey\n-----END PRIVATE KEY-----\n';
  const cert = '-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n';
  const ca = '-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----\n';
  it('splits a PEM bundle into tls.key and tls.crt', () => {
    const bundle = Buffer.from(key + cert + ca);
    assert.equal(tlsPart('tls.key', bundle).toString(), key);
    assert.equal(tlsPart('tls.crt', bundle).toString(), cert + ca);
  });
  it('leaves a file that is not a key+certificate bundle as it is', () => {
    assert.equal(tlsPart('tls.crt', Buffer.from(cert)).toString(), cert);
    assert.equal(tlsPart('other', Buffer.from(key + cert)).toString(), key + cert);
  });
});
