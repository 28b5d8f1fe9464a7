import http from 'node:http';
import type { Logger } from 'pino';
import { metricsRegistry } from './metrics.ts';

export interface HealthSources {
  /** Ready: caches synced and, on the leader, controllers running. */
  ready(): { ok: boolean; reason: string };
}

/** Serves /metrics (Prometheus), /healthz (process alive) and /readyz. */
export function startHttpServer(
  options: { host: string; port: number; logger: Logger } & HealthSources,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/metrics')) {
      metricsRegistry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': metricsRegistry.contentType });
          res.end(text);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      return;
    }
    if (url.startsWith('/healthz') || url.startsWith('/livez')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (url.startsWith('/readyz')) {
      const state = options.ready();
      res.writeHead(state.ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(state.ok ? 'ok' : state.reason);
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : options.port;
      options.logger.info({ port }, 'serving metrics and health');
      resolve({
        port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
