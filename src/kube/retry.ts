import { Backoff, sleep } from './backoff.ts';
import { KubeApiError } from './errors.ts';

/** Attempts of one idempotent request answered 429 or 5xx (client-go allows 10 with Retry-After). */
export const MAX_ATTEMPTS = 5;
/** Cap on one wait, whatever Retry-After says. */
export const MAX_RETRY_WAIT_MS = 10_000;

/** Safe to send again: reads, deletes, and replacements pinned to a resourceVersion. */
export function isIdempotent(method: string, body: unknown): boolean {
  if (method === 'GET' || method === 'HEAD' || method === 'DELETE') return true;
  if (method !== 'PUT' || typeof body !== 'object' || body === null) return false;
  const metadata = (body as { metadata?: { resourceVersion?: unknown } }).metadata;
  return typeof metadata?.resourceVersion === 'string' && metadata.resourceVersion !== '';
}

/** Throttled or failed on the server's side (not a client-side timeout or a refused connection). */
export function isRetryableStatus(err: unknown): err is KubeApiError {
  if (!(err instanceof KubeApiError) || err.reason === 'ClientTimeout') return false;
  return err.statusCode === 429 || (err.statusCode >= 500 && err.statusCode !== 501);
}

export const isUnauthorized = (err: unknown): boolean =>
  err instanceof KubeApiError && err.statusCode === 401;

export interface RetryHooks {
  /** Called before the one retry after a 401 (drop cached credentials). */
  onUnauthorized(): void;
  /** Whether 429/5xx may be retried. */
  idempotent: boolean;
  signal?: AbortSignal;
}

/**
 * Runs `attempt` again after a 401 (once, with fresh credentials) and, for idempotent
 * requests, after 429/5xx: waiting Retry-After when given, else a capped backoff.
 */
export async function withRetries<T>(attempt: () => Promise<T>, hooks: RetryHooks): Promise<T> {
  const backoff = new Backoff(200, MAX_RETRY_WAIT_MS);
  let reauthenticated = false;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (isUnauthorized(err) && !reauthenticated) {
        reauthenticated = true;
        hooks.onUnauthorized();
        continue;
      }
      if (!hooks.idempotent || !isRetryableStatus(err) || n >= MAX_ATTEMPTS) throw err;
      if (hooks.signal?.aborted) throw err;
      const hinted = err.retryAfterSeconds;
      const wait = hinted !== undefined ? hinted * 1000 : backoff.next();
      await sleep(Math.min(wait, MAX_RETRY_WAIT_MS), hooks.signal);
      if (hooks.signal?.aborted) throw err;
    }
  }
}
