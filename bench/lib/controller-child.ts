/** The parent's side of bench/lib/controller-process.ts: one request at a time over IPC. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type {
  ControllerCounts,
  ControllerMemory,
  ControllerProcessConfig,
  ControllerRequest,
} from './controller-process.ts';

/** The Dockerfile's NODE_OPTIONS. */
export const OPERATOR_NODE_FLAG = '--max-semi-space-size=8';

export class ControllerChild {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly child: ChildProcess) {}

  static async start(config: ControllerProcessConfig): Promise<ControllerChild> {
    const compiled = import.meta.url.endsWith('.js');
    const entry = fileURLToPath(
      new URL(`./controller-process.${compiled ? 'js' : 'ts'}`, import.meta.url),
    );
    const child = fork(entry, [], {
      // The V8 flag the Dockerfile sets (NODE_OPTIONS): measured as deployed.
      execArgv: [
        '--expose-gc',
        OPERATOR_NODE_FLAG,
        ...(compiled ? [] : ['--import', 'tsx']),
        // BENCH_CONTROLLER_CPU_PROF=dir writes a V8 CPU profile of the controller there.
        ...(process.env.BENCH_CONTROLLER_CPU_PROF
          ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CONTROLLER_CPU_PROF]
          : []),
      ],
      env: { ...process.env, BENCH_CONTROLLER: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`controller process exited with ${code}`)));
    });
    return new ControllerChild(child);
  }

  private ask<T>(request: ControllerRequest): Promise<T> {
    const next = this.queue.then(
      () =>
        new Promise<T>((resolve, reject) => {
          this.child.once('message', (reply: { type?: string; message?: string }) =>
            reply.type === 'error' ? reject(new Error(reply.message)) : resolve(reply as T),
          );
          this.child.send(request);
        }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  async counts(): Promise<{ requestCounts: Map<string, number>; byResource: Map<string, number> }> {
    const reply = await this.ask<ControllerCounts>({ type: 'counts' });
    return { requestCounts: new Map(reply.requestCounts), byResource: new Map(reply.byResource) };
  }

  memory(gc: boolean): Promise<ControllerMemory> {
    return this.ask<ControllerMemory>({ type: 'memory', gc });
  }

  async stop(): Promise<void> {
    await this.ask({ type: 'stop' }).catch(() => undefined);
    this.child.kill();
  }
}
