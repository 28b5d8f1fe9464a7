import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runner } from '../../src/api/runner.ts';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { RUNNERS } from '../../src/api/resources.ts';
import { eventually } from './kube.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const logDir = path.join(os.tmpdir(), 'k8s-runner-operator-tests');

/** One pino JSON line of the operator (non-JSON lines are kept as `msg`). */
export interface LogLine {
  time: number;
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface OperatorProcess {
  name: string;
  pid: number;
  logFile: string;
  httpPort: number;
  grpcPort: number;
  httpUrl: string;
  /** Every line logged so far. */
  logs(): LogLine[];
  waitForLog(
    predicate: (line: LogLine) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<LogLine>;
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  get running(): boolean;
  /** Sends `signal` (SIGTERM by default) and waits for the exit; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function parseLines(text: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const raw of text.split('\n')) {
    if (!raw.trim()) continue;
    try {
      lines.push(JSON.parse(raw) as LogLine);
    } catch {
      lines.push({ time: 0, level: 0, msg: raw });
    }
  }
  return lines;
}

/**
 * Spawns `node --import tsx src/main.ts` with `env` on top of the test's environment (HTTP and
 * gRPC on free loopback ports), its stdout and stderr going to a file, and waits until it
 * logs "k8s-runner started" with the ports it bound.
 */
export async function startOperator(options: {
  name: string;
  env: Record<string, string>;
  startTimeoutMs?: number;
}): Promise<OperatorProcess> {
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${options.name}-${Date.now()}-${process.pid}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      ...options.env,
    },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  live.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  let ended = false;
  void exited.then(() => (ended = true));

  const logs = (): LogLine[] => parseLines(readFileSync(logFile, 'utf8'));
  const waitForLog = (predicate: (line: LogLine) => boolean, what: string, timeoutMs = 30_000) =>
    eventually(
      () => {
        const found = logs().find(predicate);
        if (found) return found;
        if (ended)
          throw new Error(
            `${options.name} exited; log ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`,
          );
        return undefined;
      },
      { timeoutMs, intervalMs: 50, what: `${options.name}: ${what} (log ${logFile})` },
    );

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> => {
    if (ended) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  try {
    const started = await waitForLog(
      (l) => l.msg === 'k8s-runner started',
      'startup',
      options.startTimeoutMs ?? 60_000,
    );
    const httpPort = Number(started.httpPort);
    return {
      name: options.name,
      pid: child.pid ?? -1,
      logFile,
      httpPort,
      grpcPort: Number(started.grpcPort),
      httpUrl: `http://127.0.0.1:${httpPort}`,
      logs,
      waitForLog,
      exited,
      get running() {
        return !ended;
      },
      stop,
    };
  } catch (err) {
    await stop('SIGKILL');
    throw err;
  }
}

/** GET on the operator's HTTP server: status and body. */
export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

/** Parses Prometheus text into `name{labels} value` samples. */
export function parseMetrics(
  text: string,
): { name: string; labels: Record<string, string>; value: number }[] {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!;
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** A token Secret and a Runner that enrolls against `gatewayUrl` with it. */
export async function createRunner(
  client: KubeClient,
  namespace: string,
  name: string,
  gatewayUrl: string,
  token: string,
  workloadNamespace = namespace,
): Promise<void> {
  await client.resource<KubeObject>(SECRETS).create(namespace, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `${name}-token`, namespace, labels: { 'agyn.io/runner-token': 'true' } },
    data: { token: Buffer.from(token).toString('base64') },
  } as KubeObject);
  await client.resource<Runner>(RUNNERS).create(namespace, {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'Runner',
    metadata: { name, namespace },
    spec: {
      gateway: { url: gatewayUrl, insecure: !/^(grpcs|https):/.test(gatewayUrl) },
      serviceToken: { secretRef: { name: `${name}-token`, key: 'token' } },
      workloadNamespace,
      storage: { defaultClass: 'standard' },
      capabilities: ['docker'],
      capabilityImplementations: { docker: 'rootless' },
    },
  } as unknown as Runner);
}

export async function waitForRunnerReady(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<Runner> {
  return eventually(
    async () => {
      const runner = await client.resource<Runner>(RUNNERS).get(namespace, name);
      const ready = runner.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'True' ? runner : undefined;
    },
    { timeoutMs: 30_000, what: `Runner ${name} Ready` },
  );
}
