// What the validating webhook decides for one object: the rules of mount time, run at
// `kubectl apply`, so a broken SecretProviderClass or allow-list is refused with exactly the
// message a pod would get later; and warnings for what is allowed but will not work as meant.
import type * as k8s from '@kubernetes/client-node';
import { parseSecretObjects, type SecretObject } from '../crds/objects.js';
import { desiredSecret } from '../crds/secret-objects.js';
import { ALLOW_LIST_ANNOTATION, BUILTIN_PROVIDER, type SecretProviderClass } from '../crds/types.js';
import { errorMessage } from '../errors.js';
import { allowedNames, checkAllowList } from '../provider/allow-list.js';

export interface Verdict {
  allowed: boolean;
  /** Why it is refused: the mount-time message. */
  message?: string;
  warnings: string[];
}

export interface SpcReviewContext {
  operation: 'CREATE' | 'UPDATE';
  /** Whether the driver re-reads `latest` objects. */
  rotationEnabled: boolean;
  /** The allow-lists (annotation values) of the ServiceAccounts in the SPC's namespace. */
  allowLists(namespace: string): Promise<(string | undefined)[]>;
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
  try {
    objects = parseSecretObjects(ref, spc.spec.parameters?.objects);
    checkSecretObjects(namespace, spc, objects);
    if (ctx.operation === 'CREATE') await ctx.checkNewSpc(namespace, spc.metadata.name);
  } catch (err) {
    return refuse(err);
  }
  return { allowed: true, warnings: await warningsFor(ref, namespace, objects, ctx) };
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
  // A malformed allow-list allows nothing, as at mount time; the ServiceAccount's own admission says why.
  for (const raw of await ctx.allowLists(namespace)) for (const n of allowedNames(raw ?? '[]') ?? []) allowed.add(n);
  const unallowed = objects.filter((o) => !allowed.has(o.objectName)).map((o) => `"${o.objectName}"`);
  if (unallowed.length > 0) {
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

/** The allow-list annotation, when present, must be a JSON array of secret names. */
export function reviewServiceAccount(sa: k8s.V1ServiceAccount): Verdict {
  const annotations = sa.metadata?.annotations;
  if (annotations?.[ALLOW_LIST_ANNOTATION] === undefined) return { allowed: true, warnings: [] };
  try {
    checkAllowList(`${sa.metadata?.namespace ?? 'default'}/${sa.metadata?.name ?? ''}`, annotations, []);
  } catch (err) {
    return refuse(err);
  }
  return { allowed: true, warnings: [] };
}
