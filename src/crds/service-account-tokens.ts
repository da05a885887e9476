// The ServiceAccount tokens kubelet passes for the CSIDriver's tokenRequests, in the volume
// context (our driver) or the Mount attributes (the upstream driver calling our provider).
// Tokens are never logged, quoted or kept anywhere but in memory.
import { InvalidRequestError } from '../errors.js';
import { CTX_SA_TOKENS } from './types.js';

/** A ServiceAccount token kubelet requested for one audience; never logged. */
export interface ServiceAccountToken {
  token: string;
  expirationTimestamp: string;
}

/**
 * kubelet's `{"<audience>": {"token": "...", "expirationTimestamp": "..."}}`. A malformed
 * value is refused; the message names the key and the form, never the value.
 */
export function parseServiceAccountTokens(
  where: string,
  json: string | undefined,
): Record<string, ServiceAccountToken> | undefined {
  if (json === undefined || json === '') return undefined;
  const refuse = () =>
    new InvalidRequestError(
      `${where}["${CTX_SA_TOKENS}"] is not the JSON kubelet writes for the CSIDriver's tokenRequests ` +
        '({"<audience>": {"token": ..., "expirationTimestamp": ...}})',
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    // Not kept as the cause: JSON.parse's message quotes the text, which holds tokens.
    throw refuse();
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw refuse();
  const tokens: Record<string, ServiceAccountToken> = {};
  for (const [audience, value] of Object.entries(parsed)) {
    const { token, expirationTimestamp } = (value ?? {}) as Partial<ServiceAccountToken>;
    if (typeof token !== 'string' || !token || typeof expirationTimestamp !== 'string') throw refuse();
    tokens[audience] = { token, expirationTimestamp };
  }
  return tokens;
}
