// The one place where product errors become gRPC statuses that kubelet shows users.
import { status, type ServiceError } from '@grpc/grpc-js';
import { errorMessage, ProductError, type ErrorKind } from '../errors.js';

const CODES: Record<ErrorKind, status> = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'failed-precondition': status.FAILED_PRECONDITION,
  'not-found': status.NOT_FOUND,
  'permission-denied': status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  unavailable: status.UNAVAILABLE,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  'deadline-exceeded': status.DEADLINE_EXCEEDED,
  cancelled: status.CANCELLED,
  internal: status.INTERNAL,
};

export function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof ProductError) return { code: CODES[err.kind], details: err.message };
  return { code: status.INTERNAL, details: `internal error: ${errorMessage(err)}` };
}

export function grpcCodeName(code: status): string {
  return status[code] ?? String(code);
}
