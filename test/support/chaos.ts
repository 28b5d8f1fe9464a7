/**
 * Fault-injection support: a private control plane per test file (never the shared one,
 * since these tests kill its components), the operator as a child process on it, a TCP
 * proxy that takes the platform gateway away and brings it back, and the invariants every
 * fault test checks afterwards.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Metadata, credentials, status, type ServiceError } from '@grpc/grpc-js';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { AgentWorkload } from '../../src/api/agentworkload.ts';
import { LABELS, MANAGED_BY_VALUE } from '../../src/api/common.ts';
import {
  RemoveWorkloadRequest,
  RunnerServiceClient,
  StartWorkloadRequest,
  type StartWorkloadResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/errors.ts';
import { PODS, SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS, RUNNERS } from '../../src/api/resources.ts';
import { startOperator, type OperatorProcess } from './operator-process.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const script = path.join(root, 'scripts/test-cluster');

export type Workload = AgentWorkload & KubeObject;
type Pod = IPod & KubeObject;
type Secret = ISecret & KubeObject;

/** A size from the environment (to scale a test up to the issue's sizes), else the default. */
export function sizeFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

/** mulberry32: a small seeded generator, so a failing run can be replayed with CHAOS_SEED. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function chaosSeed(): number {
  return Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A control plane of this test file's own, in a fresh temporary state directory. */
export interface PrivateCluster {
  dir: string;
  kubeconfig: string;
  binDir: string;
  /** A client of this cluster (closed by down()). */
  client: KubeClient;
  /**
   * SIGKILLs one component, keeps it down `downSeconds`, and starts it again with the exact
   * command line it ran with (scripts/test-cluster restart-component); resolves once it is
   * healthy again.
   */
  restartComponent(
    name: 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok',
    downSeconds?: number,
  ): Promise<void>;
  /** Compacts etcd at its current revision: every older resource version is gone (watches expire). */
  compactEtcd(): Promise<number>;
  down(): Promise<void>;
}

export async function startPrivateCluster(): Promise<PrivateCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'k8s-runner-chaos-'));
  // kwok nodes only: these tests kill control-plane components, not a real kubelet.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    K8S_RUNNER_CLUSTER_DIR: dir,
    K8S_RUNNER_REAL_NODE: '0',
  };
  delete env.KUBECONFIG;
  const scriptRun = (args: string[], timeout: number) =>
    run('bash', [script, ...args], { env, timeout, maxBuffer: 16 * 1024 * 1024 });
  let client: KubeClient | undefined;
  const down = async (): Promise<void> => {
    client?.close();
    await Promise.all([...(operatorsOf.get(dir) ?? [])].map((o) => o.stop('SIGKILL')));
    operatorsOf.delete(dir);
    if (process.env.CHAOS_KEEP_CLUSTER === '1') {
      process.stderr.write(
        `chaos: keeping the private cluster in ${dir} (K8S_RUNNER_CLUSTER_DIR=${dir} scripts/test-cluster down)\n`,
      );
      return;
    }
    await scriptRun(['down'], 60_000).catch((err: unknown) => {
      process.stderr.write(`chaos: could not stop the private cluster in ${dir}: ${String(err)}\n`);
    });
  };
  try {
    const { stdout } = await scriptRun(['up'], 600_000);
    const line = stdout.split('\n').find((l) => l.startsWith('KUBECONFIG='));
    if (!line) throw new Error(`scripts/test-cluster up printed no KUBECONFIG: ${stdout}`);
    const kubeconfig = line.slice('KUBECONFIG='.length);
    const ports = await readFile(path.join(dir, 'ports.env'), 'utf8');
    const binDir = /BIN_DIR=(.*)/.exec(ports)?.[1] ?? '';
    const kubectl = path.join(binDir, 'kubectl');
    await run(kubectl, [
      '--kubeconfig',
      kubeconfig,
      'apply',
      '--server-side',
      '-f',
      path.join(root, 'crds'),
    ]);
    await run(kubectl, [
      '--kubeconfig',
      kubeconfig,
      'wait',
      '--for=condition=Established',
      'crd',
      '--all',
      '--timeout=60s',
    ]);
    client = KubeClient.fromEnvironment(kubeconfig);
    const etcdPort = /ETCD_PORT=(\d+)/.exec(ports)?.[1];
    return {
      dir,
      kubeconfig,
      binDir,
      client,
      async restartComponent(name, downSeconds = 0) {
        await scriptRun(['restart-component', name, String(downSeconds)], 180_000);
      },
      async compactEtcd() {
        const base = `http://127.0.0.1:${etcdPort}/v3/kv`;
        const range = (await (
          await fetch(`${base}/range`, { method: 'POST', body: '{"key":"AA=="}' })
        ).json()) as {
          header: { revision: string };
        };
        const revision = Number(range.header.revision);
        const res = await fetch(`${base}/compaction`, {
          method: 'POST',
          body: JSON.stringify({ revision: String(revision), physical: true }),
        });
        if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
        return revision;
      },
      down,
    };
  } catch (err) {
    await down();
    throw err;
  }
}

export interface ChaosOperatorOptions {
  name: string;
  /** The operator's namespace (Runners, tokens). */
  namespace: string;
  /** Where the workloads live: never the operator's namespace. */
  workloadNamespace: string;
  /** Keep the gRPC port across restarts (clients reconnect to the same address). */
  grpcPort?: number;
  env?: Record<string, string>;
}

/** The operator on the private cluster: one replica without leader election, gRPC without auth. */
/** Operators started on each private cluster (by state dir), so down() can end any a failed test left. */
const operatorsOf = new Map<string, Set<OperatorProcess>>();

export async function startChaosOperator(
  cluster: PrivateCluster,
  options: ChaosOperatorOptions,
): Promise<OperatorProcess> {
  const operator = await startOperator({
    name: options.name,
    env: {
      KUBECONFIG: cluster.kubeconfig,
      OPERATOR_NAMESPACE: options.namespace,
      WORKLOAD_NAMESPACE: options.workloadNamespace,
      LEADER_ELECTION: 'false',
      GRPC_AUTH_MODE: 'insecure',
      GRPC_PORT: String(options.grpcPort ?? 0),
      LOG_LEVEL: 'info',
      // The simulator's hooks (sim.agyn.io/*) reach Pods only because the test says so.
      POD_ANNOTATION_PREFIXES: 'pod.agyn.io/,sim.agyn.io/',
      ...options.env,
    },
  });
  const started = operatorsOf.get(cluster.dir) ?? new Set();
  started.add(operator);
  operatorsOf.set(cluster.dir, started);
  return operator;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function grpcClient(port: number): RunnerServiceClient {
  return new RunnerServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), {
    // The operator restarts under the tests: reconnect quickly.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1_000,
  });
}

/** A TCP forwarder on a fixed loopback port that can refuse connections for a while. */
export interface TcpProxy {
  port: number;
  url: string;
  /** Closes the listener and every connection: the target is unreachable. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, scheme = 'grpc'): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = net.createServer((inbound) => {
        const outbound = net.connect(targetPort, '127.0.0.1');
        sockets.add(inbound);
        sockets.add(outbound);
        const drop = (): void => {
          inbound.destroy();
          outbound.destroy();
          sockets.delete(inbound);
          sockets.delete(outbound);
        };
        inbound.on('error', drop).on('close', drop);
        outbound.on('error', drop).on('close', drop);
        inbound.pipe(outbound);
        outbound.pipe(inbound);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const cut = async (): Promise<void> => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    cut,
    restore: () => (server ? Promise.resolve() : listen()),
    close: cut,
  };
}

/** What a workload must end as: a phase, and a failure reason for Failed. */
export interface Expected {
  phase: string;
  reason?: string;
}

export interface ClusterState {
  workloads: Workload[];
  pods: Pod[];
  secrets: Secret[];
  runners: KubeObject[];
}

export async function readState(client: KubeClient, namespace: string): Promise<ClusterState> {
  const [workloads, pods, secrets, runners] = await Promise.all([
    client.resource<Workload>(AGENT_WORKLOADS).list(namespace),
    client.resource<Pod>(PODS).list(namespace),
    client.resource<Secret>(SECRETS).list(namespace),
    client.resource<KubeObject>(RUNNERS).list(namespace),
  ]);
  return {
    workloads: workloads.items,
    pods: pods.items,
    secrets: secrets.items,
    runners: runners.items,
  };
}

/**
 * Every way the namespace differs from the invariants of the fault tests:
 * - every workload in `expected` exists and shows its true phase (and reason) for its
 *   current generation; no other workload exists (deleted ones are gone: finalizers ran);
 * - a managed Pod has a controller reference to a live AgentWorkload (same uid), at most one
 *   Pod per workload, and a workload that should run has exactly one;
 * - every Secret of a workload (label agyn.io/workload-id) is owned by a live AgentWorkload,
 *   and every other Secret the operator manages (a runner identity) by a live Runner.
 */
export function violations(state: ClusterState, expected: ReadonlyMap<string, Expected>): string[] {
  const problems: string[] = [];
  const live = new Map<string, Workload>();
  for (const w of state.workloads) live.set(w.metadata?.uid ?? '', w);
  const byName = new Map(state.workloads.map((w) => [w.metadata?.name ?? '', w]));
  for (const [name, want] of expected) {
    const w = byName.get(name);
    if (!w) {
      problems.push(`workload ${name} is missing (expected ${want.phase})`);
      continue;
    }
    const s = w.status;
    if (w.metadata?.deletionTimestamp) problems.push(`workload ${name} is stuck deleting`);
    if (s?.phase !== want.phase || (want.reason !== undefined && s?.reason !== want.reason)) {
      problems.push(
        `workload ${name} is ${s?.phase ?? 'without phase'}${s?.reason ? `/${s.reason}` : ''}` +
          ` (${s?.message ?? ''}), expected ${want.phase}${want.reason ? `/${want.reason}` : ''}`,
      );
    }
    if (s?.observedGeneration !== w.metadata?.generation) {
      problems.push(
        `workload ${name}: status is for generation ${s?.observedGeneration}, not ${w.metadata?.generation}`,
      );
    }
  }
  for (const name of byName.keys()) {
    if (!expected.has(name))
      problems.push(`workload ${name} should not exist (deleted or never started)`);
  }
  const podsPerOwner = new Map<string, string[]>();
  for (const pod of state.pods) {
    if (pod.metadata?.labels?.[LABELS.managedBy] !== MANAGED_BY_VALUE) continue;
    const name = pod.metadata?.name ?? '';
    const owner = pod.metadata?.ownerReferences?.find(
      (r) => r.controller && r.kind === 'AgentWorkload',
    );
    if (!owner || !live.has(owner.uid)) {
      problems.push(
        `Pod ${name} is orphaned (owner ${owner ? `${owner.name}/${owner.uid}` : 'none'} is gone)`,
      );
      continue;
    }
    const list = podsPerOwner.get(owner.uid) ?? [];
    list.push(name);
    podsPerOwner.set(owner.uid, list);
  }
  for (const [uid, pods] of podsPerOwner) {
    if (pods.length > 1)
      problems.push(
        `workload ${live.get(uid)?.metadata?.name} has ${pods.length} Pods: ${pods.join(', ')}`,
      );
  }
  for (const [name, want] of expected) {
    const w = byName.get(name);
    if (!w || want.phase !== 'Running') continue;
    if ((podsPerOwner.get(w.metadata?.uid ?? '') ?? []).length !== 1)
      problems.push(`running workload ${name} has no Pod`);
  }
  const byWorkloadId = new Map<string, string[]>();
  for (const pod of state.pods) {
    const id = pod.metadata?.labels?.[LABELS.workloadId];
    if (!id || pod.metadata?.deletionTimestamp) continue;
    byWorkloadId.set(id, [...(byWorkloadId.get(id) ?? []), pod.metadata?.name ?? '']);
  }
  for (const [id, pods] of byWorkloadId) {
    if (pods.length > 1)
      problems.push(`workload id ${id} has ${pods.length} live Pods: ${pods.join(', ')}`);
  }
  const runners = new Set(state.runners.map((r) => r.metadata?.uid ?? ''));
  for (const secret of state.secrets) {
    const labels = secret.metadata?.labels ?? {};
    const owners = secret.metadata?.ownerReferences ?? [];
    if (!labels[LABELS.workloadId]) {
      // The operator's other Secrets are runner identities, owned by their live Runner.
      if (
        labels[LABELS.managedBy] === MANAGED_BY_VALUE &&
        !owners.some((r) => r.kind === 'Runner' && runners.has(r.uid))
      ) {
        problems.push(`Secret ${secret.metadata?.name} has no live Runner owner`);
      }
      continue;
    }
    if (!owners.some((r) => r.kind === 'AgentWorkload' && live.has(r.uid))) {
      problems.push(
        `Secret ${secret.metadata?.name} is orphaned (owners: ${owners.map((r) => `${r.kind}/${r.name}`).join(', ') || 'none'})`,
      );
    }
  }
  return problems;
}

/** Polls until the namespace satisfies the invariants; fails with what still differs. */
export async function waitForInvariants(
  client: KubeClient,
  namespace: string,
  expected: ReadonlyMap<string, Expected>,
  timeoutMs: number,
): Promise<{ ms: number; state: ClusterState }> {
  const started = Date.now();
  let last: string[] = [];
  let lastState: ClusterState | undefined;
  let shown = started;
  for (;;) {
    try {
      const state = await readState(client, namespace);
      lastState = state;
      last = violations(state, expected);
      if (last.length === 0) return { ms: Date.now() - started, state };
    } catch (err) {
      last = [`could not read the cluster: ${String(err)}`];
    }
    if (process.env.CHAOS_VERBOSE && Date.now() - shown > 5_000) {
      shown = Date.now();
      process.stderr.write(
        `chaos: after ${shown - started} ms still ${last.length} problems, e.g.\n  ${last.slice(0, 3).join('\n  ')}\n`,
      );
    }
    if (Date.now() - started > timeoutMs) {
      const shown = last.slice(0, 25).join('\n  ');
      // What the Pods of the first workloads in question look like (the simulated kubelet's side).
      const pods = (lastState?.pods ?? [])
        .filter((p) => last.slice(0, 5).some((line) => line.includes(` ${p.metadata?.name} `)))
        .map((p) => {
          const c = p.status?.containerStatuses?.[0]?.state;
          return `${p.metadata?.name}: ${p.status?.phase} on ${p.spec?.nodeName ?? 'no node'}, first container ${JSON.stringify(c)}`;
        });
      throw new Error(
        `invariants still violated after ${timeoutMs} ms (${last.length} problems):\n  ${shown}` +
          (pods.length ? `\nPods:\n  ${pods.join('\n  ')}` : ''),
      );
    }
    await sleep(500);
  }
}

/** Retries `fn` while the API server (or the operator) is away; other errors are returned. */
export async function retrying<T>(
  fn: () => Promise<T>,
  isTransient: (err: unknown) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || Date.now() > deadline) throw err;
      await sleep(Math.min(100 * 2 ** attempt, 1_000));
    }
  }
}

/** A Kubernetes error that a retry may cure: no connection, overload, timeouts, restarts. */
export function transientKubeError(err: unknown): boolean {
  if (!(err instanceof KubeApiError)) return false;
  return err.statusCode === 0 || err.statusCode === 429 || err.statusCode >= 500;
}

/** A gRPC status that a retry may cure (the operator or its API server is away). */
export function transientGrpcError(err: unknown): boolean {
  const code = (err as Partial<ServiceError>).code;
  return (
    code === status.UNAVAILABLE ||
    code === status.INTERNAL ||
    code === status.DEADLINE_EXCEEDED ||
    code === status.UNKNOWN ||
    code === status.ABORTED ||
    code === status.CANCELLED
  );
}

export const grpcCode = (err: unknown): number | undefined => (err as Partial<ServiceError>).code;

function unaryCall<Req, Res>(
  invoke: (
    req: Req,
    md: Metadata,
    options: { deadline: number },
    cb: (err: ServiceError | null, res: Res) => void,
  ) => unknown,
  request: Req,
  deadlineMs: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke(request, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/** The StartWorkload every fault test sends: a pull credential and an inline file, so each start writes two Secrets. */
export function chaosStartRequest(
  workloadId: string,
  planted = { password: 'chaos-pull-password', file: '{"chaos":true}' },
): StartWorkloadRequest {
  return StartWorkloadRequest.fromPartial({
    workloadId,
    main: {
      name: 'main',
      image: 'registry.example.invalid/agent:1',
      inlineFileMounts: [{ path: '/etc/agent/config.json' }],
    },
    imagePullCredentials: [
      { registry: 'registry.example.invalid', username: 'chaos', password: planted.password },
    ],
    inlineFiles: { '/etc/agent/config.json': Buffer.from(planted.file) },
    labels: { 'chaos.agyn.io/test': 'yes' },
  });
}

/**
 * StartWorkload until it is answered for good: OK, or ALREADY_EXISTS (an earlier attempt
 * whose answer was lost created it). Returns the final gRPC code (0 for OK).
 */
export async function startUntilAnswered(
  client: () => RunnerServiceClient,
  request: StartWorkloadRequest,
  timeoutMs = 120_000,
): Promise<{ code: number; attempts: number; response?: StartWorkloadResponse }> {
  const deadline = Date.now() + timeoutMs;
  for (let attempts = 1; ; attempts++) {
    const c = client();
    try {
      const response = await unaryCall(c.startWorkload.bind(c), request, 15_000);
      return { code: 0, attempts, response };
    } catch (err) {
      if (grpcCode(err) === status.ALREADY_EXISTS) return { code: status.ALREADY_EXISTS, attempts };
      if (!transientGrpcError(err) || Date.now() > deadline) throw err;
      await sleep(Math.min(50 * 2 ** attempts, 1_000));
    }
  }
}

/** RemoveWorkload until it is answered for good: OK, or NOT_FOUND (already removed). */
export async function removeUntilAnswered(
  client: () => RunnerServiceClient,
  workloadId: string,
  timeoutMs = 120_000,
): Promise<{ code: number; attempts: number }> {
  const deadline = Date.now() + timeoutMs;
  for (let attempts = 1; ; attempts++) {
    const c = client();
    try {
      await unaryCall(
        c.removeWorkload.bind(c),
        RemoveWorkloadRequest.fromPartial({ workloadId }),
        15_000,
      );
      return { code: 0, attempts };
    } catch (err) {
      if (grpcCode(err) === status.NOT_FOUND) return { code: status.NOT_FOUND, attempts };
      if (!transientGrpcError(err) || Date.now() > deadline) throw err;
      await sleep(Math.min(50 * 2 ** attempts, 1_000));
    }
  }
}

/** Runs `worker` over `items` with at most `concurrency` at once. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  worker: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const loops = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await worker(items[index]!, index);
    }
  });
  await Promise.all(loops);
}
