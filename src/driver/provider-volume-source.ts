// An external provider as a volume's source: what the driver sends it for a volume, and
// what it makes of the answer: upstream's request (the SPC's parameters plus the pod's
// volume attributes and identity, the nodePublishSecretRef data, the default mode, the
// versions the volume holds) and the same VolumeContent the built-in provider produces.
import {
  BUILTIN_PROVIDER,
  CTX_EPHEMERAL,
  CTX_POD_NAME,
  CTX_POD_NAMESPACE,
  CTX_POD_UID,
  CTX_SA_TOKENS,
  CTX_SERVICE_ACCOUNT,
  CTX_SPC,
  KUBELET_ATTRIBUTE_PREFIX,
  type SpcpsObjectVersion,
} from '../crds/types.js';
import type { MountRequest } from '../provider-api/protocol.js';
import { DEFAULT_FILE_MODE } from './atomic-writer.js';
import type { ProviderMount } from '../provider-api/client.js';
import { PreconditionError } from '../errors.js';
import { checkVolumeSize, digest, type VolumeContent, type VolumeLimits } from '../provider/volume-content.js';
import { POD_IDENTITY_AUDIENCE } from '../provider/pod-identity.js';
import type { VolumePlan } from './volume-plan.js';
import type { PublishRequest } from './volume-request.js';
import type { ContentJob, VolumeSource } from './volume-source.js';
import type { MountedVolume } from './volumes.js';

/** What the driver needs of an external provider (ExternalProviders in the driver). */
export interface ProviderCaller {
  mount(provider: string, req: MountRequest, signal?: AbortSignal): Promise<ProviderMount>;
  has(provider: string): boolean;
}

/**
 * The attributes are what upstream's driver sends: the SPC's parameters overlaid with the
 * volume attributes kubelet passes (the pod's own volumeAttributes, its identity and, with
 * tokenRequests, its ServiceAccount tokens). They are rebuilt from the pod, so a rotation
 * after a driver restart sends the same (tokens only come with kubelet's calls).
 */
export function providerMountRequest(
  req: PublishRequest,
  plan: VolumePlan,
  current: SpcpsObjectVersion[],
): MountRequest {
  const volumeAttributes = plan.pod.spec?.volumes?.find((v) => v.name === req.volumeName)?.csi?.volumeAttributes;
  // The csi.storage.k8s.io/ keys are kubelet's to set: neither the SPC nor the pod may pass an identity or tokens.
  const userSet = (o: Record<string, string> | undefined) =>
    Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => !k.startsWith(KUBELET_ATTRIBUTE_PREFIX)));
  const attributes: Record<string, string> = {
    ...userSet(plan.spc.spec.parameters),
    ...userSet(volumeAttributes),
    [CTX_SPC]: req.spcName,
    [CTX_POD_NAME]: req.podName,
    [CTX_POD_NAMESPACE]: req.podNamespace,
    [CTX_POD_UID]: req.podUid,
    [CTX_SERVICE_ACCOUNT]: req.serviceAccount,
    [CTX_EPHEMERAL]: 'true',
  };
  // The service.cce.pods token is CCE Pod Identity's, for our own exchange: with it, another
  // provider could assume the pod's agency. Every other audience is passed on.
  const tokens = Object.entries(req.serviceAccountTokens ?? {}).filter(
    ([audience]) => audience !== POD_IDENTITY_AUDIENCE,
  );
  if (tokens.length > 0) attributes[CTX_SA_TOKENS] = JSON.stringify(Object.fromEntries(tokens));
  return {
    attributes: JSON.stringify(attributes),
    secrets: JSON.stringify(req.secrets),
    target_path: req.targetPath,
    permission: JSON.stringify(DEFAULT_FILE_MODE),
    current_object_version: current.map((v) => ({ id: v.id, version: v.version })),
  };
}

/** Calls the provider; the content's digests cover each file's bytes and mode, keyed by file. */
export async function providerContent(
  caller: ProviderCaller,
  provider: string,
  request: MountRequest,
  signal?: AbortSignal,
): Promise<VolumeContent> {
  const answer = await caller.mount(provider, request, signal);
  const digests: Record<string, string> = {};
  for (const [name, value] of answer.files) digests[name] = `${answer.modes.get(name)}:${digest(value)}`;
  return { files: answer.files, modes: answer.modes, versions: answer.versions, digests };
}

/**
 * An external provider's content: asked with the versions the volume holds; on a refresh, a
 * different answer (versions, or any file's bytes or mode) is what makes the volume stale.
 */
export class ProviderVolumeSource implements VolumeSource {
  constructor(
    private readonly providers: ProviderCaller | undefined,
    private readonly limits: VolumeLimits,
  ) {}

  async fetch({ req, plan, known, signal }: ContentJob): Promise<VolumeContent> {
    if (!this.providers) {
      throw new PreconditionError(
        `SecretProviderClass ${req.podNamespace}/${req.spcName}: spec.provider is "${plan.provider}"; this driver serves provider "${BUILTIN_PROVIDER}" only (external providers are off)`,
      );
    }
    const request = providerMountRequest(req, plan, known?.versions ?? []);
    const content = await providerContent(this.providers, plan.provider, request, signal);
    checkVolumeSize(`SecretProviderClass ${req.podNamespace}/${req.spcName}`, content.files, this.limits);
    return content;
  }

  async stale(job: ContentJob & { known: MountedVolume }): Promise<{ content: VolumeContent } | undefined> {
    const { known } = job;
    const content = await this.fetch(job);
    const sameDigests =
      Object.keys(content.digests).length === Object.keys(known.digests).length &&
      Object.entries(content.digests).every(([k, v]) => known.digests[k] === v);
    const sameVersions = JSON.stringify(content.versions) === JSON.stringify(known.versions);
    return sameVersions && sameDigests ? undefined : { content };
  }
}
