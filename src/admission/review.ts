// What the validating webhook decides for one object: the rules of mount time, run at
// `kubectl apply`, so a broken SecretProviderClass or allow-list is refused with exactly the
// message a pod would get later; and warnings for what is allowed but will not work as meant.
// Under the namespace policy, what the Namespace permit does not cover is refused (enforce)
// or warned about (audit).
import { isDeepStrictEqual } from 'node:util';
import type * as k8s from '@kubernetes/client-node';
import { parseSecretObjects, parseUsePodIdentity, type SecretObject } from '../crds/objects.js';
import { desiredSecret } from '../crds/secret-objects.js';
import { checkSecretSyncSpec } from '../crds/secret-sync.js';
import { ALLOW_LIST_ANNOTATION, BUILTIN_PROVIDER, type SecretProviderClass, type SecretSync } from '../crds/types.js';
import { errorMessage } from '../errors.js';
import { allowedNames, checkAllowList } from '../access/allow-list.js';
import {
  checkNamespacePermit,
  permitMessage,
  type NamespacePolicy,
  type PermitDecision,
} from '../access/namespace-permit.js';

export interface Verdict {
  allowed: boolean;
  /** Why it is refused: the mount-time message. */
  message?: string;
  warnings: string[];
}

/**
 * How the Namespace permit applies, and where it is read. Without a reader, nothing about
 * other objects enters a review: its caller is not known to be the API server, and the
 * answer must not tell a stranger what a namespace permits or allows.
 */
export interface PermitContext {
  namespacePolicy: NamespacePolicy;
  namespaceAnnotations?(namespace: string): Promise<Record<string, string> | undefined>;
}

export interface SpcReviewContext extends PermitContext {
  operation: 'CREATE' | 'UPDATE';
  /** Whether the driver re-reads `latest` objects. */
  rotationEnabled: boolean;
  /** The allow-lists (annotation values) of the ServiceAccounts in the SPC's namespace; unset as namespaceAnnotations. */
  allowLists?(namespace: string): Promise<(string | undefined)[] | undefined>;
  /** Refuses a new SPC beyond the cluster's SPC limit (the mount-time message). */
  checkNewSpc(namespace: string, name: string): Promise<void>;
}

const refuse = (err: unknown): Verdict => ({ allowed: false, message: errorMessage(err), warnings: [] });

export async function reviewSpc(spc: SecretProviderClass, ctx: SpcReviewContext): Promise<Verdict> {
  // Other providers have their own rules; their SPCs pass untouched.
  if (spc.spec?.provider !== BUILTIN_PROVIDER) return { allowed: true, warnings: [] };
  const namespace = spc.metadata.namespace ?? 'default';
  const ref = `${namespace}/${spc.metadata.name}`;
  let objects: SecretObject[];
  let unpermitted: PermitDecision | undefined;
  const permit = await permitOf(ctx, namespace);
  try {
    objects = parseSecretObjects(ref, spc.spec.parameters?.objects);
    parseUsePodIdentity(ref, spc.spec.parameters?.usePodIdentity);
    checkSecretObjects(namespace, spc, objects);
    unpermitted = permit?.(objects.map((o) => o.objectName));
    if (ctx.operation === 'CREATE') await ctx.checkNewSpc(namespace, spc.metadata.name);
  } catch (err) {
    return refuse(err);
  }
  const warnings = await warningsFor(ref, namespace, objects, ctx);
  if (unpermitted) warnings.unshift(`SecretProviderClass ${ref}: ${permitWarning(unpermitted, ctx.namespacePolicy)}`);
  return { allowed: true, warnings };
}

/**
 * The Namespace's permit as a check of secret names (none when the policy is off): it
 * throws the mount-time refusal under enforce, and returns what to warn about under audit.
 * A failed read of the Namespace is not a verdict: it fails the review.
 */
async function permitOf(ctx: PermitContext, namespace: string) {
  const policy = ctx.namespacePolicy;
  if (policy === 'off' || !ctx.namespaceAnnotations) return undefined;
  const annotations = await ctx.namespaceAnnotations(namespace);
  return (names: string[], as: NamespacePolicy = policy) =>
    names.length === 0 ? undefined : checkNamespacePermit(as, namespace, annotations, names);
}

function permitWarning(d: PermitDecision, policy: NamespacePolicy): string {
  const pods =
    policy === 'enforce'
      ? 'pods using it are refused (namespace policy enforce)'
      : 'pods mount it with a Warning event while the namespace policy is audit; under enforce they are refused';
  return `${permitMessage(d)}; ${pods}`;
}

/** secretObjects as Secret sync checks them at mount time, against the files the objects make. */
function checkSecretObjects(namespace: string, spc: SecretProviderClass, objects: SecretObject[]): void {
  const files = new Map<string, Buffer>();
  for (const o of objects) {
    files.set(o.fileName, Buffer.alloc(0));
    for (const j of o.jmesPath) files.set(j.objectAlias, Buffer.alloc(0));
  }
  (spc.spec.secretObjects ?? []).forEach((s, i) => desiredSecret(namespace, spc, files, s, i));
}

async function warningsFor(
  ref: string,
  namespace: string,
  objects: SecretObject[],
  ctx: SpcReviewContext,
): Promise<string[]> {
  const warnings: string[] = [];
  const allowed = new Set<string>();
  const lists = await ctx.allowLists?.(namespace);
  // A malformed allow-list allows nothing, as at mount time; the ServiceAccount's own admission says why.
  for (const raw of lists ?? []) for (const n of allowedNames(raw ?? '[]') ?? []) allowed.add(n);
  const unallowed = objects.filter((o) => !allowed.has(o.objectName)).map((o) => `"${o.objectName}"`);
  if (lists && unallowed.length > 0) {
    warnings.push(
      `SecretProviderClass ${ref}: secret ${unallowed.join(', ')} is allowed by no ServiceAccount in namespace ${namespace}; pods using this SPC fail to mount until one lists it in its ${ALLOW_LIST_ANNOTATION} annotation`,
    );
  }
  const latest = objects.filter((o) => o.objectVersion === 'latest').map((o) => `"${o.objectName}"`);
  if (latest.length > 0 && !ctx.rotationEnabled) {
    warnings.push(
      `SecretProviderClass ${ref}: object ${latest.join(', ')} is at "latest" but secret rotation is off; pods keep the version they mounted first`,
    );
  }
  return warnings;
}

/**
 * The allow-list annotation, when present, must be a JSON array of secret names, and the
 * Namespace must permit the names it adds (an edit that keeps older ones is not blocked
 * by them, since the permit may have narrowed since; it is warned about).
 */
export async function reviewServiceAccount(
  sa: k8s.V1ServiceAccount,
  ctx: PermitContext,
  old?: k8s.V1ServiceAccount,
): Promise<Verdict> {
  const annotations = sa.metadata?.annotations;
  const raw = annotations?.[ALLOW_LIST_ANNOTATION];
  if (raw === undefined) return { allowed: true, warnings: [] };
  const namespace = sa.metadata?.namespace ?? 'default';
  const ref = `ServiceAccount ${namespace}/${sa.metadata?.name ?? ''}`;
  try {
    checkAllowList(`${namespace}/${sa.metadata?.name ?? ''}`, annotations, []);
  } catch (err) {
    return refuse(err);
  }
  const permit = await permitOf(ctx, namespace);
  const names = allowedNames(raw) ?? [];
  const before = new Set(allowedNames(old?.metadata?.annotations?.[ALLOW_LIST_ANNOTATION] ?? '[]') ?? []);
  try {
    permit?.(names.filter((n) => !before.has(n)));
  } catch (err) {
    return refuse(`${ref}: annotation ${ALLOW_LIST_ANNOTATION}: ${errorMessage(err)}`);
  }
  const unpermitted = permit?.(names, 'audit');
  return {
    allowed: true,
    warnings: unpermitted ? [`${ref}: ${permitWarning(unpermitted, ctx.namespacePolicy)}`] : [],
  };
}

/**
 * A SecretSync: what the sync controller would refuse whatever its SPC holds (token types,
 * ownership keys, a spec over its budget), refused at apply with the controller's message.
 */
export function reviewSecretSync(ss: SecretSync, old?: SecretSync): Verdict {
  // A SecretSync stored before (an older release, the webhook down) stays editable and
  // deletable: only a new or changed spec is held to the rules.
  if (ss.metadata?.deletionTimestamp || (old && isDeepStrictEqual(ss.spec, old.spec))) {
    return { allowed: true, warnings: [] };
  }
  try {
    checkSecretSyncSpec(ss);
    return { allowed: true, warnings: [] };
  } catch (err) {
    return refuse(err);
  }
}
