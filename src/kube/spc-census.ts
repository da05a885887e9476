// The SPC limit needs to know whether an SPC is among the oldest N in the cluster, of any
// provider (the limit is on SPC objects, as the add-on documents it; a namespace's share is
// the admin's ResourceQuota). A paged list of metadata only (an SPC's parameters, however
// large, are never read), at most every few seconds, keeps only the total and the N oldest
// keys: memory bounded by the configured limit and the page, not by the SPCs.
import type * as k8s from '@kubernetes/client-node';
import { PreconditionError } from '../errors.js';
import { continueToken, METADATA_ONLY } from './client.js';
import { GROUP, SPC_PLURAL, VERSION, type SecretProviderClass } from '../crds/types.js';

interface Census {
  total: number;
  /** uids of the oldest `max` SPCs: those that may be mounted. */
  within: Set<string>;
  at: number;
}

// RFC 3339 timestamps sort as text; namespace and name break ties.
function key(o: Pick<SecretProviderClass, 'metadata'>): string {
  return `${(o.metadata as { creationTimestamp?: string }).creationTimestamp ?? ''}/${o.metadata.namespace}/${o.metadata.name}`;
}

export class SpcCensus {
  private last?: Census;
  private counting?: Promise<Census>;

  constructor(
    private readonly custom: k8s.CustomObjectsApi,
    private readonly max: number,
    /** Told the count after each one (the spc_count gauge). */
    private readonly onCount: (total: number) => void = () => undefined,
    private readonly maxAgeMs = 5_000,
    // Metadata only, but annotations may each be large: a small page bounds what one holds.
    private readonly pageSize = 25,
  ) {}

  async check(spc: SecretProviderClass): Promise<void> {
    const uid = spc.metadata.uid ?? '';
    const cached = this.fresh();
    let census = cached ?? (await this.recount());
    // Not among the oldest in a count from a few seconds ago: it may be newer, so count again before refusing.
    if (!census.within.has(uid) && census.total >= this.max && cached) census = await this.recount();
    if (census.within.has(uid) || census.total < this.max) return;
    throw new PreconditionError(this.exceeds(spc.metadata.namespace, spc.metadata.name, census.total));
  }

  /** At admission of a new SPC: refuses it, with the mount-time message, when the cluster is already at the limit. */
  async checkNew(namespace: string, name: string): Promise<void> {
    const cached = this.fresh();
    if (cached && cached.total < this.max) return;
    // At or over the limit by a count from a few seconds ago: count again before refusing.
    const { total } = await this.recount();
    if (total < this.max) return;
    throw new PreconditionError(this.exceeds(namespace, name, total + 1));
  }

  /** The last count, if it is recent enough to answer from. */
  private fresh(): Census | undefined {
    return this.last && Date.now() - this.last.at <= this.maxAgeMs ? this.last : undefined;
  }

  private exceeds(namespace: string | undefined, name: string, total: number): string {
    return `SecretProviderClass ${namespace}/${name} exceeds the limit of ${this.max} SecretProviderClasses in the cluster (there are ${total}); delete unused ones or raise maxSecretProviderClasses`;
  }

  private recount(): Promise<Census> {
    this.counting ??= this.count()
      .then((c) => {
        this.last = c;
        this.onCount(c.total);
        return c;
      })
      .finally(() => {
        this.counting = undefined;
      });
    return this.counting;
  }

  private async count(): Promise<Census> {
    const at = Date.now();
    let oldest: { key: string; uid: string }[] = [];
    let total = 0;
    let token: string | undefined;
    do {
      const page = (await this.custom.listClusterCustomObject(
        { group: GROUP, version: VERSION, plural: SPC_PLURAL, limit: this.pageSize, _continue: token },
        METADATA_ONLY,
      )) as { items: Pick<SecretProviderClass, 'metadata'>[] | null; metadata?: { continue?: string } };
      // A metadata-only list of nothing has `items: null`.
      const items = page.items ?? [];
      total += items.length;
      oldest = [...oldest, ...items.map((o) => ({ key: key(o), uid: o.metadata.uid ?? '' }))]
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        .slice(0, this.max);
      token = continueToken(page);
    } while (token);
    return { total, within: new Set(oldest.map((o) => o.uid)), at };
  }
}
