/**
 * The test cluster's real worker node (scripts/test-cluster.d/real-node.sh): its name, the
 * Runner settings that place workloads on it, its images, and a small Exec client.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import {
  ExecRequest,
  type DeepPartial,
  type ExecExit,
  type ExecResponse,
  type ExecStartRequest,
  type RunnerServiceClient,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { DEFAULT_WORKLOAD_SECURITY } from '../../src/api/runner.ts';
import type { RunnerSettings } from '../../src/workload/runner-settings.ts';
import type { GrpcHarness } from '../fixtures/grpc-harness.ts';
import { binDir } from './kube.ts';
import { fastRunner, getWorkload, type Workload } from './workloads.ts';

export const REAL_NODE = 'real-node-0';
export const REAL_NODE_LABEL = 'agyn.io/real-node';
export const REAL_NODE_STORAGE_CLASS = 'real-node';
/** Imported into the node's containerd by scripts/test-cluster; never pulled. */
export const BUSYBOX = 'k8s-runner.local/busybox:1';
/** Imported; busybox running as nobody (65534), for Runners that keep workloads non-root. */
export const BUSYBOX_NONROOT = 'k8s-runner.local/busybox-nonroot:1';
/** Imported; its config names a user its /etc/passwd lacks, so containers cannot be created. */
export const BAD_USER_IMAGE = 'k8s-runner.local/bad-user:1';
/** Not imported: pulling it fails (every registry host is a closed loopback port). */
export const MISSING_IMAGE = 'k8s-runner.local/not-imported:1';

const ZITI_NET_ADMIN = { ...DEFAULT_WORKLOAD_SECURITY.capabilities, ziti: ['NET_ADMIN' as const] };

/** A Runner whose workloads go to the real node (and only there) with its storage class. */
export function realNodeRunner(overrides: Partial<RunnerSettings> = {}): RunnerSettings {
  return fastRunner({
    name: 'real-node',
    storage: { defaultClass: REAL_NODE_STORAGE_CLASS, defaultSize: '1Gi' },
    scheduling: {
      nodeSelector: { [REAL_NODE_LABEL]: 'true' },
      tolerations: [{ key: REAL_NODE_LABEL, operator: 'Exists', effect: 'NoSchedule' }],
    },
    // busybox runs as root, and the agent layout's Ziti sidecar needs NET_ADMIN.
    security: { ...DEFAULT_WORKLOAD_SECURITY, allowRoot: true, capabilities: ZITI_NET_ADMIN },
    health: {
      startGraceSeconds: 20,
      initRetryThreshold: 2,
      crashloopThreshold: 2,
      runtimeLostGraceSeconds: 5,
    },
    ...overrides,
  });
}

/**
 * Waits until the workload of `id` (AgentWorkload `workload-<id>`, or `name`) reaches
 * `phase`; fails at once, with the operator's message, when it settles in another
 * terminal phase instead.
 */
export async function waitForWorkloadPhase(
  h: GrpcHarness,
  id: string,
  phase: 'Running' | 'Failed' | 'Stopped',
  timeoutMs = 90_000,
  name = `workload-${id}`,
): Promise<Workload> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const aw = await getWorkload(h.kube, h.ns.name, name);
    const now = aw.status?.phase;
    if (now === phase) return aw;
    if (now === 'Failed' || now === 'Stopped') {
      throw new Error(`workload ${name} is ${now} (${aw.status?.reason}): ${aw.status?.message}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for workload ${name} to reach ${phase} (it is ${now})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const run = promisify(execFile);

/** kubectl against the test cluster (for what the contract has no RPC for). */
export async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(path.join(binDir(), 'kubectl'), args, {
    env: process.env,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

export interface ExecOutcome {
  events: ExecResponse[];
  code: number;
  details: string;
  stdout: string;
  stderr: string;
  exit?: ExecExit;
  executionId?: string;
}

/** One Exec stream: send messages, then await `done` for what came back. */
export class ExecSession {
  readonly stream: ClientDuplexStream<ExecRequest, ExecResponse>;
  readonly events: ExecResponse[] = [];
  readonly done: Promise<ExecOutcome>;
  private onStarted?: () => void;
  private readonly waiters: Array<{ text: string; resolve: () => void }> = [];
  readonly started = new Promise<void>((resolve) => (this.onStarted = resolve));

  constructor(client: RunnerServiceClient) {
    this.stream = client.exec();
    this.stream.on('data', (e: ExecResponse) => {
      this.events.push(e);
      if (e.event?.$case === 'started') this.onStarted?.();
      const out = this.output('stdout');
      for (const w of this.waiters.filter((x) => out.includes(x.text))) w.resolve();
    });
    this.stream.on('error', () => {});
    this.done = new Promise((resolve) => {
      this.stream.on('status', (s: { code: number; details: string }) =>
        setImmediate(() => {
          const exit = this.events.find((e) => e.event?.$case === 'exit');
          const started = this.events.find((e) => e.event?.$case === 'started');
          resolve({
            events: this.events,
            code: s.code,
            details: s.details,
            stdout: this.output('stdout'),
            stderr: this.output('stderr'),
            exit: exit?.event?.$case === 'exit' ? exit.event.exit : undefined,
            executionId:
              started?.event?.$case === 'started' ? started.event.started.executionId : undefined,
          });
        }),
      );
    });
  }

  private output(which: 'stdout' | 'stderr'): string {
    return Buffer.concat(
      this.events.flatMap((e) => {
        if (e.event?.$case === 'stdout' && which === 'stdout') return [e.event.stdout.data];
        if (e.event?.$case === 'stderr' && which === 'stderr') return [e.event.stderr.data];
        return [];
      }),
    ).toString();
  }

  /** Resolves once stdout contains `text`. */
  stdoutContains(text: string): Promise<void> {
    if (this.output('stdout').includes(text)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ text, resolve }));
  }

  send(msg: DeepPartial<ExecRequest>): this {
    this.stream.write(ExecRequest.fromPartial(msg));
    return this;
  }

  start(start: DeepPartial<ExecStartRequest>): this {
    return this.send({ msg: { $case: 'start', start } });
  }

  stdin(data: string, eof = false): this {
    return this.send({ msg: { $case: 'stdin', stdin: { data: Buffer.from(data), eof } } });
  }
}

/** Runs one command to its end through Exec. */
export function exec(
  client: RunnerServiceClient,
  start: DeepPartial<ExecStartRequest>,
  stdin?: string,
): Promise<ExecOutcome> {
  const session = new ExecSession(client).start(start);
  if (stdin !== undefined) session.stdin(stdin, true);
  return session.done;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A cluster of one test file's own, with a real node (for tests that stop its kubelet). */
export interface PrivateRealNodeCluster {
  dir: string;
  kubeconfig: string;
  /** The running kubelet's process id. */
  kubeletPid(): number;
  down(): Promise<void>;
}

export async function startPrivateRealNodeCluster(): Promise<PrivateRealNodeCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-runner-realnode-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    K8S_RUNNER_CLUSTER_DIR: dir,
    K8S_RUNNER_REAL_NODE: '1',
  };
  delete env.KUBECONFIG;
  const script = path.join(root, 'scripts/test-cluster');
  const down = async () => {
    await run('bash', [script, 'down'], { env, timeout: 120_000 });
  };
  try {
    await run('bash', [script, 'up'], { env, timeout: 600_000 });
    const kubeconfig = path.join(dir, 'kubeconfig');
    const kubectlBin = path.join(binDir(), 'kubectl');
    await run(kubectlBin, [
      '--kubeconfig',
      kubeconfig,
      'apply',
      '--server-side',
      '-f',
      path.join(root, 'crds'),
    ]);
    await run(kubectlBin, [
      '--kubeconfig',
      kubeconfig,
      'wait',
      '--for=condition=Established',
      'crd',
      '--all',
    ]);
    return {
      dir,
      kubeconfig,
      kubeletPid: () => Number(readFileSync(path.join(dir, 'pids', 'kubelet.pid'), 'utf8')),
      down,
    };
  } catch (err) {
    await down().catch(() => undefined);
    throw err;
  }
}
