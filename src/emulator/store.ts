// The emulator's data: secrets with numbered versions and stages, the accepted
// credentials, injected faults and request counters. Pure state, no HTTP.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { Credentials } from '../provider/signer.js';
import { EmulatedPodIdentity, type IssuedKeys, type PodIdentitySeed } from './pod-identity.js';

/** Accepted keys; those CCE Pod Identity issued carry their agency and expiry. */
export type StoredCredentials = Credentials & Partial<Pick<IssuedKeys, 'expiresAt' | 'agency' | 'subject'>>;

/** One authenticated request, as the tests' proof of who read what. */
export interface LoggedRequest {
  accessKey: string;
  /** The agency of pod identity keys; undefined for the node's or a user's own keys. */
  agency?: string;
  /** e.g. `GET secret/v1`, `POST assume-agency-for-pod-identity`. */
  what: string;
}

const MAX_LOGGED = 10_000;

export type StoredValue = { secret_string: string } | { secret_binary: string };

export interface StoredVersion {
  id: string;
  value: StoredValue;
  createTime: number;
}

export interface StoredSecret {
  name: string;
  state: 'ENABLED' | 'DISABLED' | 'PENDING_DELETE' | 'FROZEN';
  versions: StoredVersion[];
}

export interface Fault {
  /** HTTP status to answer with; 0 = answer normally after `latencyMs`. */
  status: number;
  errorCode?: string;
  /** Error body shape: flat CSMS, API gateway, or KMS-nested. */
  shape?: 'csms' | 'gateway' | 'nested';
  latencyMs?: number;
  /** Only requests for this secret; all if unset. */
  secret?: string;
  /** How many requests it applies to; unset = until cleared. */
  times?: number;
}

export interface EmulatorSeed {
  projectId: string;
  credentials: Credentials[];
  /** Temporary keys served as the node agency on the metadata endpoints. */
  agency?: Credentials & { ttlSeconds?: number };
  /** CCE Pod Identity of one cluster: its token keys, associations and agencies. */
  podIdentity?: PodIdentitySeed;
  secrets: { name: string; state?: StoredSecret['state']; versions: (string | { binary: string })[] }[];
}

export const DEFAULT_SEED: EmulatorSeed = {
  projectId: '0123456789abcdef0123456789abcdef',
  credentials: [{ accessKey: 'EMULATORACCESSKEY', secretKey: 'emulator-secret-key' }],
  secrets: [],
};

export function loadSeed(path: string): EmulatorSeed {
  const doc = parseYaml(readFileSync(path, 'utf8')) as Partial<EmulatorSeed> | null;
  if (!doc || typeof doc !== 'object') throw new Error(`seed file ${path} must be a YAML or JSON mapping`);
  return {
    projectId: doc.projectId ?? DEFAULT_SEED.projectId,
    credentials: doc.credentials ?? DEFAULT_SEED.credentials,
    agency: doc.agency,
    podIdentity: doc.podIdentity,
    secrets: doc.secrets ?? [],
  };
}

export class EmulatorStore {
  readonly projectId: string;
  readonly credentials = new Map<string, StoredCredentials>();
  /** Who made each authenticated request, oldest first (the last 10,000). */
  readonly requestLog: LoggedRequest[] = [];
  podIdentity?: EmulatedPodIdentity;
  readonly agency?: EmulatorSeed['agency'];
  private readonly secrets = new Map<string, StoredSecret>();
  private faults: Fault[] = [];
  /** `GET name/version` → count, for tests and benchmarks. */
  readonly counts = new Map<string, number>();
  total = 0;

  constructor(seed: EmulatorSeed = DEFAULT_SEED) {
    this.projectId = seed.projectId;
    for (const c of seed.credentials) this.credentials.set(c.accessKey, c);
    if (seed.agency) {
      this.agency = seed.agency;
      this.credentials.set(seed.agency.accessKey, seed.agency);
    }
    if (seed.podIdentity) this.podIdentity = new EmulatedPodIdentity(seed.podIdentity);
    for (const s of seed.secrets) {
      for (const v of s.versions)
        this.addVersion(s.name, typeof v === 'string' ? { secret_string: v } : { secret_binary: v.binary });
      if (s.state) this.secrets.get(s.name)!.state = s.state;
    }
  }

  get(name: string): StoredSecret | undefined {
    return this.secrets.get(name);
  }

  /** Publishes a new version; it becomes SYSCURRENT. Returns its id. */
  addVersion(name: string, value: StoredValue): string {
    let secret = this.secrets.get(name);
    if (!secret) {
      secret = { name, state: 'ENABLED', versions: [] };
      this.secrets.set(name, secret);
    }
    const id = `v${secret.versions.length + 1}`;
    secret.versions.push({ id, value, createTime: Math.floor(Date.now() / 1000) });
    return id;
  }

  setState(name: string, state: StoredSecret['state']): void {
    const secret = this.secrets.get(name);
    if (secret) secret.state = state;
  }

  delete(name: string): void {
    this.secrets.delete(name);
  }

  stagesOf(secret: StoredSecret, version: StoredVersion): string[] {
    const i = secret.versions.indexOf(version);
    const n = secret.versions.length;
    return i === n - 1 ? ['SYSCURRENT'] : i === n - 2 ? ['SYSPREVIOUS'] : [];
  }

  addFault(f: Fault): void {
    this.faults.push({ ...f });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** The fault that applies to this request, consuming one of its `times`. */
  takeFault(secret: string | undefined): Fault | undefined {
    const f = this.faults.find((x) => !x.secret || x.secret === secret);
    if (f && f.times !== undefined && --f.times <= 0) this.faults.splice(this.faults.indexOf(f), 1);
    return f;
  }

  /** Replaces the pod identity set-up (associations, agencies, keys); undefined turns it off. */
  setPodIdentity(seed: PodIdentitySeed | undefined): void {
    this.podIdentity = seed && new EmulatedPodIdentity(seed);
  }

  /** Keys issued by the pod identity exchange, accepted until they expire. */
  addIssued(keys: IssuedKeys): void {
    const now = Date.now();
    for (const [ak, c] of this.credentials)
      if (c.expiresAt !== undefined && c.expiresAt <= now) this.credentials.delete(ak);
    this.credentials.set(keys.accessKey, keys);
  }

  logRequest(entry: LoggedRequest): void {
    this.requestLog.push(entry);
    if (this.requestLog.length > MAX_LOGGED) this.requestLog.splice(0, this.requestLog.length - MAX_LOGGED);
  }

  count(key: string): void {
    this.total++;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  resetCounts(): void {
    this.total = 0;
    this.counts.clear();
  }
}
