// The seam between the driver and a secret store: given credentials and a list of
// (name, version) it returns bytes and concrete versions. The driver sees only this
// file; the CSMS implementation lives in csms-secret-source.ts.
import type { Credentials } from './signer.js';

export interface ObjectRequest {
  name: string;
  version: string;
}

export interface SecretVersion {
  name: string;
  /** The concrete version id, e.g. "v3" also when "latest" was asked for. */
  versionId: string;
  value: Buffer;
}

export interface SecretSource {
  /** With `signal`, gives up (rejecting with its reason) once the caller no longer waits. */
  fetch(objects: ObjectRequest[], creds: Credentials, signal?: AbortSignal): Promise<SecretVersion[]>;
}

/** Identifies one read; the secret key is part of it so that different identities never share a read. */
export function readKey(o: ObjectRequest, creds: Credentials): string {
  return `${creds.accessKey}\0${creds.secretKey}\0${creds.securityToken ?? ''}\0${o.name}\0${o.version}`;
}
