// The cluster admin's guard: the Namespace annotation `cce.io/dew-resource-permitted`
// holds a JSON array of CSMS secret names and `*` patterns that pods of that namespace
// may mount. Namespace users cannot edit their own Namespace under stock RBAC, so unlike
// the ServiceAccount allow-list, nothing a team writes can widen it.
import { NotPermittedError } from '../errors.js';
import { isSecretName } from '../crds/objects.js';
import { PERMIT_ANNOTATION } from '../crds/types.js';

export const NAMESPACE_POLICIES = ['enforce', 'audit', 'off'] as const;
export type NamespacePolicy = (typeof NAMESPACE_POLICIES)[number];

/** What a Namespace's annotation permits: its patterns, or why it permits nothing. */
export type Permit = { patterns: string[]; problem?: undefined } | { patterns?: undefined; problem: string };

export function parsePermit(raw: string | undefined): Permit {
  if (raw === undefined) return { problem: `it has no ${PERMIT_ANNOTATION} annotation` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { problem: `its ${PERMIT_ANNOTATION} annotation is not JSON` };
  }
  if (!Array.isArray(parsed)) return { problem: `its ${PERMIT_ANNOTATION} annotation is not a JSON array` };
  for (const [i, p] of parsed.entries()) {
    if (typeof p !== 'string') return { problem: `its ${PERMIT_ANNOTATION} annotation has entry ${i} not a string` };
    if (p === '') return { problem: `its ${PERMIT_ANNOTATION} annotation has entry ${i} an empty pattern` };
  }
  return { patterns: parsed as string[] };
}

/**
 * Whether `name` matches `pattern`, where `*` matches any run of characters and nothing
 * else is special. Greedy with one backtrack point, so the time is at most
 * length(pattern) × length(name) however many `*` an annotation holds.
 */
export function globMatch(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1;
  let resume = 0;
  while (n < name.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.length && pattern[p] === name[n]) {
      p++;
      n++;
    } else if (star >= 0) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

export interface PermitDecision {
  namespace: string;
  /** The secrets the permit does not cover, in the order asked; empty when all are covered. */
  denied: string[];
  /** Why the permit permits nothing (absent or malformed), if so. */
  problem?: string;
  /** The permit's entries when it is well-formed: the admin's command keeps them. */
  patterns: string[];
}

export function decidePermit(
  namespace: string,
  annotations: Record<string, string> | undefined,
  secretNames: readonly string[],
): PermitDecision {
  const permit = parsePermit(annotations?.[PERMIT_ANNOTATION]);
  const patterns = permit.patterns ?? [];
  const denied = [...new Set(secretNames)].filter((name) => !patterns.some((p) => globMatch(p, name)));
  return { namespace, denied, problem: permit.problem, patterns };
}

/** At most this many names in a message; the rest are counted. */
const LISTED = 10;

/**
 * What is not permitted, and the exact command an admin runs to permit it. The command is
 * offered only for plain secret names: a name a team wrote (an allow-list entry) that is a
 * pattern such as `*` would otherwise become a pattern in the admin's permit.
 */
export function permitMessage(d: PermitDecision): string {
  const listed = d.denied.slice(0, LISTED).map((n) => JSON.stringify(n));
  const more = d.denied.length > LISTED ? ` and ${d.denied.length - LISTED} more` : '';
  const why = d.problem ?? `its ${PERMIT_ANNOTATION} annotation is ${JSON.stringify(d.patterns)}`;
  const head = `Namespace ${d.namespace} does not permit CSMS secret ${listed.join(', ')}${more} (${why})`;
  if (!d.denied.every(isSecretName))
    return `${head}; only CSMS secret names (letters, digits, "." "_" "-") can be permitted`;
  if (more) return `${head}; a cluster admin adds them to the ${PERMIT_ANNOTATION} annotation of the Namespace`;
  const value = JSON.stringify([...d.patterns, ...d.denied]);
  return `${head}; a cluster admin permits it with: kubectl annotate namespace ${d.namespace} ${PERMIT_ANNOTATION}=${shellQuote(value)} --overwrite`;
}

/**
 * The permit under the cluster's policy: `enforce` throws NotPermittedError for any secret
 * it does not cover; `audit` returns the decision for the caller to report; `off` checks nothing.
 */
export function checkNamespacePermit(
  policy: NamespacePolicy,
  namespace: string,
  annotations: Record<string, string> | undefined,
  secretNames: readonly string[],
): PermitDecision | undefined {
  if (policy === 'off') return undefined;
  const decision = decidePermit(namespace, annotations, secretNames);
  if (decision.denied.length === 0) return undefined;
  if (policy === 'enforce') throw new NotPermittedError(`${permitMessage(decision)} (namespace policy enforce)`);
  return decision;
}

/** What audit mode says where enforce would refuse. */
export function auditMessage(d: PermitDecision): string {
  return `${permitMessage(d)}. Mounted anyway because the namespace policy is audit; under enforce this mount is refused`;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
