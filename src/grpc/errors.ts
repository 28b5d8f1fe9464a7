import { status, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { KubeApiError } from '../kube/errors.ts';

/** An RPC outcome other than OK, with the message clients see. */
export class RpcError extends Error {
  override readonly name = 'RpcError';

  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

/** The contract's validation errors: a snake_case code, then `: detail` when there is one. */
export function invalidArgument(code: string, detail?: string): RpcError {
  return new RpcError(status.INVALID_ARGUMENT, detail ? `${code}: ${detail}` : code);
}

export function notFound(message: string): RpcError {
  return new RpcError(status.NOT_FOUND, message);
}

/** The message Kubernetes would give for a missing object, e.g. `pods "x" not found`. */
export function resourceNotFound(resource: string, name: string): RpcError {
  return notFound(`resource not found: ${resource} ${JSON.stringify(name)} not found`);
}

/** Kubernetes error → gRPC status, as the upstream runner maps it (runner-behaviour §2.3). */
export function mapKubeError(err: KubeApiError): RpcError {
  const [code, base] = kubeCodeAndBase(err);
  const detail = err.message.trim();
  return new RpcError(code, detail ? `${base}: ${detail}` : base);
}

function kubeCodeAndBase(err: KubeApiError): [status, string] {
  switch (err.statusCode) {
    case 404:
      return [status.NOT_FOUND, 'resource not found'];
    case 409:
      return err.reason === 'AlreadyExists'
        ? [status.ALREADY_EXISTS, 'resource already exists']
        : [status.ABORTED, 'resource conflict'];
    case 422:
      return [status.INVALID_ARGUMENT, 'invalid kubernetes request'];
    case 401:
      return [status.UNAUTHENTICATED, 'unauthenticated'];
    case 403:
      return [status.PERMISSION_DENIED, 'permission denied'];
    default:
      return [status.INTERNAL, 'kubernetes request failed'];
  }
}

/** Any thrown value as the RpcError to answer with; unexpected ones are logged, never exposed. */
export function toRpcError(err: unknown, logger: Logger, method: string): RpcError {
  if (err instanceof RpcError) return err;
  if (err instanceof KubeApiError) return mapKubeError(err);
  logger.error({ err, method }, 'unexpected error in RPC handler');
  return new RpcError(status.INTERNAL, `internal error in ${method}`);
}

export function toServiceError(err: RpcError): Partial<ServiceError> {
  return { code: err.code, details: err.message, message: err.message };
}

const CODE_NAMES: Record<number, string> = {
  [status.OK]: 'OK',
  [status.CANCELLED]: 'Canceled',
  [status.UNKNOWN]: 'Unknown',
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [status.NOT_FOUND]: 'NotFound',
  [status.ALREADY_EXISTS]: 'AlreadyExists',
  [status.PERMISSION_DENIED]: 'PermissionDenied',
  [status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.ABORTED]: 'Aborted',
  [status.OUT_OF_RANGE]: 'OutOfRange',
  [status.UNIMPLEMENTED]: 'Unimplemented',
  [status.INTERNAL]: 'Internal',
  [status.UNAVAILABLE]: 'Unavailable',
  [status.DATA_LOSS]: 'DataLoss',
  [status.UNAUTHENTICATED]: 'Unauthenticated',
};

/** Go's codes.Code names, as go-grpc-prometheus labels grpc_code. */
export function codeName(code: number): string {
  return CODE_NAMES[code] ?? String(code);
}
