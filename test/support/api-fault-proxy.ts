/**
 * An API fault proxy for tests: an HTTPS server on 127.0.0.1 in front of the test cluster's
 * kube-apiserver. TLS is terminated with the API server's own certificate (signed by the
 * cluster CA, valid for 127.0.0.1) and re-originated with the cluster's admin client
 * certificate. Each client gets its own port and kubeconfig, so rules, partitions and
 * counters are per client. Rules are in api-fault-rules.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  chooseFaults,
  describeRequest,
  requestsPerSecond,
  statusBody,
  writesForwardedSince,
  type FaultRule,
  type RecordedRequest,
} from './api-fault-rules.ts';

export type PartitionMode =
  /** Every request and connection of the client is reset at once. */
  | 'reset'
  /**
   * Requests are held and watch events stop, as packets lost in a network; when it heals,
   * held requests whose client still waits are forwarded (TCP retransmission), the rest dropped.
   */
  | 'blackhole';

export interface ProxyClient {
  name: string;
  port: number;
  /** A kubeconfig like the cluster's, whose server is this client's port. */
  kubeconfig: string;
  rules: FaultRule[];
  readonly records: readonly RecordedRequest[];
  /** Partitions the client now; heals after `ms` if given. */
  partition(mode: PartitionMode, ms?: number): void;
  heal(): void;
  readonly partitioned: PartitionMode | undefined;
  /** Requests received per second in [from, to). */
  requestsPerSecond(from: number, to?: number): number[];
  /** Writes (POST/PUT/PATCH/DELETE) that reached kube-apiserver at or after `since`. */
  writesSince(since: number): RecordedRequest[];
}

export interface ApiFaultProxy {
  /** A new client: its own port and kubeconfig. */
  addClient(name: string): Promise<ProxyClient>;
  client(name: string): ProxyClient;
  close(): Promise<void>;
}

interface Upstream {
  host: string;
  port: number;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  kubeconfigText: string;
}

function readUpstream(kubeconfig: string): Upstream & { serverCert: Buffer; serverKey: Buffer } {
  const text = readFileSync(kubeconfig, 'utf8');
  const field = (name: string): string => {
    const value = new RegExp(`${name}:\\s*(\\S+)`).exec(text)?.[1];
    if (!value) throw new Error(`${kubeconfig} has no ${name}`);
    return value;
  };
  const server = new URL(field('server'));
  const caPath = field('certificate-authority');
  const pki = path.dirname(caPath);
  return {
    host: server.hostname,
    port: Number(server.port),
    ca: readFileSync(caPath),
    cert: readFileSync(field('client-certificate')),
    key: readFileSync(field('client-key')),
    serverCert: readFileSync(path.join(pki, 'apiserver.crt')),
    serverKey: readFileSync(path.join(pki, 'apiserver.key')),
    kubeconfigText: text,
  };
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host'];

class Client implements ProxyClient {
  rules: FaultRule[] = [];
  readonly records: RecordedRequest[] = [];
  port = 0;
  kubeconfig = '';
  partitioned: PartitionMode | undefined;
  private healTimer?: NodeJS.Timeout;
  private healed?: { promise: Promise<void>; resolve: () => void };
  private readonly sockets = new Set<net.Socket | Duplex>();
  private readonly streams = new Set<IncomingMessage>();
  readonly server: https.Server;

  constructor(
    readonly name: string,
    private readonly upstream: Upstream,
    private readonly agent: https.Agent,
    private readonly random: () => number,
    credentials: { cert: Buffer; key: Buffer },
  ) {
    this.server = https.createServer({ ...credentials, keepAlive: true }, (req, res) => {
      void this.handle(req, res).catch(() => res.destroy());
    });
    this.server.on('connection', (socket: net.Socket) => this.track(socket));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
  }

  private track(socket: net.Socket | Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  partition(mode: PartitionMode, ms?: number): void {
    clearTimeout(this.healTimer);
    this.partitioned = mode;
    if (!this.healed) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.healed = { promise, resolve };
    }
    if (mode === 'reset') for (const s of this.sockets) resetSocket(s);
    else for (const s of this.streams) s.pause();
    if (ms !== undefined) this.healTimer = setTimeout(() => this.heal(), ms);
  }

  heal(): void {
    clearTimeout(this.healTimer);
    this.partitioned = undefined;
    for (const s of this.streams) s.resume();
    this.healed?.resolve();
    this.healed = undefined;
  }

  requestsPerSecond(from: number, to = Date.now()): number[] {
    return requestsPerSecond(this.records, from, to);
  }

  writesSince(since: number): RecordedRequest[] {
    return writesForwardedSince(this.records, since);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const record: RecordedRequest = {
      ...describeRequest(req.method ?? 'GET', req.url ?? '/'),
      at: Date.now(),
      outcome: 'pending',
    };
    this.records.push(record);
    // A client that gives up while its request waits here (read, delayed or held) is gone.
    res.once('close', () => {
      if (record.outcome === 'pending') record.outcome = 'dropped';
    });
    const body = await readAll(req);
    if (record.write) record.body = body.subarray(0, 4096).toString('utf8');
    const faults = chooseFaults(this.rules, record, this.random);
    if (faults.delayMs > 0) await new Promise((r) => setTimeout(r, faults.delayMs));
    while (this.partitioned === 'blackhole' && this.healed) await this.healed.promise;
    if (this.partitioned === 'reset') {
      record.outcome = 'partitioned';
      return resetSocket(req.socket);
    }
    if (req.socket.destroyed || res.destroyed) {
      record.outcome = 'dropped';
      return;
    }
    const rule = faults.rule;
    if (rule?.kind === 'reset') {
      record.outcome = 'reset';
      return resetSocket(req.socket);
    }
    if (rule?.kind === 'status') {
      record.outcome = 'status';
      record.status = rule.code;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (rule.retryAfterSeconds !== undefined)
        headers['retry-after'] = String(rule.retryAfterSeconds);
      res.writeHead(rule.code, headers).end(statusBody(rule.code));
      return;
    }
    if (rule?.kind === 'endWatch') {
      record.outcome = 'endWatch';
      record.status = 200;
      res.writeHead(200, { 'content-type': 'application/json' }).end();
      return;
    }
    this.forward(req, res, body, record, {
      resetWatch: rule?.kind === 'resetWatch' ? rule : undefined,
      lagMs: rule?.kind === 'lagWatch' ? rule.ms : 0,
    });
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    record: RecordedRequest,
    watchFaults: { resetWatch?: { minMs: number; maxMs: number }; lagMs: number },
  ): void {
    const { resetWatch, lagMs } = watchFaults;
    // Timers of one duration fire in the order they were set, so a lagged stream keeps its order.
    const later = (send: () => void): void => {
      if (lagMs > 0) setTimeout(send, lagMs);
      else send();
    };
    const headers = { ...req.headers };
    for (const h of HOP_BY_HOP) delete headers[h];
    if (body.length) headers['content-length'] = String(body.length);
    record.outcome = 'forwarded';
    record.forwardedAt = Date.now();
    let done = false;
    const upstreamReq = https.request(
      {
        host: this.upstream.host,
        port: this.upstream.port,
        method: req.method,
        path: req.url,
        headers,
        agent: this.agent,
      },
      (upstreamRes) => {
        record.status = upstreamRes.statusCode;
        const resHeaders = { ...upstreamRes.headers };
        for (const h of HOP_BY_HOP) delete resHeaders[h];
        res.writeHead(upstreamRes.statusCode ?? 502, resHeaders);
        this.streams.add(upstreamRes);
        if (this.partitioned === 'blackhole') upstreamRes.pause();
        upstreamRes.on('data', (chunk: Buffer) => later(() => res.write(chunk)));
        upstreamRes.on('end', () => {
          done = true;
          later(() => res.end());
        });
        upstreamRes.on('close', () => {
          this.streams.delete(upstreamRes);
          later(() => {
            if (!res.writableEnded) res.destroy();
          });
        });
        if (resetWatch) {
          const ms = resetWatch.minMs + this.random() * (resetWatch.maxMs - resetWatch.minMs);
          setTimeout(() => resetSocket(req.socket), ms).unref();
        }
      },
    );
    upstreamReq.on('error', () => resetSocket(req.socket));
    res.on('close', () => {
      if (!done) upstreamReq.destroy();
    });
    upstreamReq.end(body);
  }

  /** WebSockets (exec, attach): counted, refused while partitioned, else piped raw over TLS. */
  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.track(socket);
    const record: RecordedRequest = {
      ...describeRequest(req.method ?? 'GET', req.url ?? '/'),
      at: Date.now(),
      outcome: 'pending',
    };
    this.records.push(record);
    if (this.partitioned) {
      record.outcome = 'partitioned';
      return resetSocket(socket);
    }
    record.outcome = 'forwarded';
    record.forwardedAt = Date.now();
    const { host, port, ca, cert, key } = this.upstream;
    const upstream = tls.connect({ host, port, ca, cert, key, servername: 'localhost' }, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    this.track(upstream);
    const drop = (): void => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.on('error', drop).on('close', drop);
    socket.on('error', drop).on('close', drop);
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}

/** A TCP reset where the socket allows it (not a TLS socket's wrapped handle): else a close. */
function resetSocket(socket: net.Socket | Duplex): void {
  try {
    if (socket instanceof net.Socket) return void socket.resetAndDestroy();
  } catch {
    // fall through
  }
  socket.destroy();
}

/**
 * Starts the proxy for the cluster of `kubeconfig` (the test cluster's by default). `random`
 * decides which rules fire (seed it to replay a run).
 */
export async function startApiFaultProxy(
  options: { kubeconfig?: string; random?: () => number } = {},
): Promise<ApiFaultProxy> {
  const kubeconfig = options.kubeconfig ?? process.env.KUBECONFIG ?? '';
  const upstream = readUpstream(kubeconfig);
  const random = options.random ?? Math.random;
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 256,
    ca: upstream.ca,
    cert: upstream.cert,
    key: upstream.key,
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-runner-fault-proxy-'));
  const clients = new Map<string, Client>();
  const addClient = async (name: string): Promise<ProxyClient> => {
    if (clients.has(name)) throw new Error(`proxy client ${name} exists`);
    const client = new Client(name, upstream, agent, random, {
      cert: upstream.serverCert,
      key: upstream.serverKey,
    });
    await new Promise<void>((resolve) => client.server.listen(0, '127.0.0.1', resolve));
    client.port = (client.server.address() as net.AddressInfo).port;
    client.kubeconfig = path.join(dir, `${name}-${randomBytes(3).toString('hex')}.kubeconfig`);
    writeFileSync(
      client.kubeconfig,
      upstream.kubeconfigText.replace(/server:\s*\S+/, `server: https://127.0.0.1:${client.port}`),
    );
    clients.set(name, client);
    return client;
  };
  return {
    addClient,
    client(name) {
      const existing = clients.get(name);
      if (existing) return existing;
      throw new Error(`no proxy client ${name}: add it with addClient`);
    },
    async close() {
      for (const c of clients.values()) {
        c.heal();
        c.destroyAll();
        await new Promise<void>((resolve) => c.server.close(() => resolve()));
      }
      agent.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
