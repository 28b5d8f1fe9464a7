import { randomUUID } from 'node:crypto';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { startExec, type ExecResult, type ExecSession } from '../kube/exec.ts';
import {
  ExecExitReason,
  type ExecRequest,
  type ExecResponse,
  type ExecStartRequest,
} from '../gen/agynio/api/runner/v1/runner.ts';
import type { Pod } from './caches.ts';
import {
  DEFAULT_EXIT_TAIL_BYTES,
  MAX_EXIT_TAIL_BYTES,
  buildExecCommand,
  errorEvent,
  exitOutcome,
} from './exec-protocol.ts';
import { malformedReason } from './exec-decode.ts';
import type { CancellableExec } from './exec-registry.ts';
import type { CallContext, ShimContext } from './rpc.ts';
import { Delay, TailBuffer } from './stream-buffers.ts';

/** After a termination, how long the exec stream gets to report its own end. */
const CLOSE_GRACE_MS = 2_000;
/** Output the client has not read yet beyond this ends the exec (RUNNER_ERROR). */
const MAX_PENDING_OUTPUT_BYTES = 16 * 1024 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Stdin buffered towards the container beyond this pauses reading the gRPC stream… */
const STDIN_HIGH_WATER_BYTES = 1024 * 1024;
/** …until it is back under this. */
const STDIN_LOW_WATER_BYTES = 256 * 1024;

/** One Exec session after `started`: streams, timers, stdin flow control and the one `exit`. */
export class ExecRun implements CancellableExec {
  private readonly executionId = randomUUID();
  private readonly options: ExecStartRequest['options'];
  private readonly tty: boolean;
  private readonly separateStderr: boolean;
  private readonly stdoutTail: TailBuffer;
  private readonly stderrTail: TailBuffer;
  private readonly pidFile?: string;
  private stdoutSeq = 0;
  private stderrSeq = 0;
  private session?: ExecSession;
  /** Stdin that came before the session: reading pauses until the session takes it. */
  private pending: Array<(s: ExecSession) => void> = [];
  private pendingResize?: { cols: number; rows: number };
  private inputPaused = false;
  private waitingForRoom = false;
  private recorded?: { reason: ExecExitReason; killed: boolean };
  private terminatedSignal!: () => void;
  private readonly terminated = new Promise<void>((resolve) => (this.terminatedSignal = resolve));
  private timers: NodeJS.Timeout[] = [];
  private idleTimer?: NodeJS.Timeout;
  private idleFired = false;
  private readonly grace = new Delay(CLOSE_GRACE_MS);

  constructor(
    private readonly shim: ShimContext,
    private readonly call: ServerDuplexStream<ExecRequest, ExecResponse>,
    private readonly ctx: CallContext,
    private readonly start: ExecStartRequest,
    private readonly target: { pod: Pod; container: string },
  ) {
    this.options = start.options;
    this.tty = this.options?.tty ?? false;
    // Upstream's defaults: separate without options, merged when options leave it unset.
    this.separateStderr = this.options ? this.options.separateStderr : true;
    const tailBytes =
      this.options && this.options.exitTailBytes > 0
        ? Math.min(this.options.exitTailBytes, MAX_EXIT_TAIL_BYTES)
        : DEFAULT_EXIT_TAIL_BYTES;
    this.stdoutTail = new TailBuffer(tailBytes);
    this.stderrTail = new TailBuffer(tailBytes);
    if (this.options?.killOnTimeout) this.pidFile = `/tmp/.agyn-exec-${this.executionId}.pid`;
  }

  cancel(force: boolean): void {
    this.terminate(ExecExitReason.EXEC_EXIT_REASON_CANCELLED, force);
  }

  async run(): Promise<void> {
    const { execs } = this.shim;
    execs.register(this.executionId, this);
    const onData = (m: ExecRequest): void => this.onMessage(m);
    const onEnd = (): void => this.terminate(ExecExitReason.EXEC_EXIT_REASON_CANCELLED, false);
    const onAbort = (): void => this.terminate(ExecExitReason.EXEC_EXIT_REASON_CANCELLED, false);
    try {
      this.send({
        event: {
          $case: 'started',
          started: { executionId: this.executionId, startedAt: new Date() },
        },
      });
      this.armTimers();
      this.call.on('data', onData);
      this.call.once('end', onEnd);
      this.call.resume();
      this.ctx.signal.addEventListener('abort', onAbort, { once: true });

      const result = await this.runSession();
      if (result?.error !== undefined && !this.recorded) {
        this.ctx.logger.info(
          { executionId: this.executionId, error: result.error },
          'exec ended with an error',
        );
      }
      if (this.ctx.signal.aborted) return;
      this.sendExit(result);
    } finally {
      execs.unregister(this.executionId, this);
      this.grace.cancel();
      for (const timer of this.timers) clearTimeout(timer);
      clearTimeout(this.idleTimer);
      this.call.off('data', onData);
      this.call.off('end', onEnd);
      this.ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Opens the exec stream and waits for its end (or a termination and its grace). */
  private async runSession(): Promise<ExecResult | undefined> {
    try {
      const session = await this.open(buildExecCommand(this.start, this.pidFile), true, {
        onStdout: (d) => this.onOutput(d, false),
        onStderr: (d) => this.onOutput(d, true),
      });
      this.session = session;
      if (this.recorded) session.close();
      for (const op of this.pending.splice(0)) op(session);
      if (this.pendingResize) session.resize(this.pendingResize.cols, this.pendingResize.rows);
      this.throttleInput();
      const result = await Promise.race([
        session.result,
        this.terminated.then(() => this.grace.wait()),
      ]);
      session.close();
      return result;
    } catch (err) {
      return { exitCode: -1, error: err instanceof Error ? err.message : String(err) };
    }
  }

  private sendExit(result: ExecResult | undefined): void {
    // Without a status the command's fate is unknown: the contract's answer for a stream
    // error after `started` is RUNNER_ERROR with -1 (exitOutcome), never COMPLETED/0.
    if (result?.connectionLost) {
      this.ctx.logger.warn({ err: result.error }, 'exec connection to the container lost');
    }
    const { exitCode, reason } = exitOutcome(result, this.recorded?.reason);
    this.send({
      event: {
        $case: 'exit',
        exit: {
          executionId: this.executionId,
          exitCode,
          killed: this.recorded?.killed ?? false,
          reason,
          stdoutTail: this.stdoutTail.value(),
          stderrTail: this.stderrTail.value(),
          finishedAt: new Date(),
        },
      },
    });
  }

  private send(response: ExecResponse): void {
    if (this.ctx.signal.aborted || this.call.destroyed || this.call.writableEnded) return;
    this.call.write(response);
    if (this.call.writableLength > MAX_PENDING_OUTPUT_BYTES) {
      this.terminate(ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR, false);
    }
  }

  private armTimers(): void {
    if (!this.options) return;
    const killed = this.options.killOnTimeout;
    if (this.options.timeoutMs > 0) {
      this.timers.push(
        setTimeout(
          () => this.terminate(ExecExitReason.EXEC_EXIT_REASON_TIMEOUT, killed),
          Math.min(this.options.timeoutMs, MAX_TIMER_MS),
        ),
      );
    }
    this.touchIdle();
  }

  private touchIdle(): void {
    const idleMs = this.options?.idleTimeoutMs ?? 0;
    if (idleMs <= 0 || this.idleFired || this.recorded) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(
      () => {
        this.idleFired = true;
        this.terminate(
          ExecExitReason.EXEC_EXIT_REASON_IDLE_TIMEOUT,
          this.options?.killOnTimeout ?? false,
        );
      },
      Math.min(idleMs, MAX_TIMER_MS),
    );
  }

  private onOutput(data: Buffer, stderr: boolean): void {
    if (data.length === 0 || this.recorded?.reason === ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR)
      return;
    const copy = Buffer.from(data);
    if (stderr && this.separateStderr) {
      this.stderrTail.push(copy);
      this.send({
        event: { $case: 'stderr', stderr: { seq: ++this.stderrSeq, data: copy, ts: new Date() } },
      });
    } else {
      this.stdoutTail.push(copy);
      this.send({
        event: { $case: 'stdout', stdout: { seq: ++this.stdoutSeq, data: copy, ts: new Date() } },
      });
    }
    this.touchIdle();
  }

  private withSession(op: (s: ExecSession) => void): void {
    const guarded = (s: ExecSession): void => {
      try {
        op(s);
      } catch (err) {
        this.ctx.logger.info(
          { err, executionId: this.executionId },
          'writing to the exec stream failed',
        );
        this.terminate(ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR, false);
      }
    };
    if (this.session) {
      guarded(this.session);
      return;
    }
    this.pending.push(guarded);
    this.pauseInput();
  }

  private pauseInput(): void {
    if (this.inputPaused) return;
    this.inputPaused = true;
    this.call.pause();
  }

  /** Stops reading the client's stream while the container has not taken the stdin sent. */
  private throttleInput(): void {
    const session = this.session;
    if (!session || this.waitingForRoom) return;
    if (session.bufferedBytes > STDIN_HIGH_WATER_BYTES) this.pauseInput();
    if (!this.inputPaused) return;
    this.waitingForRoom = true;
    void session.bufferedAtMost(STDIN_LOW_WATER_BYTES).then(() => {
      this.waitingForRoom = false;
      this.inputPaused = false;
      if (!this.recorded) this.call.resume();
    });
  }

  private onMessage(request: ExecRequest): void {
    const undecodable = malformedReason(request);
    if (undecodable !== undefined) {
      // Upstream's "another Recv error" (§6.4).
      this.ctx.logger.info(
        { executionId: this.executionId, error: undecodable },
        'an ExecRequest does not decode',
      );
      this.terminate(ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR, false);
      return;
    }
    this.touchIdle();
    const msg = request.msg;
    switch (msg?.$case) {
      case 'start':
        this.send(errorEvent('exec_already_started', 'duplicate exec start received'));
        return;
      case 'stdin': {
        const { data, eof } = msg.stdin;
        if (data.length > 0) {
          this.withSession((s) => s.write(Buffer.from(data)));
          this.throttleInput();
        }
        if (eof) this.withSession((s) => s.endStdin());
        return;
      }
      case 'resize': {
        const { cols, rows } = msg.resize;
        if (!this.tty || cols === 0 || rows === 0) return;
        if (this.session) this.withSession((s) => s.resize(cols, rows));
        else this.pendingResize = { cols, rows };
        return;
      }
      default:
        return;
    }
  }

  private terminate(reason: ExecExitReason, killed: boolean): void {
    if (this.recorded) return;
    this.recorded = { reason, killed };
    for (const timer of this.timers) clearTimeout(timer);
    clearTimeout(this.idleTimer);
    const close = (): void => {
      this.session?.close();
      this.terminatedSignal();
    };
    if (killed && this.pidFile) {
      void this.killRemote().finally(close);
    } else {
      close();
    }
  }

  /** An exec stream into the target container (a TTY only for the session with stdin). */
  private open(
    command: string[],
    stdin: boolean,
    output: { onStdout(d: Buffer): void; onStderr(d: Buffer): void },
  ): Promise<ExecSession> {
    const pod = this.target.pod.metadata?.name ?? '';
    const { namespace, kube } = this.shim;
    const target = { namespace, pod, container: this.target.container };
    return startExec(kube, { ...target, command, stdin, tty: stdin && this.tty }, output);
  }

  /** Best effort: kills the process through its PID file (the stream closing alone would not). */
  private async killRemote(): Promise<void> {
    if (!this.pidFile) return;
    try {
      const kill = ['/bin/sh', '-c', 'kill -KILL "$(cat "$0")" 2>/dev/null; rm -f "$0"'];
      const killer = await this.open([...kill, this.pidFile], false, {
        onStdout: () => {},
        onStderr: () => {},
      });
      const grace = new Delay(CLOSE_GRACE_MS);
      await Promise.race([killer.result, grace.wait()]);
      grace.cancel();
      killer.close();
    } catch (err) {
      this.ctx.logger.info(
        { err, executionId: this.executionId },
        'could not kill an exec process',
      );
    }
  }
}
