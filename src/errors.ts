// The few error classes the product raises. Each carries a stable `kind` that the
// CSI edge maps to one gRPC status code (grpc/status.ts). Messages name the
// object, the field and the fix, and never carry a secret value; the error that led
// to one is kept as its `cause`.

export type ErrorKind =
  | 'invalid-argument'
  | 'failed-precondition'
  | 'not-found'
  | 'permission-denied'
  | 'unauthenticated'
  | 'unavailable'
  | 'resource-exhausted'
  | 'deadline-exceeded'
  | 'cancelled'
  | 'internal';

export class ProductError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }

  /** The `error_type` metric label (as upstream's): the gRPC code name of its kind, e.g. PERMISSION_DENIED. */
  get errorType(): string {
    return this.kind.toUpperCase().replaceAll('-', '_');
  }
}

/** The `error_type` label of any error a call or a rotation ends with. */
export function errorType(err: unknown): string {
  return err instanceof ProductError ? err.errorType : 'INTERNAL';
}

/** The error class of one kind, so each below is a one-liner. */
function kindOf(kind: ErrorKind) {
  return class extends ProductError {
    constructor(message: string, options?: ErrorOptions) {
      super(kind, message, options);
    }
  };
}

/** The CSI request itself is malformed (kubelet or a hand-made client sent it wrong). */
export class InvalidRequestError extends kindOf('invalid-argument') {}

/** A SecretProviderClass breaks one of the rules of its objects. */
export class InvalidSpcError extends kindOf('invalid-argument') {}

/** The configuration is fine but the cluster is not in a state to serve it. */
export class PreconditionError extends kindOf('failed-precondition') {}

export class NotFoundError extends kindOf('not-found') {}

/** The ServiceAccount allow-list, or the store's own policy, refuses access. */
export class NotAllowedError extends kindOf('permission-denied') {}

/** The cluster admin's Namespace permit does not cover a secret (access/namespace-permit.ts). */
export class NotPermittedError extends NotAllowedError {}

/** The store did not accept our credentials. */
export class UnauthenticatedError extends kindOf('unauthenticated') {}

/** The store (or another dependency) could not be reached or kept failing. */
export class StoreUnavailableError extends kindOf('unavailable') {}

/** The store kept throttling us (HTTP 429) through every attempt: a caller may slow down. */
export class StoreThrottledError extends StoreUnavailableError {}

/** The Kubernetes API server failed or could not be reached. */
export class ApiServerError extends kindOf('unavailable') {}

/** Something a user wrote would make more (bytes, time) than the driver's limits allow. */
export class TooLargeError extends kindOf('resource-exhausted') {}

/** The caller gave up (kubelet cancelled the call) or the driver is shutting down. */
export class CancelledError extends kindOf('cancelled') {}

/** The caller's deadline passed before the work was done. */
export class DeadlineError extends kindOf('deadline-exceeded') {}

/** The message of anything thrown, for logs and wrapping. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
