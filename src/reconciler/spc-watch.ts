// SPC edits reach running pods within seconds: a change to an SPC refreshes every
// volume on this node that uses it. An SPC edited into an invalid state leaves the
// pods' files as they are and says why (log and pod Event).
import type { Publisher } from '../driver/publisher.js';
import { errorMessage } from '../errors.js';
import type { EventRecorder } from '../kube/events.js';
import type { KubeView } from '../kube/view.js';
import type { Logger } from '../log.js';
import { metrics } from '../metrics.js';
import { SharedSource } from '../provider/shared-source.js';
import type { SecretSource } from '../provider/source.js';
import { forEachLimit } from './rotation.js';

export class SpcWatcher {
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly kube: KubeView,
    private readonly publisher: Publisher,
    private readonly source: SecretSource,
    private readonly events: EventRecorder,
    private readonly log: Logger,
    /** Edits in quick succession (kubectl apply of several objects) are handled once. */
    private readonly debounceMs = 100,
  ) {}

  start(): void {
    this.kube.spcs.onChange((spc) => this.changed(spc.metadata.namespace!, spc.metadata.name));
    // Edits may have been missed while the watch was down: check every volume's SPC again.
    this.kube.spcs.onResync(() => {
      const seen = new Set(this.publisher.volumes.all().map((v) => `${v.request.podNamespace}/${v.request.spcName}`));
      for (const key of seen) {
        const [namespace, name] = key.split('/');
        this.changed(namespace, name);
      }
    });
  }

  stop(): void {
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }

  private changed(namespace: string, name: string): void {
    if (!this.publisher.volumes.usesSpc(namespace, name)) return;
    const key = `${namespace}/${name}`;
    clearTimeout(this.pending.get(key));
    this.pending.set(
      key,
      setTimeout(() => {
        this.pending.delete(key);
        void this.apply(namespace, name);
      }, this.debounceMs),
    );
  }

  private async apply(namespace: string, name: string): Promise<void> {
    const source = new SharedSource(this.source);
    const volumes = this.publisher.volumes.usingSpc(namespace, name);
    let logged = false;
    await forEachLimit(volumes, 16, async (v) => {
      try {
        // Only what the SPC says: a relist or a metadata-only edit costs no CSMS call.
        if ((await this.publisher.refresh(v.request.targetPath, source, true)) === 'updated') {
          this.log.info('Applied SecretProviderClass change', { spc: `${namespace}/${name}`, pod: v.request.podName });
        }
      } catch (err) {
        metrics.spcUpdateError.inc();
        const message = errorMessage(err);
        if (!logged)
          this.log.warn('SecretProviderClass change not applied; pods keep their files', {
            spc: `${namespace}/${name}`,
            error: message,
          });
        logged = true;
        this.events.emit(
          { name: v.request.podName, namespace, uid: v.request.podUid },
          'Warning',
          'SecretProviderClassUpdateFailed',
          message,
        );
      }
    });
  }
}
