import type { IncomingMessage } from 'node:http';
import { status } from '@grpc/grpc-js';
import { isNotFound } from '../kube/errors.ts';
import { PODS } from '../kube/resources.ts';
import type {
  StreamWorkloadLogsRequest,
  StreamWorkloadLogsResponse,
} from '../gen/agynio/api/runner/v1/runner.ts';
import type { Pod } from './caches.ts';
import { RpcError, invalidArgument } from './errors.ts';
import type { CallContext, ShimContext, StreamSink } from './rpc.ts';
import { requireWorkloadId, resolvePod } from './resolve.ts';

const MAX_CHUNK_BYTES = 64 * 1024;
/** After the informer shows the container terminated, the log stream gets this long to end by itself. */
const TERMINATED_GRACE_MS = 2_000;

export interface LogQuery {
  container: string;
  follow?: boolean;
  timestamps?: boolean;
  tailLines?: number;
  sinceTime?: string;
}

function validDate(date: Date, field: string): string {
  if (Number.isNaN(date.getTime()))
    throw invalidArgument('invalid_since', `${field} is out of range`);
  return date.toISOString();
}

/** PodLogOptions from the request: tail_lines over tail, since_time over since. */
export function logQuery(req: StreamWorkloadLogsRequest, container: string): LogQuery {
  const query: LogQuery = { container };
  if (req.follow) query.follow = true;
  if (req.timestamps) query.timestamps = true;
  if (req.tailLines > 0) query.tailLines = req.tailLines;
  else if (req.tail > 0) query.tailLines = req.tail;
  if (req.sinceTime) query.sinceTime = validDate(req.sinceTime, 'since_time');
  else if (req.since > 0) query.sinceTime = validDate(new Date(req.since * 1000), 'since');
  return query;
}

function containerNames(pod: Pod): string[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name);
}

function containerTerminated(pod: Pod, container: string): boolean {
  const statuses = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  return statuses.some((s) => s.name === container && s.state?.terminated !== undefined);
}

type Ending =
  | { kind: 'eof' }
  | { kind: 'error'; err: unknown }
  | { kind: 'pod-deleted' }
  | { kind: 'cancelled' };

/** The Pod and container whose log a request asks for. */
async function logTarget(
  shim: ShimContext,
  req: StreamWorkloadLogsRequest,
  ctx: CallContext,
): Promise<{ podName: string; container: string }> {
  requireWorkloadId(req.workloadId);
  const container = req.containerName.trim();
  if (container === '') throw invalidArgument('container_name_required');
  const { podName, pod } = await resolvePod(shim, req.workloadId, ctx);
  if (!containerNames(pod).includes(container))
    throw new RpcError(status.NOT_FOUND, 'container_not_found');
  return { podName, container };
}

async function forwardChunks(
  stream: IncomingMessage,
  sink: StreamSink<StreamWorkloadLogsResponse>,
): Promise<void> {
  for await (const chunk of stream) {
    const data = chunk as Buffer;
    for (let offset = 0; offset < data.length; offset += MAX_CHUNK_BYTES) {
      await sink.send({
        event: {
          $case: 'chunk',
          chunk: { data: data.subarray(offset, offset + MAX_CHUNK_BYTES), ts: new Date() },
        },
      });
    }
  }
}

export async function streamWorkloadLogs(
  shim: ShimContext,
  req: StreamWorkloadLogsRequest,
  sink: StreamSink<StreamWorkloadLogsResponse>,
  ctx: CallContext,
): Promise<void> {
  const { podName, container } = await logTarget(shim, req, ctx);
  const query = logQuery(req, container);

  const abort = new AbortController();
  const onCancel = (): void => abort.abort();
  ctx.signal.addEventListener('abort', onCancel, { once: true });
  let ending: Ending | undefined;
  let stream: IncomingMessage | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  const end = (why: Ending): void => {
    ending ??= why;
    stream?.destroy();
  };
  const unsubscribe = shim.caches.subscribe('pods', podName, (current) => {
    if (!current) end({ kind: 'pod-deleted' });
    else if (
      query.follow &&
      !graceTimer &&
      !current.metadata?.deletionTimestamp &&
      containerTerminated(current, container)
    ) {
      graceTimer = setTimeout(() => end({ kind: 'eof' }), TERMINATED_GRACE_MS);
    }
  });

  try {
    stream = await shim.kube.stream(shim.kube.resource(PODS).path(shim.namespace, podName, 'log'), {
      query: { ...query },
      signal: abort.signal,
    });
    if (ending) stream.destroy();
    try {
      await forwardChunks(stream, sink);
      ending ??= { kind: 'eof' };
    } catch (err) {
      ending ??= ctx.signal.aborted ? { kind: 'cancelled' } : { kind: 'error', err };
    }
  } catch (err) {
    if (ctx.signal.aborted) return;
    if (!ending) throw err;
  } finally {
    unsubscribe();
    clearTimeout(graceTimer);
    ctx.signal.removeEventListener('abort', onCancel);
    stream?.destroy();
  }

  if (ctx.signal.aborted || ending?.kind === 'cancelled') return;
  if (ending?.kind === 'pod-deleted' || (await podGone(shim, podName))) {
    throw new RpcError(status.UNAVAILABLE, 'pod_deleted');
  }
  if (ending?.kind === 'error') {
    ctx.logger.warn({ err: ending.err, pod: podName }, 'log stream failed');
    throw new RpcError(status.INTERNAL, 'logs_stream_error');
  }
}

/** The Pod is deleted or being deleted (asked of the API server: the cache may lag). */
async function podGone(shim: ShimContext, podName: string): Promise<boolean> {
  try {
    const pod = await shim.kube.resource<Pod>(PODS).get(shim.namespace, podName);
    return Boolean(pod.metadata?.deletionTimestamp);
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}
