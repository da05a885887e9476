// How a unary gRPC handler runs: the call's cancellation, deadline and the driver's
// shutdown become one AbortSignal for the work, and errors become gRPC statuses, once, here.
import type * as grpc from '@grpc/grpc-js';
import { CancelledError, DeadlineError } from '../errors.js';
import type { Logger } from '../log.js';
import { sharedAbortController } from '../util/async.js';
import { grpcCodeName, toServiceError } from './status.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- grpc-js's own untyped handler shape
export type Handler = (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => void;

/**
 * Aborts when the caller cancels the call, when its deadline passes, or when the driver
 * shuts down; `release` must be called when the handler is done.
 */
function callSignal(
  rpc: string,
  call: grpc.ServerUnaryCall<unknown, unknown>,
  shutdown?: AbortSignal,
): { signal: AbortSignal; release: () => void } {
  const controller = sharedAbortController();
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const cancel = (reason: Error) => controller.abort(reason);
  const pastDeadline = () =>
    cancel(new DeadlineError(`${rpc} ran past the caller's deadline; what it had begun was taken back`));
  // grpc-js also reports a passed deadline as 'cancelled'.
  const cancelled = () =>
    Date.now() >= deadlineMs
      ? pastDeadline()
      : cancel(new CancelledError(`${rpc} was cancelled by the caller; what it had begun was taken back`));
  const stopping = () => cancel(new CancelledError(`${rpc} was cancelled: the driver is shutting down`));
  call.on('cancelled', cancelled);
  shutdown?.addEventListener('abort', stopping, { once: true });
  const ms = deadlineMs - Date.now();
  const timer = Number.isFinite(ms) ? setTimeout(pastDeadline, ms) : undefined;
  const release = () => {
    clearTimeout(timer);
    call.off('cancelled', cancelled);
    shutdown?.removeEventListener('abort', stopping);
  };
  return { signal: controller.signal, release };
}

/** Wraps an async handler: product errors become gRPC statuses, once, here. */
export function unary<Req, Res>(
  rpc: string,
  opts: { log: Logger; shutdown?: AbortSignal },
  fn: (req: Req, signal: AbortSignal) => Promise<Res>,
  count?: (error?: string) => void,
): Handler {
  return (call, cb) => {
    const { signal, release } = callSignal(rpc, call, opts.shutdown);
    fn(call.request as Req, signal)
      .finally(release)
      .then(
        (res) => {
          count?.();
          cb(null, res);
        },
        (err) => {
          const status = toServiceError(err);
          const code = grpcCodeName(status.code!);
          count?.(code);
          opts.log.error(`${rpc} failed`, { code, error: status.details });
          cb(status);
        },
      );
  };
}
