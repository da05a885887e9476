// SPC edits reach running pods within seconds: a change to an SPC refreshes every
// volume on this node that uses it (refresh-volumes.ts). An SPC edited into an invalid
// state leaves the pods' files as they are and says why (log and pod Event).
import type { Publisher } from '../driver/publisher.js';
import { errorMessage } from '../errors.js';
import type { EventRecorder } from '../kube/events.js';
import type { KubeView } from '../kube/view.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SecretSource } from '../provider/source.js';
import { sharedAbortController } from '../util/async.js';
import { refreshVolumes } from './refresh-volumes.js';

export interface SpcWatcherOptions {
  kube: KubeView;
  publisher: Publisher;
  source: SecretSource;
  events: EventRecorder;
  log: Logger;
  metrics: Metrics;
  /** Edits in quick succession (kubectl apply of several objects) are handled once. */
  debounceMs?: number;
}

export class SpcWatcher {
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly stopping = sharedAbortController();

  constructor(private readonly opts: SpcWatcherOptions) {}

  start(): void {
    const { kube, publisher } = this.opts;
    kube.spcs.onChange((spc) => this.changed(spc.metadata.namespace!, spc.metadata.name));
    // Edits may have been missed while the watch was down: check every volume's SPC again.
    kube.spcs.onResync(() => {
      const seen = new Set(publisher.volumes.all().map((v) => `${v.request.podNamespace}/${v.request.spcName}`));
      for (const key of seen) {
        const [namespace, name] = key.split('/');
        this.changed(namespace, name);
      }
    });
  }

  stop(): void {
    this.stopping.abort();
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }

  private changed(namespace: string, name: string): void {
    if (!this.opts.publisher.volumes.usesSpc(namespace, name)) return;
    const key = `${namespace}/${name}`;
    clearTimeout(this.pending.get(key));
    this.pending.set(
      key,
      setTimeout(() => {
        this.pending.delete(key);
        this.apply(namespace, name).catch((err) =>
          this.opts.log.error('Applying a SecretProviderClass change failed', { error: errorMessage(err) }),
        );
      }, this.opts.debounceMs ?? 100),
    );
  }

  private async apply(namespace: string, name: string): Promise<void> {
    const { publisher, events, log, metrics, source } = this.opts;
    const spc = `SecretProviderClass ${namespace}/${name}`;
    await refreshVolumes({
      publisher,
      events,
      log,
      volumes: publisher.volumes.usingSpc(namespace, name),
      source,
      // Only what the SPC says: a relist or a metadata-only edit costs no CSMS call.
      specOnly: true,
      signal: this.stopping.signal,
      onShared: () => metrics.sharedReads.inc(),
      updated: {
        log: 'Applied SecretProviderClass change',
        reason: 'SecretProviderClassUpdated',
        message: () => `applied the change to ${spc}`,
      },
      failed: {
        log: 'SecretProviderClass change not applied; pods keep their files',
        reason: 'SecretProviderClassUpdateFailed',
        message: (_, error) => error,
        count: () => metrics.spcUpdateError.inc(),
      },
    });
  }
}
