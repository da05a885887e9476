// One pass over some mounted volumes through the publisher's refresh path, shared by
// the rotation cycle and SPC edits: bounded concurrency, one RefreshPassSource so each
// distinct secret is read once, a warning logged once per distinct error, an Event on
// each pod, and a stop between volumes when the signal fires. Namespaces take turns for
// the places, so one namespace's slow volumes (a slow external provider) cannot hold them all. A volume the Namespace
// permit no longer covers gets one Event in any pass, and another when it is covered again.
import type { Publisher } from '../driver/publisher.js';
import type { RefreshOutcome } from '../driver/publisher-deps.js';
import type { MountedVolume } from '../driver/volumes.js';
import { errorMessage, NotPermittedError } from '../errors.js';
import type { EventRecorder, PodRef } from '../kube/events.js';
import type { Logger } from '../log.js';
import { RefreshPassSource } from '../provider/refresh-pass-source.js';
import type { SecretSource } from '../provider/secret-source.js';
import { forEachFairly } from '../util/async.js';

export interface RefreshPass {
  publisher: Publisher;
  events: Pick<EventRecorder, 'emit'>;
  log: Logger;
  volumes: MountedVolume[];
  source: SecretSource;
  /** Only what the SPCs say: `latest` values are not read again. */
  specOnly: boolean;
  signal?: AbortSignal;
  /** Volumes refreshed at once (a quarter of them at most for one namespace); store reads are bounded separately by `storeConcurrency`. */
  concurrency?: number;
  /** Told how each volume's refresh ended (rotation backs off from failing ones). */
  onResult?: (v: MountedVolume, outcome: RefreshOutcome | 'failed') => void;
  storeConcurrency?: number;
  onShared?: () => void;
  /** What a changed volume gets: a log line, an Event, a count. */
  updated: { log: string; reason: string; message: (v: MountedVolume) => string; count?: () => void };
  /** What a failed volume gets: a log line (once per distinct error), an Event, a count. */
  failed: {
    log: string;
    reason: string;
    message: (v: MountedVolume, error: string) => string;
    count: (err: unknown) => void;
  };
}

export interface PassResult {
  volumes: number;
  updated: number;
  failed: number;
  /** Reads the pass asked of the store (distinct secret versions, plus throttled retries). */
  storeReads: number;
}

export async function refreshVolumes(pass: RefreshPass): Promise<PassResult> {
  const { publisher, events, log, specOnly, signal } = pass;
  const source = new RefreshPassSource(pass.source, { concurrency: pass.storeConcurrency, onShared: pass.onShared });
  const logged = new Set<string>();
  let updated = 0;
  let failed = 0;
  const limit = pass.concurrency ?? 16;
  await forEachFairly(
    pass.volumes,
    (v) => v.request.podNamespace,
    { limit, perKey: Math.max(1, Math.ceil(limit / 4)) },
    async (v) => {
      const pod: PodRef = { name: v.request.podName, namespace: v.request.podNamespace, uid: v.request.podUid };
      const spc = `${pod.namespace}/${v.request.spcName}`;
      try {
        const outcome = await publisher.refresh(v.request.targetPath, { source, specOnly, signal });
        if (outcome === 'resumed') {
          log.info('Namespace permit covers the volume again; it gets new values', { spc, pod: pod.name });
          events.emit(
            pod,
            'Normal',
            'SecretPermitted',
            `Namespace ${pod.namespace} now permits the secrets of SecretProviderClass ${spc}`,
            v.request.targetPath,
          );
        }
        pass.onResult?.(v, outcome);
        if (outcome !== 'updated') return;
        updated++;
        pass.updated.count?.();
        log.info(pass.updated.log, { spc, pod: pod.name });
        events.emit(pod, 'Normal', pass.updated.reason, pass.updated.message(v));
      } catch (err) {
        if (signal?.aborted) return;
        failed++;
        pass.onResult?.(v, 'failed');
        pass.failed.count(err);
        const message = errorMessage(err);
        if (err instanceof NotPermittedError) {
          log.warn('Namespace permit no longer covers the volume; it keeps its files and gets no new values', {
            spc,
            pod: pod.name,
          });
          const kept = `${message}; the volume keeps its last files and gets no new values until the Namespace permits them`;
          return events.emit(pod, 'Warning', 'SecretNotPermitted', kept, v.request.targetPath);
        }
        // One store outage fails many volumes with the same message: log it once per pass.
        if (!logged.has(message)) {
          logged.add(message);
          log.warn(pass.failed.log, { spc, error: message });
        }
        events.emit(pod, 'Warning', pass.failed.reason, pass.failed.message(v, message));
      }
    },
    signal,
  );
  return { volumes: pass.volumes.length, updated, failed, storeReads: source.reads };
}
