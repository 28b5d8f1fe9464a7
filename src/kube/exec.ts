import type WebSocket from 'ws';
import type { KubeClient } from './client.ts';
import { resourcePath } from './resources.ts';
import { PODS } from './resources.ts';

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  command: string[];
  stdin: boolean;
  tty: boolean;
}

export interface ExecResult {
  exitCode: number;
  /** Set when the remote side reported a failure other than a non-zero exit. */
  error?: string;
  /**
   * The connection ended before the API server reported a status: the command's outcome
   * is unknown (it may still run).
   */
  connectionLost?: boolean;
}

export const CONNECTION_LOST =
  'the connection to the container was lost before the command reported its exit status';

export interface ExecHandlers {
  onStdout(data: Buffer): void;
  onStderr(data: Buffer): void;
}

/**
 * One exec session over the v5.channel.k8s.io WebSocket subprotocol, which can close
 * stdin on its own so that EOF reaches the remote process.
 */
export class ExecSession {
  readonly result: Promise<ExecResult>;
  private closed = false;
  /** Stdin bytes handed to the WebSocket that its socket has not written yet. */
  private buffered = 0;
  private readonly roomWaiters = new Set<() => void>();

  constructor(
    private readonly ws: WebSocket,
    handlers: ExecHandlers,
  ) {
    this.result = new Promise<ExecResult>((resolve) => {
      let status: ExecResult | undefined;
      ws.on('message', (raw: Buffer) => {
        if (raw.length === 0) return;
        const channel = raw[0];
        const data = raw.subarray(1);
        if (channel === STDOUT) handlers.onStdout(data);
        else if (channel === STDERR) handlers.onStderr(data);
        else if (channel === ERROR && data.length > 0) status = parseStatus(data.toString('utf8'));
      });
      // The API server always ends a session with a Status on the error channel, success
      // included; a close without one means the connection dropped.
      const lost = (detail?: string): ExecResult => ({
        exitCode: -1,
        error: detail ? `${CONNECTION_LOST}: ${detail}` : CONNECTION_LOST,
        connectionLost: true,
      });
      ws.on('close', () => {
        this.markClosed();
        resolve(status ?? lost());
      });
      ws.on('error', (err) => {
        this.markClosed();
        resolve(status ?? lost(err.message));
      });
    });
  }

  write(data: Buffer): void {
    if (this.closed || data.length === 0) return;
    const frame = Buffer.concat([Buffer.from([STDIN]), data]);
    this.buffered += frame.length;
    this.ws.send(frame, () => {
      this.buffered -= frame.length;
      this.wake();
    });
  }

  /** Stdin bytes written to the session and still in the operator's memory. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Resolves once at most `bytes` of stdin are buffered, or the session has closed. */
  bufferedAtMost(bytes: number): Promise<void> {
    if (this.closed || this.buffered <= bytes) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.closed || this.buffered <= bytes) {
          this.roomWaiters.delete(check);
          resolve();
        }
      };
      this.roomWaiters.add(check);
    });
  }

  private wake(): void {
    for (const waiter of [...this.roomWaiters]) waiter();
  }

  private markClosed(): void {
    this.closed = true;
    this.wake();
  }

  /** Closes stdin; the remote process reads EOF. */
  endStdin(): void {
    if (this.closed) return;
    this.ws.send(Buffer.from([CLOSE, STDIN]));
  }

  resize(cols: number, rows: number): void {
    if (this.closed) return;
    const body = Buffer.from(JSON.stringify({ Width: cols, Height: rows }));
    this.ws.send(Buffer.concat([Buffer.from([RESIZE]), body]));
  }

  close(): void {
    if (!this.closed) this.ws.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

export async function startExec(
  client: KubeClient,
  request: ExecRequest,
  handlers: ExecHandlers,
): Promise<ExecSession> {
  const query: Array<[string, string]> = [
    ['container', request.container],
    ['stdout', 'true'],
    ['stderr', request.tty ? 'false' : 'true'],
    ['stdin', request.stdin ? 'true' : 'false'],
    ['tty', request.tty ? 'true' : 'false'],
  ];
  for (const arg of request.command) query.push(['command', arg]);
  const ws = await client.webSocket(
    resourcePath(PODS, request.namespace, request.pod, 'exec'),
    query,
    ['v5.channel.k8s.io'],
  );
  if (ws.protocol !== 'v5.channel.k8s.io') {
    ws.close();
    throw new Error(
      `API server did not accept the v5.channel.k8s.io exec protocol (got "${ws.protocol}")`,
    );
  }
  return new ExecSession(ws, handlers);
}

interface StatusLike {
  status?: string;
  message?: string;
  reason?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

export function parseStatus(text: string): ExecResult {
  let status: StatusLike;
  try {
    status = JSON.parse(text) as StatusLike;
  } catch {
    return { exitCode: -1, error: text };
  }
  if (status.status === 'Success') return { exitCode: 0 };
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  if (cause?.message && /^-?\d+$/.test(cause.message)) return { exitCode: Number(cause.message) };
  // Some kubelets (kwok among them) only report "exit status N" inside the message.
  const match = /exit status (\d+)/.exec(status.message ?? '');
  if (match?.[1]) return { exitCode: Number(match[1]) };
  return { exitCode: -1, error: status.message ?? 'exec failed' };
}

/** Runs a command to completion, collecting its output (small outputs only). */
export async function execCollect(
  client: KubeClient,
  request: Omit<ExecRequest, 'tty' | 'stdin'> & { input?: Buffer },
): Promise<ExecResult & { stdout: Buffer; stderr: Buffer }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const session = await startExec(
    client,
    { ...request, stdin: request.input !== undefined, tty: false },
    { onStdout: (d) => out.push(Buffer.from(d)), onStderr: (d) => err.push(Buffer.from(d)) },
  );
  if (request.input !== undefined) {
    session.write(request.input);
    session.endStdin();
  }
  const result = await session.result;
  return { ...result, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}
