/**
 * The parent's side of a benchmark child process: operator code (the controller alone, the
 * whole operator, the direct runner, a bare grpc-js server) in a process of its own, on
 * plain node with the image's environment (the Dockerfile's NODE_OPTIONS and allocator
 * settings) and compiled JavaScript when the benchmark runs compiled, so that its RSS
 * (peak included: VmHWM) and CPU are its own. One request at a time over IPC
 * (bench/lib/child-ipc.ts answers).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildCounts, ChildLag, ChildMemory, ChildRequest } from './child-ipc.ts';
import { COMPILED } from './cluster.ts';
import { deployedNodeEnv } from './deployed-env.ts';

export interface BenchChildOptions {
  /** The module to run, relative to this directory without extension (`controller-process`). */
  entry: string;
  /** Modules imported before the entry (`--import`), relative like `entry`. */
  preload?: string[];
  env?: Record<string, string>;
  /** Node flags beyond the image's (experiments: BENCH_NODE_FLAGS adds to every child too). */
  nodeFlags?: string[];
  /** Where the child's stdout goes (stderr is inherited). */
  stdout?: 'inherit' | 'ignore' | number;
  /** Resolves when the child is ready; by default its IPC `ready` message. */
  ready?: (child: ChildProcess) => Promise<Record<string, unknown>>;
}

/** A path of this directory's module `name`, compiled or TypeScript as this process runs. */
export function benchModule(name: string): string {
  return fileURLToPath(new URL(`./${name}.${COMPILED ? 'js' : 'ts'}`, import.meta.url));
}

function readyMessage(child: ChildProcess): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (m: { type?: string }): void => {
      if (m.type !== 'ready') return;
      child.off('message', onMessage);
      resolve(m as Record<string, unknown>);
    };
    child.on('message', onMessage);
  });
}

export class BenchChild {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly exited: Promise<number | null>;

  private constructor(
    private readonly child: ChildProcess,
    /** What the child reported when it became ready (its address, ports ...). */
    readonly info: Record<string, unknown>,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', (code) => resolve(code));
    });
  }

  static async start(options: BenchChildOptions): Promise<BenchChild> {
    const profile = process.env.BENCH_CPU_PROF;
    const child = fork(benchModule(options.entry), [], {
      execArgv: [
        '--expose-gc',
        ...(COMPILED ? [] : ['--import', 'tsx']),
        ...(options.nodeFlags ?? []),
        ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
        ...(options.preload ?? []).flatMap((p) => ['--import', benchModule(p)]),
        // BENCH_CPU_PROF=dir: each child writes a V8 CPU profile there when it exits.
        ...(profile ? ['--cpu-prof', '--cpu-prof-dir', profile] : []),
      ],
      env: { ...process.env, ...deployedNodeEnv(), ...options.env },
      stdio: ['ignore', options.stdout ?? 'inherit', 'inherit', 'ipc'],
    });
    const exited = new Promise<never>((_resolve, reject) =>
      child.once('exit', (code) => reject(new Error(`${options.entry} exited with ${code}`))),
    );
    try {
      const info = await Promise.race([(options.ready ?? readyMessage)(child), exited]);
      return new BenchChild(child, info);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private ask<T>(request: ChildRequest): Promise<T> {
    const next = this.queue.then(
      () =>
        new Promise<T>((resolve, reject) => {
          const onExit = (code: number | null): void =>
            reject(new Error(`child exited with ${code} before answering ${request.type}`));
          this.child.once('exit', onExit);
          this.child.once('message', (reply: { type?: string; message?: string }) => {
            this.child.off('exit', onExit);
            if (reply.type === 'error') reject(new Error(reply.message));
            else resolve(reply as T);
          });
          this.child.send(request);
        }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  async counts(): Promise<{ requestCounts: Map<string, number>; byResource: Map<string, number> }> {
    const reply = await this.ask<ChildCounts>({ type: 'counts' });
    return { requestCounts: new Map(reply.requestCounts), byResource: new Map(reply.byResource) };
  }

  /** RSS now and at its peak since the last reset (`resetPeak` starts a new window after reading). */
  memory(options: { gc?: boolean; resetPeak?: boolean } = {}): Promise<ChildMemory> {
    return this.ask<ChildMemory>({ type: 'memory', ...options });
  }

  /** Event-loop lag since the last call. */
  lag(): Promise<ChildLag> {
    return this.ask<ChildLag>({ type: 'lag' });
  }

  /** Asks the child to stop, then ends it (SIGTERM, SIGKILL after `graceMs`). */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.child.exitCode === null && this.child.connected)
      await Promise.race([this.ask({ type: 'stop' }).catch(() => undefined), this.exited]);
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
