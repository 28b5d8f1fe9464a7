import https from 'node:https';
import http from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import type WebSocket from 'ws';
import { KubeApiError } from './errors.ts';
import { WriteFence } from './fence.ts';
import type { ResourceType } from './resources.ts';
import { TokenBucket } from './token-bucket.ts';
import { readBody, toApiError } from './response.ts';
import { ResourceClient } from './resource-client.ts';
import { isIdempotent, isUnauthorized, withRetries } from './retry.ts';
import { loadClusterConnection, type ClusterConnection } from './kubeconfig.ts';
import type { ConnectionOptions } from './credentials.ts';

export {
  APPLY_PATCH,
  JSON_PATCH,
  MERGE_PATCH,
  ResourceClient,
  type DeleteOptions,
  type ListOptions,
} from './resource-client.ts';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
    creationTimestamp?: string;
    finalizers?: string[];
    ownerReferences?: Array<{
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
    }>;
    managedFields?: unknown;
  };
}

export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Take the token from this budget instead of the client's (e.g. Events, apart from reconciling). */
  limiter?: TokenBucket;
}

/** Client-side limits unless configured (KUBE_API_QPS / KUBE_API_BURST). */
export const DEFAULT_QPS = 500;
export const DEFAULT_BURST = 1000;

/**
 * Called as each request starts; the returned function is called once with the HTTP status
 * (undefined when no response came back). The app passes its metrics here.
 */
export type RequestObserver = (
  method: string,
  host: string,
) => (statusCode: number | undefined) => void;

const noObserver: RequestObserver = () => () => undefined;

export interface KubeClientOptions {
  /** Client-side limit; the API server's priority and fairness is the real guard. */
  qps?: number;
  burst?: number;
  requestTimeoutMs?: number;
  userAgent?: string;
  observeRequest?: RequestObserver;
}

/**
 * A thin HTTP client for the Kubernetes API. It speaks JSON directly (no generated model
 * serialisation), reuses connections, and exposes raw streams for watch, logs and exec.
 */
export class KubeClient {
  readonly server: URL;
  private readonly connection: ClusterConnection;
  private readonly agent: https.Agent | http.Agent;
  private readonly streamAgent: https.Agent | http.Agent;
  private readonly limiter: TokenBucket;
  private readonly requestTimeoutMs: number;
  private readonly userAgent: string;
  private readonly observeRequest: RequestObserver;
  private authCache?: { at: number; opts: ConnectionOptions };
  readonly requestCounts = new Map<string, number>();
  /** Closed when leadership is lost: no write leaves the process after that (see fence.ts). */
  readonly fence = new WriteFence();

  constructor(connection: ClusterConnection | KubeConfig, options: KubeClientOptions = {}) {
    this.connection = 'requestOptions' in connection ? connection : fromKubeConfig(connection);
    this.server = new URL(this.connection.server);
    const secure = this.server.protocol === 'https:';
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets: 64 })
      : new http.Agent({ keepAlive: true, maxSockets: 64 });
    this.streamAgent = secure
      ? new https.Agent({ keepAlive: false })
      : new http.Agent({ keepAlive: false });
    this.limiter = new TokenBucket(options.qps ?? DEFAULT_QPS, options.burst ?? DEFAULT_BURST);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'k8s-runner';
    this.observeRequest = options.observeRequest ?? noObserver;
  }

  /** From a kubeconfig (a path or a list like $KUBECONFIG), else the in-cluster service account. */
  static fromEnvironment(kubeconfigPath?: string, options?: KubeClientOptions): KubeClient {
    return new KubeClient(loadClusterConnection(kubeconfigPath), options);
  }

  /** Same as fromEnvironment (kept async for callers that await it). */
  static connect(kubeconfigPath?: string, options?: KubeClientOptions): Promise<KubeClient> {
    return Promise.resolve(KubeClient.fromEnvironment(kubeconfigPath, options));
  }

  totalRequests(): number {
    let n = 0;
    for (const v of this.requestCounts.values()) n += v;
    return n;
  }

  private async authOptions(): Promise<ConnectionOptions> {
    const now = Date.now();
    if (this.authCache && now - this.authCache.at < 30_000) return this.authCache.opts;
    const opts = await this.connection.requestOptions();
    this.authCache = { at: now, opts };
    return opts;
  }

  private buildUrl(path: string, query?: RequestOptions['query']): URL {
    const url = new URL(path, this.server);
    if (this.server.pathname !== '/' && !path.startsWith(this.server.pathname)) {
      url.pathname = this.server.pathname.replace(/\/$/, '') + path;
    }
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    return url;
  }

  private async open(
    method: string,
    path: string,
    options: RequestOptions,
    streaming: boolean,
  ): Promise<IncomingMessage> {
    await (options.limiter ?? this.limiter).take();
    const key = `${method} ${streaming ? 'stream' : 'request'}`;
    this.requestCounts.set(key, (this.requestCounts.get(key) ?? 0) + 1);
    const url = this.buildUrl(path, options.query);
    const auth = await this.authOptions();
    const payload =
      options.body === undefined
        ? undefined
        : Buffer.from(
            typeof options.body === 'string' ? options.body : JSON.stringify(options.body),
          );
    const headers: OutgoingHttpHeaders = {
      ...auth.headers,
      accept: 'application/json',
      'user-agent': this.userAgent,
    };
    if (payload) {
      headers['content-type'] = options.contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const transport = url.protocol === 'https:' ? https : http;
    // Checked as late as possible: no write leaves once the fence is closed.
    const { signal, release } = this.fence.guard(method, options.signal);
    const observe = this.observeRequest(method, url.host);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = transport.request(
        url,
        {
          method,
          headers,
          agent: streaming ? this.streamAgent : this.agent,
          ca: auth.ca,
          cert: auth.cert,
          key: auth.key,
          rejectUnauthorized: auth.rejectUnauthorized,
          servername: auth.servername,
          signal,
        },
        (res) => {
          observe(res.statusCode);
          if ((res.statusCode ?? 500) >= 400) {
            readBody(res)
              .then((text) =>
                reject(toApiError(res.statusCode ?? 500, text, res.headers['retry-after'])),
              )
              .catch(reject);
            return;
          }
          resolve(res);
        },
      );
      const timeoutMs = options.timeoutMs ?? (streaming ? 0 : this.requestTimeoutMs);
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () =>
          req.destroy(
            new KubeApiError(504, 'ClientTimeout', `request timed out after ${timeoutMs} ms`),
          ),
        );
      }
      req.once('close', release);
      req.on('error', (err) => {
        observe(undefined);
        reject(
          err instanceof KubeApiError ? err : new KubeApiError(0, 'NetworkError', err.message),
        );
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  /**
   * One API call. A 401 drops the cached credentials and tries once more; 429 and 5xx are
   * retried for idempotent requests (Retry-After, else capped backoff) and surfaced otherwise.
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await withRetries(() => this.open(method, path, options, false), {
      onUnauthorized: () => this.clearCredentials(),
      idempotent: isIdempotent(method, options.body),
      signal: options.signal,
    });
    const text = await readBody(res);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Opens a long-lived response (watch, follow logs); the caller consumes and destroys it. */
  stream(path: string, options: RequestOptions = {}): Promise<IncomingMessage> {
    return withRetries(() => this.open('GET', path, options, true), {
      onUnauthorized: () => this.clearCredentials(),
      idempotent: false,
      signal: options.signal,
    });
  }

  /** Forgets cached credentials (a rotated token or an expired exec-plugin credential). */
  clearCredentials(): void {
    this.authCache = undefined;
    this.connection.invalidate?.();
  }

  /** Opens a WebSocket to a subresource such as pods/exec. */
  async webSocket(
    path: string,
    query: Array<[string, string]>,
    protocols: string[],
  ): Promise<WebSocket> {
    try {
      return await this.openWebSocket(path, query, protocols);
    } catch (err) {
      if (!isUnauthorized(err)) throw err;
      this.clearCredentials();
      return this.openWebSocket(path, query, protocols);
    }
  }

  private async openWebSocket(
    path: string,
    query: Array<[string, string]>,
    protocols: string[],
  ): Promise<WebSocket> {
    await this.limiter.take();
    this.requestCounts.set('GET websocket', (this.requestCounts.get('GET websocket') ?? 0) + 1);
    const url = this.buildUrl(path);
    for (const [k, v] of query) url.searchParams.append(k, v);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const auth = await this.authOptions();
    // ws hands these options to https.request and tls.connect (servername and header lists too).
    const wsOptions = {
      headers: auth.headers as Record<string, string> | undefined,
      ca: auth.ca,
      cert: auth.cert,
      key: auth.key,
      rejectUnauthorized: auth.rejectUnauthorized,
      servername: auth.servername,
      // An upgrade the server never answers is an error, like any request that times out.
      handshakeTimeout: this.requestTimeoutMs,
    };
    // ws is loaded with the first exec or attach, not with the operator (~1 MiB of RSS).
    const { default: Socket } = await import('ws');
    const ws = new Socket(url, protocols, wsOptions);
    return new Promise<WebSocket>((resolve, reject) => {
      const onUnexpected = (_req: unknown, res: IncomingMessage): void => {
        readBody(res)
          .then((text) =>
            reject(toApiError(res.statusCode ?? 500, text, res.headers['retry-after'])),
          )
          .catch(reject);
      };
      ws.once('unexpected-response', onUnexpected);
      ws.once('open', () => {
        ws.off('unexpected-response', onUnexpected);
        resolve(ws);
      });
      ws.once('error', (err) => reject(new KubeApiError(0, 'NetworkError', err.message)));
    });
  }

  /** Closes pooled connections so the process can exit. */
  close(): void {
    this.agent.destroy();
    this.streamAgent.destroy();
  }

  resource<T extends KubeObject>(type: ResourceType): ResourceClient<T> {
    return new ResourceClient<T>(this, type);
  }
}

function fromKubeConfig(kc: KubeConfig): ClusterConnection {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  return {
    server: cluster.server,
    requestOptions: async () => {
      const opts: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      const { ca, cert, key, rejectUnauthorized, servername, headers } = opts;
      return {
        ca,
        cert,
        key,
        rejectUnauthorized,
        servername,
        headers: headers as OutgoingHttpHeaders,
      };
    },
  };
}
