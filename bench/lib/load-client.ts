import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChurnResult, LoadCommand, LoadResult, StartResult } from './grpc-load.ts';

type Reply = StartResult | LoadResult | ChurnResult | { type: 'error'; message: string };

/** The forked gRPC load generator (bench/lib/grpc-load.ts), one command at a time. */
export class LoadGenerator {
  private readonly child: ChildProcess;
  private readonly ready: Promise<void>;
  onProgress?: (progress: Record<string, unknown>) => void;

  constructor() {
    const compiled = import.meta.url.endsWith('.js');
    this.child = fork(
      fileURLToPath(new URL(`./grpc-load.${compiled ? 'js' : 'ts'}`, import.meta.url)),
      [],
      {
        execArgv: compiled ? [] : ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (m: { type?: string }): void => {
        if (m.type === 'ready') {
          this.child.off('message', onMessage);
          resolve();
        }
      };
      this.child.on('message', onMessage);
      this.child.once('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async run<R extends Reply>(cmd: LoadCommand): Promise<R> {
    await this.ready;
    return new Promise<R>((resolve, reject) => {
      const onMessage = (m: Reply | { type: 'churn-progress' }): void => {
        if (m.type === 'churn-progress') {
          this.onProgress?.(m as unknown as Record<string, unknown>);
          return;
        }
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        if (m.type === 'error') reject(new Error(`load generator: ${m.message}`));
        else resolve(m as R);
      };
      const onExit = (code: number | null): void =>
        reject(new Error(`load generator exited with ${code}`));
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(cmd);
    });
  }

  close(): void {
    if (this.child.connected) this.child.send({ type: 'exit' });
    setTimeout(() => {
      if (this.child.exitCode === null) this.child.kill('SIGKILL');
    }, 2_000).unref();
  }
}
