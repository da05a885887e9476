// The built-in provider's content: the SPC's objects read from CSMS (through the job's
// SecretSource), except pinned versions the volume already holds, built into files by the
// SPC's rules. Only `latest` objects can change by themselves, so a refresh of an unchanged
// SPC compares their digests and nothing else.
import type { SecretVersion } from '../provider/secret-source.js';
import { POD_IDENTITY_AUDIENCE } from '../provider/pod-identity.js';
import type { Credentials } from '../provider/signer.js';
import type { VolumeCredentials } from '../provider/volume-credentials.js';
import { buildVolumeContent, digest, type VolumeContent, type VolumeLimits } from '../provider/volume-content.js';
import type { Logger } from '../log.js';
import type { MountedVolume } from './volumes.js';
import type { ContentJob, VolumeSource } from './volume-source.js';

export class CsmsVolumeSource implements VolumeSource {
  constructor(
    private readonly credentials: VolumeCredentials,
    private readonly limits: VolumeLimits,
    private readonly log: Logger,
  ) {}

  async fetch({ req, plan, known, local, values, signal }: ContentJob): Promise<VolumeContent> {
    const held: (SecretVersion | undefined)[] = plan.objects.map((o) => {
      const had = known?.versions.find((v) => v.id === o.objectName);
      const value = local.get(o.fileName);
      if (o.objectVersion === 'latest' || had?.version !== o.objectVersion || !value) return undefined;
      this.log.info(`object [${o.objectName}]'s version [${o.objectVersion}] doesn't change, read from local`);
      return { name: o.objectName, versionId: o.objectVersion, value };
    });
    const missing = plan.objects.filter((_, i) => !held[i]);
    if (missing.length > 0) {
      const creds = await this.credentialsOf({ req, plan, signal });
      const asked = missing.map((o) => ({ name: o.objectName, version: o.objectVersion }));
      const fetched = await values.fetch(asked, creds, signal);
      for (const v of fetched) this.log.info('Get secret successfully', { name: v.name, version: v.versionId });
      for (let i = 0, j = 0; i < held.length; i++) if (!held[i]) held[i] = fetched[j++];
    }
    const ref = `${req.podNamespace}/${req.spcName}`;
    return buildVolumeContent(ref, plan.objects, held as SecretVersion[], this.limits);
  }

  async stale({
    plan,
    known,
    values,
    signal,
  }: ContentJob & { known: MountedVolume }): Promise<{ content?: VolumeContent } | undefined> {
    const latest = plan.objects.filter((o) => o.objectVersion === 'latest');
    if (latest.length === 0) return undefined;
    if (this.credentials.usesPodIdentity(plan) && !known.request.serviceAccountTokens?.[POD_IDENTITY_AUDIENCE]) {
      // Taken over after a restart: tokens live in memory only, and kubelet's next republish
      // brings one. Until then the volume waits; it is not a failure worth an Event.
      this.log.v(2).info('Volume waits for a ServiceAccount token from kubelet', { target: known.request.targetPath });
      return undefined;
    }
    const creds = await this.credentialsOf({ req: known.request, plan, signal });
    const asked = latest.map((o) => ({ name: o.objectName, version: 'latest' }));
    const current = await values.fetch(asked, creds, signal);
    return current.every((v) => known.digests[v.name] === digest(v.value)) ? undefined : {};
  }

  /** Who reads: the pod's own ServiceAccount (pod identity), else the secret ref or the node. */
  private credentialsOf({ req, plan, signal }: Pick<ContentJob, 'req' | 'plan' | 'signal'>): Promise<Credentials> {
    return this.credentials.forVolume(
      {
        namespace: req.podNamespace,
        serviceAccount: req.serviceAccount,
        what: `Pod ${req.podNamespace}/${req.podName} volume "${req.volumeName}"`,
        secrets: req.secrets,
        tokens: req.serviceAccountTokens,
        usePodIdentity: plan.usePodIdentity,
      },
      signal,
    );
  }
}
