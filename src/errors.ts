// The few error classes the product raises. Each carries a stable `kind` that the
// CSI edge maps to one gRPC status code (driver/grpc-status.ts). Messages name the
// object, the field and the fix, and never carry a secret value.

export type ErrorKind =
  | 'invalid-argument'
  | 'failed-precondition'
  | 'not-found'
  | 'permission-denied'
  | 'unauthenticated'
  | 'unavailable'
  | 'deadline-exceeded'
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
}

/** The CSI request itself is malformed (kubelet or a hand-made client sent it wrong). */
export class InvalidRequestError extends ProductError {
  constructor(message: string) {
    super('invalid-argument', message);
  }
}

/** A SecretProviderClass breaks one of the rules of its objects. */
export class InvalidSpcError extends ProductError {
  constructor(message: string) {
    super('invalid-argument', message);
  }
}

/** The configuration is fine but the cluster is not in a state to serve it. */
export class PreconditionError extends ProductError {
  constructor(message: string) {
    super('failed-precondition', message);
  }
}

export class NotFoundError extends ProductError {
  constructor(message: string) {
    super('not-found', message);
  }
}

/** The ServiceAccount allow-list, or the store's own policy, refuses access. */
export class NotAllowedError extends ProductError {
  constructor(message: string) {
    super('permission-denied', message);
  }
}

/** The store did not accept our credentials. */
export class UnauthenticatedError extends ProductError {
  constructor(message: string) {
    super('unauthenticated', message);
  }
}

/** The store (or another dependency) could not be reached or kept failing. */
export class StoreUnavailableError extends ProductError {
  constructor(message: string, options?: ErrorOptions) {
    super('unavailable', message, options);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The Kubernetes API server failed or could not be reached. */
export class ApiServerError extends ProductError {
  constructor(message: string) {
    super('unavailable', message);
  }
}
