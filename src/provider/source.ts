// The seam between the driver and a secret store: given credentials and a list of
// (name, version) it returns bytes and concrete versions. The built-in CSMS source
// shares identical in-flight requests, so a burst of mounts asks CSMS once.
import type { CsmsClient, SecretVersion } from './csms-client.js';
import { metrics } from '../metrics.js';
import type { Credentials } from './signer.js';

export interface ObjectRequest {
  name: string;
  version: string;
}

export interface SecretSource {
  fetch(objects: ObjectRequest[], creds: Credentials): Promise<SecretVersion[]>;
}

/** Identifies one read; the secret key is part of it so that different identities never share a read. */
export function readKey(o: ObjectRequest, creds: Credentials): string {
  return `${creds.accessKey}\0${creds.secretKey}\0${creds.securityToken ?? ''}\0${o.name}\0${o.version}`;
}

/** The read of `key` already made or under way in `reads` (counted as shared), else a new one from `start`. */
export function sharedRead(
  reads: Map<string, Promise<SecretVersion>>,
  key: string,
  start: () => Promise<SecretVersion>,
): Promise<SecretVersion> {
  const existing = reads.get(key);
  if (existing) {
    metrics.sharedReads.inc();
    return existing;
  }
  const read = start();
  reads.set(key, read);
  return read;
}

export class CsmsSecretSource implements SecretSource {
  private readonly inflight = new Map<string, Promise<SecretVersion>>();

  constructor(private readonly client: CsmsClient) {}

  fetch(objects: ObjectRequest[], creds: Credentials): Promise<SecretVersion[]> {
    return Promise.all(objects.map((o) => this.fetchOne(o, creds)));
  }

  private fetchOne(o: ObjectRequest, creds: Credentials): Promise<SecretVersion> {
    const key = readKey(o, creds);
    // Only while in flight: a later mount reads again, so it sees a new `latest`.
    return sharedRead(this.inflight, key, () =>
      this.client.getVersion(o.name, o.version, creds).finally(() => this.inflight.delete(key)),
    );
  }
}
