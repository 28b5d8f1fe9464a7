/** A failed Kubernetes API call, carrying the HTTP status and the API's Status reason. */
export class KubeApiError extends Error {
  readonly statusCode: number;
  readonly reason: string;
  readonly details?: unknown;
  /** The server's Retry-After, in seconds, when it sent one (429, 503). */
  retryAfterSeconds?: number;

  constructor(statusCode: number, reason: string, message: string, details?: unknown) {
    super(message);
    this.name = 'KubeApiError';
    this.statusCode = statusCode;
    this.reason = reason;
    this.details = details;
  }
}

export function statusCodeOf(err: unknown): number | undefined {
  return err instanceof KubeApiError ? err.statusCode : undefined;
}

export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isGone = (err: unknown): boolean => statusCodeOf(err) === 410;
export const isAlreadyExists = (err: unknown): boolean =>
  err instanceof KubeApiError && err.statusCode === 409 && err.reason === 'AlreadyExists';
export const isConflict = (err: unknown): boolean =>
  err instanceof KubeApiError && err.statusCode === 409 && err.reason !== 'AlreadyExists';
export const isInvalid = (err: unknown): boolean => statusCodeOf(err) === 422;
