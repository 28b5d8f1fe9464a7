import { status } from '@grpc/grpc-js';
import type { ExecResult } from '../kube/exec.ts';
import {
  ExecExitReason,
  type ExecResponse,
  type ExecStartRequest,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { isEnvName } from './translate-containers.ts';

// The Exec contract's pure rules (§6): the command run, the start errors and the exit outcome.

export const DEFAULT_EXIT_TAIL_BYTES = 65_536;
export const MAX_EXIT_TAIL_BYTES = 262_144;

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

export function errorEvent(code: string, message: string): ExecResponse {
  return { event: { $case: 'error', error: { code, message, retryable: false } } };
}
