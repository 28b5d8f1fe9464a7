import { Counter, Histogram } from 'prom-client';
import { metricsRegistry } from './metrics.ts';

/** client-go's rest_client_request_duration_seconds buckets. */
export const REST_CLIENT_DURATION_BUCKETS = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];

/** client-go's name and labels: requests by HTTP status code ("<error>" without one). */
export const restClientRequestsTotal = new Counter<'code' | 'method' | 'host'>({
  name: 'rest_client_requests_total',
  help: 'Number of HTTP requests to the Kubernetes API, partitioned by status code, method, and host.',
  labelNames: ['code', 'method', 'host'],
  registers: [metricsRegistry],
});

export const restClientRequestDurationSeconds = new Histogram<'verb' | 'host'>({
  name: 'rest_client_request_duration_seconds',
  help: 'Request latency to the Kubernetes API in seconds (to the response headers), by verb and host.',
  labelNames: ['verb', 'host'],
  buckets: REST_CLIENT_DURATION_BUCKETS,
  registers: [metricsRegistry],
});

/**
 * Starts timing one API request; the returned function records it once, with the HTTP status
 * (undefined when no response came back). Later calls are ignored.
 */
export function restClientRequestTimer(
  method: string,
  host: string,
): (code: number | undefined) => void {
  const started = performance.now();
  let done = false;
  return (code) => {
    if (done) return;
    done = true;
    restClientRequestsTotal.inc({
      code: code === undefined ? '<error>' : String(code),
      method,
      host,
    });
    restClientRequestDurationSeconds.observe(
      { verb: method, host },
      (performance.now() - started) / 1000,
    );
  };
}
