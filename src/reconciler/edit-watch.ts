// SPC and Namespace edits reach running pods within seconds: a change to an SPC refreshes
// every volume on this node that uses it, and a change to a Namespace (its permit) every
// volume of its pods (refresh-volumes.ts). An edit into an invalid or refused state leaves
// the pods' files as they are and says why (log and pod Event).
import type { Publisher } from '../driver/publisher.js';
import type { MountedVolume } from '../driver/volumes.js';
import { errorMessage } from '../errors.js';
import type { EventRecorder } from '../kube/events.js';
import type { KubeView } from '../kube/view.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SecretSource } from '../provider/secret-source.js';
import { sharedAbortController } from '../util/async.js';
import { refreshVolumes } from './refresh-volumes.js';

export interface EditWatcherOptions {
  kube: KubeView;
  publisher: Publisher;
  source: SecretSource;
  events: EventRecorder;
  log: Logger;
  metrics: Metrics;
  /** Edits in quick succession (kubectl apply of several objects) are handled once. */
  debounceMs?: number;
  /** Told of each volume an edit rewrote (its content is whole again: rotation's backoff ends). */
  onRefreshed?: (targetPath: string) => void;
}

/** What was edited: an SPC (`namespace/name`) or a Namespace (`name`). */
type Edit = { kind: 'SecretProviderClass'; namespace: string; name: string } | { kind: 'Namespace'; name: string };

export class EditWatcher {
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly stopping = sharedAbortController();

  constructor(private readonly opts: EditWatcherOptions) {}

  start(): void {
    const { kube, publisher } = this.opts;
    const volumes = () => publisher.volumes.all().map((v) => v.request);
    kube.spcs.onChange((spc) =>
      this.changed({ kind: 'SecretProviderClass', namespace: spc.metadata.namespace!, name: spc.metadata.name }),
    );
    // Edits may have been missed while a namespace's watch was down: check its volumes' objects again.
    kube.spcs.onResync((namespace) => {
      for (const r of volumes())
        if (r.podNamespace === namespace)
          this.changed({ kind: 'SecretProviderClass', namespace: r.podNamespace, name: r.spcName });
    });
    kube.namespaces?.onChange((ns) => this.changed({ kind: 'Namespace', name: ns.metadata!.name! }));
    kube.namespaces?.onResync(() => {
      for (const r of volumes()) this.changed({ kind: 'Namespace', name: r.podNamespace });
    });
  }

  stop(): void {
    this.stopping.abort();
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }

  private volumesOf(edit: Edit): MountedVolume[] {
    const { volumes } = this.opts.publisher;
    return edit.kind === 'Namespace' ? volumes.inNamespace(edit.name) : volumes.usingSpc(edit.namespace, edit.name);
  }

  private changed(edit: Edit): void {
    const { volumes } = this.opts.publisher;
    const used =
      edit.kind === 'Namespace' ? volumes.usesNamespace(edit.name) : volumes.usesSpc(edit.namespace, edit.name);
    if (!used) return;
    const what =
      edit.kind === 'Namespace' ? `Namespace ${edit.name}` : `SecretProviderClass ${edit.namespace}/${edit.name}`;
    clearTimeout(this.pending.get(what));
    this.pending.set(
      what,
      setTimeout(() => {
        this.pending.delete(what);
        this.apply(what, edit).catch((err) =>
          this.opts.log.error(`Applying a ${edit.kind} change failed`, { error: errorMessage(err) }),
        );
      }, this.opts.debounceMs ?? 100),
    );
  }

  private async apply(what: string, edit: Edit): Promise<void> {
    const { publisher, events, log, metrics, source } = this.opts;
    const spc = edit.kind === 'SecretProviderClass';
    await refreshVolumes({
      publisher,
      events,
      log,
      volumes: this.volumesOf(edit),
      source,
      // Only what the objects say: a relist or a metadata-only edit costs no CSMS call.
      specOnly: true,
      signal: this.stopping.signal,
      onShared: () => metrics.sharedReads.inc(),
      onResult: (v, outcome) => (outcome === 'updated' ? this.opts.onRefreshed?.(v.request.targetPath) : undefined),
      updated: {
        log: `Applied ${edit.kind} change`,
        reason: spc ? 'SecretProviderClassUpdated' : 'NamespaceChangeApplied',
        message: () => `applied the change to ${what}`,
      },
      failed: {
        log: `${edit.kind} change not applied; pods keep their files`,
        reason: spc ? 'SecretProviderClassUpdateFailed' : 'NamespaceChangeNotApplied',
        message: (_, error) => error,
        count: () => (spc ? metrics.spcUpdateError.inc() : undefined),
      },
    });
  }
}
