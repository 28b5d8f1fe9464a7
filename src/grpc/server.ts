import {
  ResponderBuilder,
  Server,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.ts';
import { grpcServerHandledTotal, grpcServerHandlingSeconds } from '../observability/metrics.ts';
import { startRpcSpan, type RpcSpan } from '../observability/tracing.ts';
import {
  RunnerServiceService,
  type RunnerServiceServer,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { authProblem, serverCredentials, type AuthOptions } from './auth.ts';
import type { ShimCaches, Workload } from './caches.ts';
import { codeName } from './errors.ts';
import { streamEvents } from './events.ts';
import { cancelExecution, exec } from './exec.ts';
import { withTolerantExecDecoding } from './exec-decode.ts';
import { ExecRegistry } from './exec-registry.ts';
import { DEFAULT_LIMITS, execLimiter, putArchiveLimiter, type ShimLimits } from './limits.ts';
import { putArchive } from './put-archive.ts';
import { streamWorkloadLogs } from './logs.ts';
import { bidiStreaming, serverStreaming, unary, type ShimContext } from './rpc.ts';
import { listVolumes, listWorkloadsByVolume, removeVolume } from './volumes.ts';
import {
  findWorkloadsByLabels,
  getWorkloadLabels,
  inspectWorkload,
  listWorkloads,
  ready,
  startWorkload,
  touchWorkload,
} from './workloads.ts';
import { childLogger } from '../kube/child-logger.ts';
import { RecentStarts } from './recent-starts.ts';
import type { RunnerDirectory } from '../workload/seams.ts';
import { removeWorkload, stopWorkload } from './stop.ts';

export type { AuthOptions } from './auth.ts';

/** docker-runner's receive limit; upstream k8s-runner kept gRPC's 4 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024;
export const DEFAULT_GRPC_PORT = 50051;
const SHUTDOWN_GRACE_MS = 5_000;

export interface RunnerGrpcServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  kube: KubeClient;
  caches: ShimCaches;
  /** Where gRPC-created workloads live (the caches' namespace). */
  workloadNamespace: string;
  runnerName?: string;
  /** The workload controller's Runners: StartWorkload makes new claims with their storage. */
  runners?: RunnerDirectory;
  auth: AuthOptions;
  logger: Logger;
  maxMessageBytes?: number;
  /** Caps on concurrent Exec and PutArchive sessions and on archive size (DEFAULT_LIMITS). */
  limits?: Partial<ShimLimits>;
  /**
   * Whether calls can be served: until it is true (the caches the handlers and the token
   * check read have not synced), every call is UNAVAILABLE rather than answered from an
   * empty cache (NOT_FOUND for a workload that exists, UNAUTHENTICATED for a valid token).
   */
  ready?: () => boolean;
  /** Told of each AgentWorkload StartWorkload created (e.g. a controller in this process). */
  onWorkloadCreated?: (workload: Workload) => void;
}

export interface RunnerGrpcServer {
  port: number;
  stop(): Promise<void>;
}

export function createRunnerService(shim: ShimContext): RunnerServiceServer {
  return {
    ready: unary(shim, 'Ready', () => ready()),
    startWorkload: unary(shim, 'StartWorkload', (req, ctx) => startWorkload(shim, req, ctx)),
    stopWorkload: unary(shim, 'StopWorkload', (req, ctx) => stopWorkload(shim, req, ctx)),
    removeWorkload: unary(shim, 'RemoveWorkload', (req, ctx) => removeWorkload(shim, req, ctx)),
    inspectWorkload: unary(shim, 'InspectWorkload', (req, ctx) => inspectWorkload(shim, req, ctx)),
    getWorkloadLabels: unary(shim, 'GetWorkloadLabels', (req, ctx) =>
      getWorkloadLabels(shim, req, ctx),
    ),
    listWorkloads: unary(shim, 'ListWorkloads', () => listWorkloads(shim)),
    findWorkloadsByLabels: unary(shim, 'FindWorkloadsByLabels', (req) =>
      findWorkloadsByLabels(shim, req),
    ),
    listWorkloadsByVolume: unary(shim, 'ListWorkloadsByVolume', (req) =>
      listWorkloadsByVolume(shim, req),
    ),
    listVolumes: unary(shim, 'ListVolumes', () => listVolumes(shim)),
    removeVolume: unary(shim, 'RemoveVolume', (req, ctx) => removeVolume(shim, req, ctx)),
    touchWorkload: unary(shim, 'TouchWorkload', (req, ctx) => touchWorkload(shim, req, ctx)),
    putArchive: unary(shim, 'PutArchive', (req, ctx) => putArchive(shim, req, ctx)),
    streamWorkloadLogs: serverStreaming(shim, 'StreamWorkloadLogs', (req, sink, ctx) =>
      streamWorkloadLogs(shim, req, sink, ctx),
    ),
    streamEvents: serverStreaming(shim, 'StreamEvents', (req, sink, ctx) =>
      streamEvents(shim, req, sink, ctx),
    ),
    exec: bidiStreaming(shim, 'Exec', (call, ctx) => exec(shim, call, ctx)),
    cancelExecution: unary(shim, 'CancelExecution', (req) => cancelExecution(shim, req)),
  };
}

interface MethodLabels {
  service: string;
  method: string;
}

const labelsByPath = new Map<string, MethodLabels>();

function splitPath(path: string): MethodLabels {
  let labels = labelsByPath.get(path);
  if (!labels) {
    const match = /^\/([^/]+)\/([^/]+)$/.exec(path);
    labels = match
      ? { service: match[1]!, method: match[2]! }
      : { service: 'unknown', method: path };
    // Only registered methods reach interceptors, so the map stays as small as the service.
    labelsByPath.set(path, labels);
  }
  return labels;
}

/** Authentication (before the request is read) and the grpc_server_* metrics, for every call. */
function shimInterceptor(
  auth: AuthOptions,
  logger: Logger,
  ready: () => boolean,
): ServerInterceptor {
  return (descriptor, call) => {
    const labels = splitPath(descriptor.path);
    const startedAt = process.hrtime.bigint();
    let recorded = false;
    let span: RpcSpan | undefined;
    const record = (code: number): void => {
      if (recorded) return;
      recorded = true;
      const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
      const name = codeName(code);
      grpcServerHandledTotal.inc({
        grpc_service: labels.service,
        grpc_method: labels.method,
        grpc_code: name,
      });
      grpcServerHandlingSeconds.observe(
        { grpc_service: labels.service, grpc_method: labels.method },
        seconds,
      );
      span?.end(code, name);
      logger.debug(
        { rpc: labels.method, code: name, seconds, traceId: span?.traceId },
        'rpc handled',
      );
    };
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        // Handlers take the call's trace from the traceparent they receive (rpc.ts).
        span = startRpcSpan(labels.service, labels.method, metadata.get('traceparent')[0]);
        metadata.set('traceparent', span.traceparent);
        if (!ready()) {
          record(status.UNAVAILABLE);
          call.sendStatus({
            code: status.UNAVAILABLE,
            details: 'the runner is starting: its caches are not synced yet',
          });
          return;
        }
        let problem: string | undefined;
        try {
          problem = authProblem(auth, metadata, call, logger);
        } catch (err) {
          logger.error({ err }, 'authentication check failed');
          problem = 'authentication failed';
        }
        if (problem) {
          record(status.UNAUTHENTICATED);
          call.sendStatus({ code: status.UNAUTHENTICATED, details: problem });
          return;
        }
        next(metadata);
      })
      .withOnCancel(() => record(status.CANCELLED))
      .build();
    const responder = new ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((st, next) => {
        record(st.code);
        next(st);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };
}

/**
 * InspectWorkload answers the same object while nothing changed (workloads.ts); its
 * encoding is kept beside it so that repeated polls do not encode it again. grpc-js copies
 * the bytes into each frame, so sharing them is safe.
 */
function withMemoizedAnswers(definition: typeof RunnerServiceService): typeof RunnerServiceService {
  const inspect = definition.inspectWorkload;
  const encoded = new WeakMap<object, Buffer>();
  return {
    ...definition,
    inspectWorkload: {
      ...inspect,
      responseSerialize: (value) => {
        let bytes = encoded.get(value);
        if (!bytes) {
          bytes = inspect.responseSerialize(value);
          encoded.set(value, bytes);
        }
        return bytes;
      },
    },
  };
}

export async function startRunnerGrpcServer(
  options: RunnerGrpcServerOptions,
): Promise<RunnerGrpcServer> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const logger = childLogger(options.logger, { component: 'grpc' });
  if (options.caches.namespace !== options.workloadNamespace) {
    throw new Error(
      `the shim caches watch namespace ${options.caches.namespace}, not the workload namespace ${options.workloadNamespace}`,
    );
  }
  if (options.auth.mode === 'insecure') {
    logger.warn('gRPC listener without authentication (explicitly configured)');
  } else if (options.auth.mode === 'token' && options.auth.certPem === undefined) {
    logger.warn('gRPC bearer tokens travel over plain text: configure certPem/keyPem');
  }
  const execs = new ExecRegistry();
  const limits = { ...DEFAULT_LIMITS, maxArchiveBytes: maxMessageBytes, ...options.limits };
  const shim: ShimContext = {
    kube: options.kube,
    caches: options.caches,
    namespace: options.workloadNamespace,
    runnerName: options.runnerName,
    runners: options.runners,
    logger,
    execs,
    maxMessageBytes,
    execLimiter: execLimiter(limits.exec),
    putArchiveLimiter: putArchiveLimiter(limits.putArchive),
    maxArchiveBytes: limits.maxArchiveBytes,
    recent: new RecentStarts(options.caches),
    onWorkloadCreated: options.onWorkloadCreated,
  };
  const server = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    // channelz bookkeeping costs on every call and nothing here serves it.
    'grpc.enable_channelz': 0,
    interceptors: [shimInterceptor(options.auth, logger, options.ready ?? (() => true))],
  });
  server.addService(
    withTolerantExecDecoding(withMemoizedAnswers(RunnerServiceService)),
    createRunnerService(shim),
  );
  const address = `${options.host ?? '0.0.0.0'}:${options.port ?? DEFAULT_GRPC_PORT}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, serverCredentials(options.auth), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  logger.info({ address, port, auth: options.auth.mode }, 'gRPC RunnerService listening');

  let stopping: Promise<void> | undefined;
  return {
    port,
    stop(): Promise<void> {
      stopping ??= (async () => {
        execs.cancelAll();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, SHUTDOWN_GRACE_MS);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      })();
      return stopping;
    },
  };
}
