// A SecretSync's status, written with a merge patch of its status subresource (the only
// write the controller makes to a SecretSync), answering the object as it now is.
import * as k8s from '@kubernetes/client-node';
import { SECRETSYNC_PLURAL, SYNC_GROUP, SYNC_VERSION, type SecretSync, type SecretSyncStatus } from '../crds/types.js';
import { ApiServerError } from '../errors.js';
import { abortableBy, apiErrorText, apiStatus } from '../kube/client.js';

export interface StatusWriter {
  /** The SecretSync after the write; undefined when it is gone. */
  write(ss: SecretSync, status: SecretSyncStatus, signal?: AbortSignal): Promise<SecretSync | undefined>;
}

export class SecretSyncStatusWriter implements StatusWriter {
  constructor(private readonly custom: k8s.CustomObjectsApi) {}

  async write(ss: SecretSync, status: SecretSyncStatus, signal?: AbortSignal): Promise<SecretSync | undefined> {
    try {
      return (await this.custom.patchNamespacedCustomObjectStatus(
        {
          ...{ group: SYNC_GROUP, version: SYNC_VERSION, plural: SECRETSYNC_PLURAL },
          ...{ namespace: ss.metadata.namespace!, name: ss.metadata.name },
          body: { status },
        },
        k8s.setHeaderOptions('Content-Type', 'application/merge-patch+json', abortableBy(signal)),
      )) as SecretSync;
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw new ApiServerError(
        `writing the status of SecretSync ${ss.metadata.namespace}/${ss.metadata.name} failed: ${apiErrorText(err)}`,
        { cause: err },
      );
    }
  }
}
