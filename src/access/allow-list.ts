// The ServiceAccount allow-list: `cce.io/dew-resource` holds a JSON array of the CSMS
// secret names that pods running as that ServiceAccount may mount.
import { NotAllowedError } from '../errors.js';
import { ALLOW_LIST_ANNOTATION } from '../crds/types.js';

/** The secret names an annotation value allows, or undefined when it is not a JSON array of names (it allows none). */
export function allowedNames(raw: string): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  return Array.isArray(parsed) && parsed.every((x) => typeof x === 'string') ? parsed : undefined;
}

export function checkAllowList(
  serviceAccount: string,
  annotations: Record<string, string> | undefined,
  secretNames: string[],
): void {
  const raw = annotations?.[ALLOW_LIST_ANNOTATION];
  const example = `${ALLOW_LIST_ANNOTATION}: '${JSON.stringify(secretNames)}'`;
  if (raw === undefined) {
    throw new NotAllowedError(
      `ServiceAccount ${serviceAccount} has no ${ALLOW_LIST_ANNOTATION} annotation, so its pods may use no CSMS secret; add e.g. ${example}`,
    );
  }
  const allowed = allowedNames(raw);
  if (!allowed) {
    throw new NotAllowedError(
      `ServiceAccount ${serviceAccount}: annotation ${ALLOW_LIST_ANNOTATION} must be a JSON array of secret names, e.g. ${example}`,
    );
  }
  const set = new Set(allowed);
  const missing = secretNames.filter((n) => !set.has(n));
  if (missing.length > 0) {
    throw new NotAllowedError(
      `secret ${missing.map((n) => `"${n}"`).join(', ')} is not allowed for ServiceAccount ${serviceAccount}: add it to the ${ALLOW_LIST_ANNOTATION} annotation (now ${shown(raw)})`,
    );
  }
}

/** The annotation as a message quotes it: whoever writes the ServiceAccount decides its size. */
function shown(raw: string): string {
  if (raw.length <= SHOWN_MAX) return raw;
  // Whole characters: a cut must not split a surrogate pair.
  return `${Array.from(raw.slice(0, SHOWN_MAX * 2))
    .slice(0, SHOWN_MAX)
    .join('')}... (${raw.length} characters)`;
}
const SHOWN_MAX = 200;
