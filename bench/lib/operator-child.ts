/**
 * The whole operator in a process of its own: src/main.ts itself (compiled, plain node, the
 * image's NODE_OPTIONS), standalone as the chart runs it without Runners (shim and
 * WorkloadController sharing their caches), insecure gRPC on a free loopback port, no
 * leader election. bench/lib/operator-probe.ts rides along to answer the parent.
 */
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BenchChild } from './bench-child.ts';
import { sleep } from './stats.ts';

export interface OperatorChildOptions {
  kubeconfig: string;
  /** WORKLOAD_NAMESPACE. */
  namespace: string;
  /** OPERATOR_NAMESPACE (Runners, operator Secrets); must differ from `namespace`. */
  operatorNamespace?: string;
  workers: number;
  qps: number;
  burst: number;
  /** Extra environment for main.ts (config overrides). */
  env?: Record<string, string>;
}

export interface OperatorChild {
  child: BenchChild;
  /** host:port of its gRPC listener. */
  address: string;
  httpPort: number;
  logFile: string;
  /** Stops the operator (main.ts's SIGTERM shutdown) and removes its log. */
  stop(): Promise<void>;
}

/** The operator's configuration (src/config.ts) for the benchmark. */
export function operatorEnv(o: OperatorChildOptions): Record<string, string> {
  return {
    KUBECONFIG: o.kubeconfig,
    WORKLOAD_NAMESPACE: o.namespace,
    OPERATOR_NAMESPACE: o.operatorNamespace ?? 'default',
    STANDALONE: 'true',
    LEADER_ELECTION: 'false',
    GRPC_AUTH_MODE: 'insecure',
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    WORKERS: String(o.workers),
    KUBE_API_QPS: String(o.qps),
    KUBE_API_BURST: String(o.burst),
    LOG_LEVEL: 'info',
    OTEL_EXPORTER_OTLP_ENDPOINT: '',
    ...o.env,
  };
}

/** The "k8s-runner started" line of main.ts's JSON log, if `text` has it. */
export function startedLine(text: string): { grpcPort: number; httpPort: number } | undefined {
  for (const line of text.split('\n')) {
    if (!line.includes('"k8s-runner started"')) continue;
    try {
      const parsed = JSON.parse(line) as { msg?: string; grpcPort?: unknown; httpPort?: unknown };
      const grpcPort = Number(parsed.grpcPort);
      const httpPort = Number(parsed.httpPort);
      if (parsed.msg === 'k8s-runner started' && grpcPort > 0 && httpPort > 0)
        return { grpcPort, httpPort };
    } catch {
      // A partly written line: the next poll reads it whole.
    }
  }
  return undefined;
}

/** Starts the operator and waits until it logged its ports and /readyz answers 200. */
export async function startOperatorChild(
  o: OperatorChildOptions,
  timeoutMs = 120_000,
): Promise<OperatorChild> {
  const logFile = path.join(
    os.tmpdir(),
    `k8s-runner-bench-operator-${process.pid}-${Date.now()}.log`,
  );
  const fd = openSync(logFile, 'w');
  const deadline = Date.now() + timeoutMs;
  const child = await BenchChild.start({
    entry: '../../src/main',
    preload: ['operator-probe'],
    env: operatorEnv(o),
    stdout: fd,
    ready: async (proc) => {
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`the operator exited; log ${logFile}`);
        const started = startedLine(readFileSync(logFile, 'utf8'));
        if (started && (await readyz(started.httpPort))) return started;
        if (Date.now() > deadline)
          throw new Error(`the operator did not become ready; log ${logFile}`);
        await sleep(100);
      }
    },
  }).finally(() => closeSync(fd));
  const { grpcPort, httpPort } = child.info as { grpcPort: number; httpPort: number };
  return {
    child,
    address: `127.0.0.1:${grpcPort}`,
    httpPort,
    logFile,
    async stop() {
      await child.stop();
      rmSync(logFile, { force: true });
    },
  };
}

async function readyz(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, {
      signal: AbortSignal.timeout(2_000),
    });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}
