// Writes a SecretSync's Secret with create and patch only: the controller may not read
// Secrets (least privilege), so it cannot look before it writes. A create makes the Secret;
// an existing one is changed by one JSON Patch whose `test` operations the API server checks
// against the stored Secret in the same step: it must carry upstream's label, name this
// SecretSync (its uid) as its first owner, and have the same type. Any other Secret of that
// name is never written; the patch fails whole.
import * as k8s from '@kubernetes/client-node';
import { ApiServerError, PreconditionError } from '../errors.js';
import { refOf } from '../crds/secret-sync.js';
import { SYNC_LABEL, type SecretSync } from '../crds/types.js';
import { abortableBy, apiErrorText, apiStatus } from '../kube/client.js';

/** The Secret of that name is not this SecretSync's, or not of its type: it stays as it is. */
export class SecretNotOwnedError extends PreconditionError {}

export class SyncedSecretWriter {
  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly fieldManager: string,
  ) {}

  /** `synced`: a sync has written the Secret before, so it most likely exists (patch first). */
  /** `signal` aborts the calls in flight (this replica stopped leading). */
  async write(
    ss: SecretSync,
    secret: k8s.V1Secret,
    synced: boolean,
    signal?: AbortSignal,
  ): Promise<'created' | 'updated'> {
    if (synced && (await this.patch(ss, secret, signal))) return 'updated';
    if (await this.create(ss, secret, signal)) return 'created';
    // It exists after all (made by someone in between): only the ownership-testing patch may change it.
    if (await this.patch(ss, secret, signal)) return 'updated';
    // Created, then deleted between our two calls: the next sync tries again.
    throw new ApiServerError(`Secret ${ss.metadata.namespace}/${ss.metadata.name} came and went while it was written`);
  }

  /** False when the Secret already exists. */
  private async create(ss: SecretSync, secret: k8s.V1Secret, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.core.createNamespacedSecret(
        { namespace: ss.metadata.namespace!, body: secret, fieldManager: this.fieldManager },
        abortableBy(signal),
      );
      return true;
    } catch (err) {
      if (apiStatus(err) === 409) return false;
      throw this.failed(ss, 'creating', err);
    }
  }

  /** False when the Secret does not exist. */
  private async patch(ss: SecretSync, secret: k8s.V1Secret, signal?: AbortSignal): Promise<boolean> {
    const ops = [
      { op: 'test', path: `/metadata/labels/${SYNC_LABEL}`, value: '' },
      { op: 'test', path: '/metadata/ownerReferences/0/uid', value: ss.metadata.uid },
      { op: 'test', path: '/type', value: secret.type },
      { op: 'add', path: '/data', value: secret.data },
      { op: 'add', path: '/metadata/labels', value: secret.metadata!.labels },
      { op: 'add', path: '/metadata/annotations', value: secret.metadata!.annotations },
    ];
    try {
      await this.core.patchNamespacedSecret(
        { name: ss.metadata.name, namespace: ss.metadata.namespace!, body: ops, fieldManager: this.fieldManager },
        k8s.setHeaderOptions('Content-Type', 'application/json-patch+json', abortableBy(signal)),
      );
      return true;
    } catch (err) {
      if (apiStatus(err) === 404) return false;
      // A failed `test` is answered 422 (500 on older API servers) without saying which; a
      // Secret the patch would make invalid is answered 422 "... is invalid: <field>".
      const text = apiErrorText(err);
      const status = apiStatus(err);
      if ((status === 422 || status === 500) && !/ is invalid: /.test(text)) {
        throw new SecretNotOwnedError(
          `Secret ${ss.metadata.namespace}/${ss.metadata.name} already exists and is not ${refOf(ss)}'s ` +
            `(it needs the label ${SYNC_LABEL}, this SecretSync as its first ownerReference, and type ${secret.type}); ` +
            'it is never overwritten: rename the SecretSync, or delete that Secret if it should be replaced ' +
            "(a Secret's type cannot change either)",
          { cause: err },
        );
      }
      throw this.failed(ss, 'updating', err);
    }
  }

  private failed(ss: SecretSync, doing: string, err: unknown): Error {
    return new ApiServerError(
      `${doing} Secret ${ss.metadata.namespace}/${ss.metadata.name} failed: ${apiErrorText(err)}`,
      {
        cause: err,
      },
    );
  }
}
