// The built-in SecretSource: CSMS reads, with identical reads in flight shared, so a
// burst of mounts of one SPC asks CSMS once per secret.
import type { CsmsClient } from './csms-client.js';
import { SharedReads } from './shared-reads.js';
import type { Credentials } from './signer.js';
import type { ObjectRequest, SecretSource, SecretVersion } from './secret-source.js';

export class CsmsSecretSource implements SecretSource {
  // Only while in flight: a later mount reads again, so it sees a new `latest`.
  private readonly inflight: SharedReads;

  constructor(
    private readonly client: CsmsClient,
    onShared?: () => void,
  ) {
    this.inflight = new SharedReads({ onShared });
  }

  fetch(objects: ObjectRequest[], creds: Credentials, signal?: AbortSignal): Promise<SecretVersion[]> {
    return this.inflight.fetch(objects, creds, (o, s) => this.client.getVersion(o.name, o.version, creds, s), signal);
  }
}
