// How a long-running command other than `serve` stops: on SIGTERM or SIGINT it closes what it
// serves, then exits (1 if closing failed).
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

export function stopOnSignal(log: Logger, close: () => Promise<void>): void {
  const stop = (signal: string) => {
    log.info('Shutting down', { signal });
    close().then(
      () => process.exit(0),
      (err) => {
        log.error('Stopping failed', { error: errorMessage(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
