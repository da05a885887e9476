// ServiceAccount tokens for pod identity, which the controller requests itself (where kubelet
// hands them to a mount): audience service.cce.pods, 600 s, as the chart's admission policy
// pins them. Kept until 80% of their life is gone, one per ServiceAccount in use.
import type * as k8s from '@kubernetes/client-node';
import { ApiServerError, NotFoundError, PreconditionError } from '../errors.js';
import { apiErrorText, apiStatus } from '../kube/client.js';
import { POD_IDENTITY_AUDIENCE } from '../provider/pod-identity.js';
import { systemClock, type Clock } from '../util/clock.js';

export const TOKEN_SECONDS = 600;

export class TokenRequests {
  private readonly kept = new Map<string, { token: string; renewAt: number }>();

  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly clock: Clock = systemClock,
  ) {}

  async token(namespace: string, serviceAccount: string): Promise<string> {
    const key = `${namespace}/${serviceAccount}`;
    const now = this.clock.now();
    const had = this.kept.get(key);
    if (had && now < had.renewAt) return had.token;
    let answer: k8s.AuthenticationV1TokenRequest;
    try {
      answer = await this.core.createNamespacedServiceAccountToken({
        name: serviceAccount,
        namespace,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { audiences: [POD_IDENTITY_AUDIENCE], expirationSeconds: TOKEN_SECONDS },
        },
      });
    } catch (err) {
      const what = `a token of ServiceAccount ${key} for audience ${POD_IDENTITY_AUDIENCE}`;
      if (apiStatus(err) === 404)
        throw new NotFoundError(`ServiceAccount ${key} not found; create it or fix spec.serviceAccountName`);
      if (apiStatus(err) === 403)
        throw new PreconditionError(
          `the sync controller may not request ${what} (${apiErrorText(err)}): install the chart with podIdentity.enabled=true`,
        );
      throw new ApiServerError(`requesting ${what} failed: ${apiErrorText(err)}`, { cause: err });
    }
    const token = answer.status?.token;
    if (!token)
      throw new ApiServerError(`the API server answered a token request for ServiceAccount ${key} without a token`);
    for (const [k, v] of this.kept) if (v.renewAt <= now) this.kept.delete(k);
    this.kept.set(key, { token, renewAt: now + TOKEN_SECONDS * 800 });
    return token;
  }

  forget(namespace: string, serviceAccount: string): void {
    this.kept.delete(`${namespace}/${serviceAccount}`);
  }
}
