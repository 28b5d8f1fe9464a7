import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import { KubeApiError, isNotFound } from '../kube/errors.ts';
import { PODS } from '../kube/resources.ts';
import type {
  CancelExecutionRequest,
  CancelExecutionResponse,
  ExecRequest,
  ExecResponse,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { podNameOf, type Pod } from './caches.ts';
import { RpcError, invalidArgument, mapKubeError } from './errors.ts';
import { malformedReason } from './exec-decode.ts';
import { ExecStartError, buildExecCommand, errorEvent } from './exec-protocol.ts';
import { ExecRun } from './exec-run.ts';
import type { CallContext, ShimContext } from './rpc.ts';
import { findWorkload } from './resolve.ts';

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

/** The Exec RPC (§6): handshake, then one session until exactly one `exit`. */
export async function exec(
  shim: ShimContext,
  call: ServerDuplexStream<ExecRequest, ExecResponse>,
  ctx: CallContext,
): Promise<void> {
  const first = await firstMessage(call, ctx.signal);
  if (first.kind !== 'message') return;
  try {
    const undecodable = malformedReason(first.message);
    if (undecodable !== undefined) {
      throw new ExecStartError(
        'invalid_request',
        `the ExecRequest does not decode: ${undecodable}`,
        status.INVALID_ARGUMENT,
      );
    }
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

export function cancelExecution(
  shim: ShimContext,
  req: CancelExecutionRequest,
): Promise<CancelExecutionResponse> {
  const id = req.executionId.trim();
  if (id === '') throw invalidArgument('execution_id_required');
  return Promise.resolve({ cancelled: shim.execs.cancel(id, req.force) });
}
