// Write requests the API server has served, read from its own /metrics: what a bench's
// side made the API server store, whoever made the calls.
import { request } from 'node:https';
import { kc } from '../test/helpers/cluster.js';

/** Write requests (by default POST, PUT, PATCH and DELETE) served so far, by resource. */
export async function apiWritesOf(
  resources: string[],
  verbs = ['POST', 'PUT', 'PATCH', 'DELETE'],
): Promise<Record<string, number>> {
  const text = await new Promise<string>((res, rej) => {
    request(
      `${kc.getCurrentCluster()!.server}/metrics`,
      { headers: { Authorization: `Bearer ${kc.getCurrentUser()!.token}` }, rejectUnauthorized: false },
      (r) => {
        let body = '';
        r.on('data', (d) => {
          body += d;
        });
        r.on('end', () => res(body));
      },
    )
      .on('error', rej)
      .end();
  });
  const out: Record<string, number> = Object.fromEntries(resources.map((k) => [k, 0]));
  for (const m of text.matchAll(/^apiserver_request_total\{([^}]*)\} (\d+)/gm)) {
    const l = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (verbs.includes(l.verb) && resources.includes(l.resource)) out[l.resource] += Number(m[2]);
  }
  return out;
}
