import { once, type EventEmitter } from 'node:events';
import {
  status,
  type Deadline,
  type handleBidiStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.ts';
import type { ShimCaches, Workload } from './caches.ts';
import { RpcError, toRpcError, toServiceError } from './errors.ts';
import type { ExecRegistry } from './exec-registry.ts';
import type { ConcurrencyLimiter } from './limits.ts';
import type { RecentStarts } from './recent-starts.ts';
import type { RunnerDirectory } from '../workload/seams.ts';

/** What every handler of the shim works with. */
export interface ShimContext {
  kube: KubeClient;
  caches: ShimCaches;
  namespace: string;
  runnerName?: string;
  /** The Runners (placement, settings): StartWorkload creates missing claims with their storage. */
  runners?: RunnerDirectory;
  logger: Logger;
  execs: ExecRegistry;
  maxMessageBytes: number;
  execLimiter: ConcurrencyLimiter;
  putArchiveLimiter: ConcurrencyLimiter;
  /** The most bytes a PutArchive payload may expand to. */
  maxArchiveBytes: number;
  /** Workloads StartWorkload created that the cache may not show yet. */
  recent?: RecentStarts;
  /** Told of each AgentWorkload StartWorkload created (RunnerGrpcServerOptions). */
  onWorkloadCreated?: (workload: Workload) => void;
}

export interface CallContext {
  method: string;
  /** Aborted when the client cancels (or its deadline passes). */
  signal: AbortSignal;
  /** Epoch milliseconds; Infinity without a deadline. */
  deadline: number;
  logger: Logger;
}

/** A server stream's outgoing side with backpressure: `send` resolves once the message is queued. */
export interface StreamSink<T> {
  send(message: T): Promise<void>;
}

type AnyCall =
  | ServerUnaryCall<unknown, unknown>
  | ServerWritableStream<unknown, unknown>
  | ServerDuplexStream<unknown, unknown>;

function deadlineMs(deadline: Deadline): number {
  if (deadline instanceof Date) return deadline.getTime();
  return Number.isFinite(deadline) ? deadline : Infinity;
}

/** The trace id of the traceparent the server interceptor sets on every call. */
function traceIdOf(call: AnyCall): string | undefined {
  const value = call.metadata.get('traceparent')[0];
  return typeof value === 'string' ? value.split('-')[1] : undefined;
}

/**
 * The signal and the child logger are made on first use: most unary calls (Inspect, Ready)
 * use neither, and at thousands of calls a second both show in profiles.
 */
function callContext(shim: ShimContext, method: string, call: AnyCall): CallContext {
  let controller: AbortController | undefined;
  let logger: Logger | undefined;
  return {
    method,
    get signal(): AbortSignal {
      if (!controller) {
        const made = new AbortController();
        if (call.cancelled) made.abort();
        else (call as EventEmitter).once('cancelled', () => made.abort());
        controller = made;
      }
      return controller.signal;
    },
    deadline: deadlineMs(call.getDeadline()),
    get logger(): Logger {
      logger ??= shim.logger.child({ rpc: method, traceId: traceIdOf(call) });
      return logger;
    },
  };
}

export function cancelled(): RpcError {
  return new RpcError(status.CANCELLED, 'cancelled by the client');
}

export function unary<Req, Res>(
  shim: ShimContext,
  method: string,
  fn: (request: Req, ctx: CallContext) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let answered = false;
    const answer = (err: RpcError | null, value?: Res): void => {
      if (answered) return;
      answered = true;
      if (err) callback(toServiceError(err));
      else callback(null, value);
    };
    let ctx: CallContext;
    try {
      ctx = callContext(shim, method, call as AnyCall);
    } catch (err) {
      answer(toRpcError(err, shim.logger, method));
      return;
    }
    Promise.resolve()
      .then(() => fn(call.request, ctx))
      .then(
        (value) => answer(null, value),
        (err: unknown) => answer(toRpcError(err, ctx.logger, method)),
      )
      .catch((err: unknown) => shim.logger.error({ err, method }, 'could not answer an RPC'));
  };
}

export function sinkFor<T>(
  call: ServerWritableStream<unknown, T> | ServerDuplexStream<unknown, T>,
  signal: AbortSignal,
): StreamSink<T> {
  return {
    async send(message: T): Promise<void> {
      if (signal.aborted || call.destroyed || call.writableEnded) throw cancelled();
      if (!call.write(message)) {
        const abort = new AbortController();
        const onAbort = (): void => abort.abort();
        signal.addEventListener('abort', onAbort, { once: true });
        try {
          await Promise.race([
            once(call, 'drain', { signal: abort.signal }),
            once(call, 'close', { signal: abort.signal }),
          ]);
        } catch {
          throw cancelled();
        } finally {
          abort.abort();
          signal.removeEventListener('abort', onAbort);
        }
        if (signal.aborted) throw cancelled();
      }
    },
  };
}

/** Ends a stream call with `err`'s status, or OK; a no-op once the client is gone. */
export function finishStream(
  call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
  err: RpcError | undefined,
): void {
  if (call.cancelled || call.destroyed || call.writableEnded) return;
  if (err) call.emit('error', toServiceError(err));
  else call.end();
}

/** Runs a streaming call's handler and ends the stream with its outcome. */
function runStream(
  shim: ShimContext,
  method: string,
  call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
  run: (ctx: CallContext) => Promise<void>,
): void {
  let ctx: CallContext;
  try {
    ctx = callContext(shim, method, call as unknown as AnyCall);
  } catch (err) {
    finishStream(call, toRpcError(err, shim.logger, method));
    return;
  }
  Promise.resolve()
    .then(() => run(ctx))
    .then(
      () => finishStream(call, undefined),
      (err: unknown) => {
        if (!ctx.signal.aborted) finishStream(call, toRpcError(err, ctx.logger, method));
      },
    )
    .catch((err: unknown) => shim.logger.error({ err, method }, 'could not finish a stream'));
}

export function serverStreaming<Req, Res>(
  shim: ShimContext,
  method: string,
  fn: (request: Req, sink: StreamSink<Res>, ctx: CallContext) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call) =>
    runStream(shim, method, call as unknown as ServerWritableStream<unknown, unknown>, (ctx) =>
      fn(call.request, sinkFor(call, ctx.signal), ctx),
    );
}

export function bidiStreaming<Req, Res>(
  shim: ShimContext,
  method: string,
  fn: (call: ServerDuplexStream<Req, Res>, ctx: CallContext) => Promise<void>,
): handleBidiStreamingCall<Req, Res> {
  return (call) =>
    runStream(shim, method, call as unknown as ServerDuplexStream<unknown, unknown>, (ctx) =>
      fn(call, ctx),
    );
}
