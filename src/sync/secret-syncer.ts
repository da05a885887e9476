// One sync of one SecretSync, through the same checks and the same content code as a mount:
// the SPC's objects and the ServiceAccount's allow-list (volume-plan.ts checkCsmsSpc), the
// Namespace permit, the identity that reads (VolumeCredentials, with a token the controller
// requests for pod identity), the volume limits and jmesPath rules (buildVolumeContent).
// Then the Secret is written only if its HMAC differs from the one in status; a failure
// leaves the last good Secret and says why in the conditions and an Event.
import type * as k8s from '@kubernetes/client-node';
import { checkNamespacePermit, auditMessage, type NamespacePolicy } from '../access/namespace-permit.js';
import {
  checkSecretSyncSpec,
  conditionsAfter,
  InvalidSecretSyncError,
  refOf,
  syncedSecretOf,
  syncHash,
  upToDate,
  type SyncOutcome,
} from '../crds/secret-sync.js';
import type { SecretProviderClass, SecretSync, SecretSyncStatus } from '../crds/types.js';
import { checkCsmsSpc } from '../driver/volume-plan.js';
import { errorMessage, NotAllowedError, NotPermittedError, ProductError, TooLargeError } from '../errors.js';
import type { EventRecorder } from '../kube/events.js';
import type { Logger } from '../log.js';
import { POD_IDENTITY_AUDIENCE } from '../provider/pod-identity.js';
import type { SecretSource } from '../provider/secret-source.js';
import { buildVolumeContent, type VolumeLimits } from '../provider/volume-content.js';
import type { VolumeCredentials } from '../provider/volume-credentials.js';
import type { StatusWriter } from './status-writer.js';
import type { SyncedSecretWriter } from './secret-writer.js';
import type { TokenRequests } from './token-requests.js';

/** The cluster reads one sync needs (SyncView). */
export interface SyncReads {
  spc(namespace: string, name: string): Promise<SecretProviderClass>;
  serviceAccount(namespace: string, name: string): Promise<k8s.V1ServiceAccount>;
  /** Read only when the namespace policy is not off. */
  namespace(name: string): Promise<k8s.V1Namespace>;
}

export interface SecretSyncerDeps {
  reads: SyncReads;
  credentials: VolumeCredentials;
  tokens?: TokenRequests;
  writer: SyncedSecretWriter;
  status: StatusWriter;
  hashKey: Buffer;
  limits: VolumeLimits;
  namespacePolicy: NamespacePolicy;
  events?: EventRecorder;
  log: Logger;
  now?: () => Date;
  /** Told the SecretSync as a status write left it (the cache hears of it later). */
  onWritten?: (ss: SecretSync) => void;
}

export type SyncResult = 'created' | 'updated' | 'unchanged';

/** A failed sync: the condition's reason and the error, whose message names the fix. */
export class SyncError extends Error {
  constructor(
    readonly reason: string,
    readonly error: unknown,
  ) {
    super(errorMessage(error), { cause: error });
  }
}

type Step = 'spc' | 'plan' | 'check' | 'identity' | 'fetch' | 'content' | 'write';

/** Upstream's reasons where it has one, ours where it has none (the allow-list and the permit). */
function reasonOf(step: Step, err: unknown): string {
  if (err instanceof NotPermittedError) return 'NamespaceNotPermitted';
  if (err instanceof NotAllowedError && step === 'check') return 'ServiceAccountNotAllowed';
  if (err instanceof InvalidSecretSyncError) return 'UserInputValidationFailed';
  if (err instanceof TooLargeError && step === 'content') return 'LimitExceeded';
  return {
    plan: 'ControllerSyncError',
    check: 'SecretProviderClassMisconfigured',
    spc: 'SecretProviderClassMisconfigured',
    identity: 'ProviderError',
    fetch: 'RemoteSecretStoreFetchFailed',
    content: 'SecretProviderClassMisconfigured',
    write: 'ControllerPatchError',
  }[step];
}

type StepFn = <T>(name: Step, work: () => Promise<T> | T) => Promise<T>;

/** Runs one step of a sync: its failure becomes a SyncError with the step's reason (not when aborted). */
function stepIn(signal?: AbortSignal): StepFn {
  return async (name, work) => {
    try {
      return await work();
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new SyncError(reasonOf(name, err), err);
    }
  };
}

export class SecretSyncer {
  private readonly now: () => Date;

  constructor(private readonly deps: SecretSyncerDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** `values`: where CSMS values come from (a rotation cycle shares one source). Throws SyncError. */
  async sync(ss: SecretSync, values: SecretSource, signal?: AbortSignal): Promise<SyncResult> {
    let result: { result: SyncResult; status?: SecretSyncStatus };
    try {
      result = await this.attempt(ss, values, signal);
    } catch (err) {
      if (!(err instanceof SyncError)) throw err;
      if (!signal?.aborted) await this.failed(ss, err, signal);
      throw err;
    }
    if (result.status) await this.writeStatus(ss, result.status, signal);
    return result.result;
  }

  private async writeStatus(ss: SecretSync, status: SecretSyncStatus, signal?: AbortSignal): Promise<void> {
    const after = await this.deps.status.write(ss, status, signal);
    if (after) this.deps.onWritten?.(after);
  }

  private async attempt(
    ss: SecretSync,
    values: SecretSource,
    signal?: AbortSignal,
  ): Promise<{ result: SyncResult; status?: SecretSyncStatus }> {
    const step = stepIn(signal);
    // Before any read: what no SPC could make right.
    await step('check', () => checkSecretSyncSpec(ss));
    const secret = await this.desired(ss, values, step, signal);
    const hash = syncHash(this.deps.hashKey, ss, secret);
    const ok = (created: boolean): SyncOutcome => ({ ok: true, created });
    if (hash === ss.status?.syncHash) {
      // The Secret already holds exactly this: zero writes, unless the conditions lag behind.
      if (upToDate(ss)) return { result: 'unchanged' };
      return { result: 'unchanged', status: { conditions: conditionsAfter(ss, ok(false), this.now()) } };
    }
    signal?.throwIfAborted();
    const written = await step('write', () => this.deps.writer.write(ss, secret, !!ss.status?.syncHash, signal));
    const name = `${ss.metadata.namespace}/${ss.metadata.name}`;
    this.deps.log.info(`${written === 'created' ? 'Created' : 'Updated'} Secret of SecretSync`, { secretSync: name });
    this.event(ss, 'Normal', written === 'created' ? 'SecretCreated' : 'SecretUpdated', `Secret ${name} ${written}`);
    const now = this.now();
    return {
      result: written,
      status: {
        syncHash: hash,
        lastSuccessfulSyncTime: now.toISOString().replace(/\.\d+Z$/, 'Z'),
        conditions: conditionsAfter(ss, ok(!ss.status?.syncHash), now),
      },
    };
  }

  /** The Secret the SecretSync should have now: checked as a mount is, then read from CSMS. */
  private async desired(ss: SecretSync, values: SecretSource, step: StepFn, signal?: AbortSignal) {
    const { objects, usePodIdentity, spcRef } = await this.plan(ss, step);
    const namespace = ss.metadata.namespace!;
    const serviceAccount = ss.spec.serviceAccountName;
    const creds = await step('identity', async () => {
      const tokens =
        this.deps.credentials.usesPodIdentity({ usePodIdentity }) && this.deps.tokens
          ? { [POD_IDENTITY_AUDIENCE]: { token: await this.deps.tokens.token(namespace, serviceAccount) } }
          : undefined;
      return this.deps.credentials.forVolume(
        { namespace, serviceAccount, what: refOf(ss), secrets: {}, tokens, usePodIdentity },
        signal,
      );
    });
    const asked = objects.map((o) => ({ name: o.objectName, version: o.objectVersion }));
    const fetched = await step('fetch', () => values.fetch(asked, creds, signal));
    return step('content', () => {
      const content = buildVolumeContent(spcRef, objects, fetched, this.deps.limits);
      return syncedSecretOf(ss, content.files);
    });
  }

  /** The SPC's objects, once the allow-list and the Namespace permit agree (volume-plan.ts checkCsmsSpc). */
  private async plan(ss: SecretSync, step: StepFn) {
    const { reads, namespacePolicy } = this.deps;
    const namespace = ss.metadata.namespace!;
    const spcRef = `${namespace}/${ss.spec.secretProviderClassName}`;
    const spc = await step('spc', () => reads.spc(namespace, ss.spec.secretProviderClassName));
    const [sa, ns] = await step('plan', () =>
      Promise.all([
        reads.serviceAccount(namespace, ss.spec.serviceAccountName),
        namespacePolicy === 'off' ? undefined : reads.namespace(namespace),
      ]),
    );
    return step('check', () => {
      const checked = checkCsmsSpc(spcRef, spc, `${namespace}/${ss.spec.serviceAccountName}`, sa.metadata?.annotations);
      const names = checked.objects.map((o) => o.objectName);
      const unpermitted = checkNamespacePermit(namespacePolicy, namespace, ns?.metadata?.annotations, names);
      if (unpermitted) this.event(ss, 'Warning', 'NamespacePermitAudit', auditMessage(unpermitted));
      return { ...checked, spcRef };
    });
  }

  /** The failure in the conditions (unless they say it already) and an Event; the Secret stays as it was. */
  private async failed(ss: SecretSync, err: SyncError, signal?: AbortSignal): Promise<void> {
    const message = err.message;
    this.deps.log.warn('SecretSync failed', {
      secretSync: `${ss.metadata.namespace}/${ss.metadata.name}`,
      reason: err.reason,
      error: message,
    });
    this.event(ss, 'Warning', err.reason, message);
    const ready = ss.status?.conditions?.find((c) => c.type === 'Ready');
    const said = ready?.status === 'False' && ready.reason === err.reason && ready.message.startsWith(message);
    if (said && ready.observedGeneration === ss.metadata.generation) return;
    const conditions = conditionsAfter(ss, { ok: false, reason: err.reason, message }, this.now());
    await this.writeStatus(ss, { conditions }, signal).catch((e: unknown) =>
      this.deps.log.warn('Recording a SecretSync failure in its status failed', { error: errorMessage(e) }),
    );
  }

  private event(ss: SecretSync, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.deps.events?.emit(
      {
        ...{ name: ss.metadata.name, namespace: ss.metadata.namespace!, uid: ss.metadata.uid! },
        ...{ kind: 'SecretSync', apiVersion: ss.apiVersion ?? 'secret-sync.x-k8s.io/v1alpha1' },
      },
      type,
      reason,
      message,
    );
  }
}

/** For callers that count: the error_type-like label of a failed sync. */
export function syncErrorReason(err: unknown): string {
  return err instanceof SyncError ? err.reason : err instanceof ProductError ? err.errorType : 'Internal';
}
