/**
 * The chart as users install it, on a private real-node test cluster: kubectl and helm with
 * the cluster's registry trusted through SSL_CERT_FILE, `kubectl port-forward` on loopback,
 * an orchestrator-like gRPC client with the chart's bearer token, and a forwarder that lets
 * Pods reach a server of the test process (the test gateway) at the node IP.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { InterceptingCall, credentials, type Interceptor } from '@grpc/grpc-js';
import { RunnerServiceClient } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { binDir } from './kube.ts';
import type { PrivateRealNodeCluster } from './real-node.ts';
import { registryEnv } from './registry.ts';

const run = promisify(execFile);

/** The node IP of the test cluster's real node (scripts/test-cluster.d/real-node.sh). */
export const NODE_IP = '10.250.0.1';

export type Tool = (name: 'kubectl' | 'helm', ...args: string[]) => Promise<string>;

/** kubectl or helm against `cluster`, trusting its registry; errors carry stderr. */
export function clusterTool(cluster: PrivateRealNodeCluster): Tool {
  const env = { ...process.env, ...registryEnv(cluster.dir), KUBECONFIG: cluster.kubeconfig };
  return async (name, ...args) => {
    try {
      const { stdout } = await run(path.join(binDir(), name), args, {
        env,
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`${name} ${args.join(' ')}: ${e.message}\n${e.stderr ?? ''}`);
    }
  };
}

function stateValue(cluster: PrivateRealNodeCluster, key: string): string {
  const ports = readFileSync(path.join(cluster.dir, 'ports.env'), 'utf8');
  const value = new RegExp(`^${key}=(.+)$`, 'm').exec(ports)?.[1];
  if (!value) throw new Error(`${key} not found in ports.env`);
  return value;
}

/** A child process the test started, ended by its own pid. */
export interface Child {
  process: ChildProcess;
  exited: Promise<void>;
  stop(): Promise<void>;
}

function child(proc: ChildProcess): Child {
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    process: proc,
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Listens on NODE_IP:`port` inside the cluster's network namespace and forwards to
 * 127.0.0.1:`hostPort` of the machine (scripts/test-cluster.d/node-tools/netns-forward).
 */
export async function forwardNodeIpToHost(
  cluster: PrivateRealNodeCluster,
  port: number,
  hostPort: number,
): Promise<Child> {
  const tool = path.join(stateValue(cluster, 'NODE_TOOLS_DIR'), 'netns-forward');
  const proc = spawn(
    tool,
    ['-to-host', stateValue(cluster, 'NETNS_FILE'), `${NODE_IP}:${port}`, String(hostPort)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    let log = '';
    proc.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('forwarding')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`netns-forward exited (${code}): ${log}`)));
  });
  return child(proc);
}

export interface PortForward extends Child {
  /** The local port on 127.0.0.1. */
  port: number;
}

/** `kubectl port-forward <target> :<remotePort>` on 127.0.0.1; resolves once it listens. */
export async function portForward(
  cluster: PrivateRealNodeCluster,
  namespace: string,
  target: string,
  remotePort: number,
): Promise<PortForward> {
  const proc = spawn(
    path.join(binDir(), 'kubectl'),
    ['-n', namespace, 'port-forward', '--address', '127.0.0.1', target, `:${remotePort}`],
    { env: { ...process.env, KUBECONFIG: cluster.kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`kubectl port-forward exited (${code}): ${out}`)));
  });
  return { ...child(proc), port };
}

/** Adds `authorization: Bearer <token>` to every call, streams included. */
function bearerInterceptor(token: string): Interceptor {
  return (options, next) =>
    new InterceptingCall(next(options), {
      start(metadata, listener, nextStart) {
        metadata.set('authorization', `Bearer ${token}`);
        nextStart(metadata, listener);
      },
    });
}

/** An orchestrator-like client: plaintext gRPC to 127.0.0.1:`port` with the bearer token. */
export function orchestratorClient(port: number, token: string): RunnerServiceClient {
  return new RunnerServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), {
    interceptors: [bearerInterceptor(token)],
  });
}
