// Loads cluster access: an explicit kubeconfig, else the in-cluster ServiceAccount.
import * as k8s from '@kubernetes/client-node';

export function loadKubeConfig(path?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  return kc;
}

/** HTTP status of a client-node API error, if it is one. */
export function apiStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  const code = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  return code;
}

/** A short, secret-free description of an API error for logs and messages. */
export function apiErrorText(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  let reason = '';
  try {
    const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    reason = (body as { message?: string })?.message ?? '';
  } catch {
    reason = '';
  }
  return reason || (e.code ? `HTTP ${e.code}` : (e.message ?? String(err)));
}
