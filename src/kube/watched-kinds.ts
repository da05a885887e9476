// The objects a workload's secrets depend on, each kept only while in use (watched-objects.ts):
// SecretProviderClasses and ServiceAccounts, watched in the namespaces where something uses
// them, and Namespaces (their permits), which only cluster admins write, watched as a kind.
// The node driver (view.ts) and the sync controller (sync/sync-view.ts) read them alike.
import * as k8s from '@kubernetes/client-node';
import { ApiServerError, NotFoundError, TooLargeError } from '../errors.js';
import { GROUP, SPC_PLURAL, VERSION, type SecretProviderClass } from '../crds/types.js';
import type { Logger } from '../log.js';
import { apiErrorText, apiStatus } from './client.js';
import { isOverBudget } from './object-budget.js';
import type { WatchFn } from './scope-watch.js';
import { WatchedObjects } from './watched-objects.js';

export interface KindUse {
  /** Whether the object is in use; unused ones are let go after a few seconds. */
  inUse: (namespace: string, name: string) => boolean;
  /** Whether a namespace still needs watching (something in it uses this kind). */
  scopeInUse: (namespace: string) => boolean;
  onSize?: (size: number) => void;
  onEvent?: () => void;
}

export function watchedServiceAccounts(
  core: k8s.CoreV1Api,
  watch: WatchFn,
  log: Logger,
  use: KindUse,
): WatchedObjects<k8s.V1ServiceAccount> {
  return new WatchedObjects(
    {
      kind: 'ServiceAccount',
      scope: 'namespace',
      watch,
      ...use,
      pathOf: (namespace) => `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts`,
      read: (namespace, name) =>
        readExplained(`ServiceAccount ${namespace}/${name}`, () =>
          core.readNamespacedServiceAccount({ name, namespace }),
        ),
      listOne: (namespace) => core.listNamespacedServiceAccount({ namespace, limit: 1 }),
    },
    log,
  );
}

export function watchedSpcs(
  custom: k8s.CustomObjectsApi,
  watch: WatchFn,
  log: Logger,
  use: KindUse,
  fix: string,
): WatchedObjects<SecretProviderClass> {
  const api = { group: GROUP, version: VERSION, plural: SPC_PLURAL };
  return new WatchedObjects(
    {
      kind: 'SecretProviderClass',
      scope: 'namespace',
      watch,
      ...use,
      pathOf: (namespace) => `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${SPC_PLURAL}`,
      read: (namespace, name) =>
        readExplained(
          `SecretProviderClass ${namespace}/${name}`,
          () => custom.getNamespacedCustomObject({ ...api, namespace, name }) as Promise<SecretProviderClass>,
          fix,
        ),
      listOne: (namespace) => custom.listNamespacedCustomObject({ ...api, namespace, limit: 1 }) as never,
    },
    log,
  );
}

/** Cluster-scoped, written by cluster admins only: every Namespace event is one of few. */
export function watchedNamespaces(
  core: k8s.CoreV1Api,
  watch: WatchFn,
  log: Logger,
  use: Pick<KindUse, 'inUse' | 'onSize'>,
): WatchedObjects<k8s.V1Namespace> {
  return new WatchedObjects<k8s.V1Namespace>(
    {
      kind: 'Namespace',
      scope: 'kind',
      scopeInUse: () => true,
      watch,
      ...use,
      pathOf: () => '/api/v1/namespaces',
      read: (_, name) => readExplained(`Namespace ${name}`, () => core.readNamespace({ name })),
      listOne: () => core.listNamespace({ limit: 1 }),
    },
    log,
  );
}

/** A read whose failure says what was read and what to do: not found, too large, or the API server. */
export async function readExplained<T>(
  what: string,
  get: () => Promise<T>,
  fix = 'create it or fix the reference',
): Promise<T> {
  try {
    return await get();
  } catch (err) {
    if (apiStatus(err) === 404) throw new NotFoundError(`${what} not found; ${fix}`, { cause: err });
    if (isOverBudget(err)) {
      throw new TooLargeError(
        `${what} is larger than the driver reads of one object; make it smaller (${apiErrorText(err)})`,
        { cause: err },
      );
    }
    throw new ApiServerError(`reading ${what} from the API server failed: ${apiErrorText(err)}`, { cause: err });
  }
}
