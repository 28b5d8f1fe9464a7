import { randomUUID } from 'node:crypto';
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import { KubeApiError, isNotFound } from '../kube/errors.ts';
import { startExec, type ExecResult, type ExecSession } from '../kube/exec.ts';
import { PODS } from '../kube/resources.ts';
import {
  ExecExitReason,
  type CancelExecutionRequest,
  type CancelExecutionResponse,
  type ExecRequest,
  type ExecResponse,
  type ExecStartRequest,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { podNameOf, type Pod } from './caches.ts';
import { RpcError, invalidArgument, mapKubeError } from './errors.ts';
import type { CancellableExec } from './exec-registry.ts';
import type { CallContext, ShimContext } from './rpc.ts';
import { isEnvName } from './translate.ts';
import { findWorkload } from './workloads.ts';

export const DEFAULT_EXIT_TAIL_BYTES = 65_536;
export const MAX_EXIT_TAIL_BYTES = 262_144;
/** After a termination, how long the exec stream gets to report its own end. */
const CLOSE_GRACE_MS = 2_000;
/** Output the client has not read yet beyond this ends the exec (RUNNER_ERROR). */
const MAX_PENDING_OUTPUT_BYTES = 16 * 1024 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Stdin buffered towards the container beyond this pauses reading the gRPC stream… */
const STDIN_HIGH_WATER_BYTES = 1024 * 1024;
/** …until it is back under this. */
const STDIN_LOW_WATER_BYTES = 256 * 1024;

/** A failure before `started`: one in-band error event, then the RPC ends with `grpcCode`. */
export class ExecStartError extends Error {
  override readonly name = 'ExecStartError';

  constructor(
    readonly code: string,
    message: string,
    readonly grpcCode: status,
  ) {
    super(message);
  }
}

function invalidCommand(message: string): ExecStartError {
  return new ExecStartError('invalid_command', message, status.INVALID_ARGUMENT);
}

/** The process's argv: argv or `/bin/sh -c <shell>`, wrapped for workdir and env (§6.2). */
export function buildExecCommand(start: ExecStartRequest, pidFile?: string): string[] {
  const shell = start.commandShell.trim();
  const hasArgv = start.commandArgv.length > 0;
  if (hasArgv && shell !== '')
    throw invalidCommand('command_argv and command_shell are mutually exclusive');
  if (!hasArgv && shell === '') throw invalidCommand('command required');
  if (hasArgv && (start.commandArgv[0] ?? '').trim() === '')
    throw invalidCommand('command required');
  let command = hasArgv ? [...start.commandArgv] : ['/bin/sh', '-c', shell];
  const options = start.options;
  if (options && options.workdir !== '') {
    command = ['/bin/sh', '-c', 'cd "$1" && shift && exec "$@"', '--', options.workdir, ...command];
  }
  const env: string[] = [];
  for (const e of options?.env ?? []) {
    if (e.name.trim() === '') throw invalidCommand('env name required');
    if (!isEnvName(e.name)) throw invalidCommand(`invalid env name: ${e.name}`);
    env.push(`${e.name}=${e.value}`);
  }
  if (env.length > 0) command = ['env', ...env, ...command];
  if (pidFile) {
    // Records the PID (kept by every `exec` below) so a kill can reach the process.
    command = ['/bin/sh', '-c', '{ echo $$ >"$0"; } 2>/dev/null; exec "$@"', pidFile, ...command];
  }
  return command;
}

/** The last `limit` bytes of everything pushed. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private length = 0;

  constructor(private readonly limit: number) {}

  push(data: Buffer): void {
    this.chunks.push(data);
    this.length += data.length;
    while (this.chunks.length > 1 && this.length - this.chunks[0]!.length >= this.limit) {
      this.length -= this.chunks.shift()!.length;
    }
  }

  value(): Buffer {
    const all = Buffer.concat(this.chunks);
    return all.length > this.limit ? all.subarray(all.length - this.limit) : all;
  }
}

const CODE_WITHOUT_EXIT_STATUS: Record<ExecExitReason, number> = {
  [ExecExitReason.EXEC_EXIT_REASON_UNSPECIFIED]: -1,
  [ExecExitReason.EXEC_EXIT_REASON_COMPLETED]: 0,
  [ExecExitReason.EXEC_EXIT_REASON_TIMEOUT]: -1,
  [ExecExitReason.EXEC_EXIT_REASON_IDLE_TIMEOUT]: -1,
  [ExecExitReason.EXEC_EXIT_REASON_CANCELLED]: 0,
  [ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR]: -1,
  [ExecExitReason.UNRECOGNIZED]: -1,
};

/**
 * Exit code and reason from what the stream reported (undefined: it never ended) and the
 * termination recorded first, if any (§6.4).
 */
export function exitOutcome(
  result: ExecResult | undefined,
  recorded: ExecExitReason | undefined,
): { exitCode: number; reason: ExecExitReason } {
  const realExit = result !== undefined && result.error === undefined && result.exitCode !== 0;
  if (recorded === undefined) {
    if (result === undefined || result.error !== undefined) {
      return { exitCode: -1, reason: ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR };
    }
    return { exitCode: result.exitCode, reason: ExecExitReason.EXEC_EXIT_REASON_COMPLETED };
  }
  if (realExit) return { exitCode: result.exitCode, reason: recorded };
  return { exitCode: CODE_WITHOUT_EXIT_STATUS[recorded], reason: recorded };
}

async function execTarget(
  shim: ShimContext,
  targetId: string,
): Promise<{ pod: Pod; container: string }> {
  let pod = shim.caches.pod(targetId);
  if (!pod) {
    const workload = findWorkload(shim, targetId);
    if (workload) pod = shim.caches.pod(podNameOf(workload));
  }
  if (!pod) {
    try {
      pod = await shim.kube.resource<Pod>(PODS).get(shim.namespace, targetId);
    } catch (err) {
      if (isNotFound(err)) {
        throw new ExecStartError(
          'exec_start_failed',
          `pods ${JSON.stringify(targetId)} not found`,
          status.NOT_FOUND,
        );
      }
      const mapped =
        err instanceof KubeApiError
          ? mapKubeError(err)
          : new RpcError(status.INTERNAL, String(err));
      throw new ExecStartError('exec_start_failed', mapped.message, mapped.code);
    }
  }
  // Only the operator's workload Pods can be exec'd into (upstream reached any Pod).
  if (pod.metadata?.labels?.[LABELS.managedBy] !== MANAGED_BY_VALUE) {
    throw new ExecStartError(
      'exec_start_failed',
      `pod ${JSON.stringify(targetId)} is not a workload of this runner`,
      status.PERMISSION_DENIED,
    );
  }
  const container = pod.spec?.containers[0]?.name;
  if (!container) {
    throw new ExecStartError(
      'exec_start_failed',
      `pod ${JSON.stringify(targetId)} has no containers`,
      status.FAILED_PRECONDITION,
    );
  }
  return { pod, container };
}

type Message = { kind: 'message'; message: ExecRequest } | { kind: 'end' } | { kind: 'cancelled' };

function firstMessage(
  call: ServerDuplexStream<ExecRequest, ExecResponse>,
  signal: AbortSignal,
): Promise<Message> {
  return new Promise((resolve) => {
    const finish = (m: Message): void => {
      call.off('data', onData);
      call.off('end', onEnd);
      signal.removeEventListener('abort', onAbort);
      resolve(m);
    };
    const onData = (message: ExecRequest): void => {
      call.pause();
      finish({ kind: 'message', message });
    };
    const onEnd = (): void => finish({ kind: 'end' });
    const onAbort = (): void => finish({ kind: 'cancelled' });
    if (signal.aborted) {
      resolve({ kind: 'cancelled' });
      return;
    }
    call.on('data', onData);
    call.once('end', onEnd);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function errorEvent(code: string, message: string): ExecResponse {
  return { event: { $case: 'error', error: { code, message, retryable: false } } };
}

/** The Exec RPC (§6): handshake, then one session until exactly one `exit`. */
export async function exec(
  shim: ShimContext,
  call: ServerDuplexStream<ExecRequest, ExecResponse>,
  ctx: CallContext,
): Promise<void> {
  const first = await firstMessage(call, ctx.signal);
  if (first.kind !== 'message') return;
  try {
    const msg = first.message.msg;
    if (msg?.$case !== 'start') {
      throw new ExecStartError(
        'exec_start_required',
        'exec start required',
        status.INVALID_ARGUMENT,
      );
    }
    const start = msg.start;
    const targetId = start.targetId.trim();
    if (targetId === '')
      throw new ExecStartError('target_id_required', 'target_id required', status.INVALID_ARGUMENT);
    buildExecCommand(start);
    const target = await execTarget(shim, targetId);
    let release: () => void;
    try {
      release = shim.execLimiter.acquire(target.pod.metadata?.name ?? targetId);
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      throw new ExecStartError('exec_limit_exceeded', err.message, err.code);
    }
    try {
      await new ExecRun(shim, call, ctx, start, target).run();
    } finally {
      release();
    }
  } catch (err) {
    if (!(err instanceof ExecStartError)) throw err;
    if (!ctx.signal.aborted) call.write(errorEvent(err.code, err.message));
    throw new RpcError(err.grpcCode, `${err.code}: ${err.message}`);
  }
}

class ExecRun implements CancellableExec {
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

      let result: ExecResult | undefined;
      try {
        const session = await startExec(
          this.shim.kube,
          {
            namespace: this.shim.namespace,
            pod: this.target.pod.metadata?.name ?? '',
            container: this.target.container,
            command: buildExecCommand(this.start, this.pidFile),
            stdin: true,
            tty: this.tty,
          },
          { onStdout: (d) => this.onOutput(d, false), onStderr: (d) => this.onOutput(d, true) },
        );
        this.session = session;
        if (this.recorded) session.close();
        for (const op of this.pending.splice(0)) op(session);
        if (this.pendingResize) session.resize(this.pendingResize.cols, this.pendingResize.rows);
        this.throttleInput();
        result = await Promise.race([
          session.result,
          this.terminated.then(() => this.grace.wait()),
        ]);
        session.close();
      } catch (err) {
        result = { exitCode: -1, error: err instanceof Error ? err.message : String(err) };
      }
      if (result?.error !== undefined && !this.recorded) {
        this.ctx.logger.info(
          { executionId: this.executionId, error: result.error },
          'exec ended with an error',
        );
      }
      if (this.ctx.signal.aborted) return;
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

  /** Best effort: kills the process through its PID file (the stream closing alone would not). */
  private async killRemote(): Promise<void> {
    if (!this.pidFile) return;
    try {
      const killer = await startExec(
        this.shim.kube,
        {
          namespace: this.shim.namespace,
          pod: this.target.pod.metadata?.name ?? '',
          container: this.target.container,
          command: [
            '/bin/sh',
            '-c',
            'kill -KILL "$(cat "$0")" 2>/dev/null; rm -f "$0"',
            this.pidFile,
          ],
          stdin: false,
          tty: false,
        },
        { onStdout: () => {}, onStderr: () => {} },
      );
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

/** A timer to race against, cleared when no longer needed. */
class Delay {
  private timer?: NodeJS.Timeout;
  private resolve?: () => void;

  constructor(private readonly ms: number) {}

  wait(): Promise<undefined> {
    return new Promise((resolve) => {
      this.resolve = () => resolve(undefined);
      this.timer = setTimeout(this.resolve, this.ms);
    });
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.resolve?.();
  }
}

export function cancelExecution(
  shim: ShimContext,
  req: CancelExecutionRequest,
): Promise<CancelExecutionResponse> {
  const id = req.executionId.trim();
  if (id === '') throw invalidArgument('execution_id_required');
  return Promise.resolve({ cancelled: shim.execs.cancel(id, req.force) });
}
