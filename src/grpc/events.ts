import type { IncomingMessage } from 'node:http';
import { EVENTS } from '../kube/resources.ts';
import type {
  EventFilter,
  RunnerError,
  StreamEventsRequest,
  StreamEventsResponse,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { invalidArgument } from './errors.ts';
import type { CallContext, ShimContext, StreamSink } from './rpc.ts';

/** A core/v1 Event as the watch delivers it (only the fields the filters read). */
export interface KubeEvent {
  metadata?: { name?: string; namespace?: string; managedFields?: unknown };
  involvedObject?: {
    kind?: string;
    name?: string;
    namespace?: string;
    uid?: string;
    apiVersion?: string;
    fieldPath?: string;
  };
  reason?: string;
  type?: string;
  eventTime?: string | null;
  lastTimestamp?: string | null;
  firstTimestamp?: string | null;
  source?: { component?: string };
  reportingComponent?: string;
}

const FIELDS: Record<string, (e: KubeEvent) => string | undefined> = {
  'involvedObject.name': (e) => e.involvedObject?.name,
  'involvedObject.namespace': (e) => e.involvedObject?.namespace,
  'involvedObject.kind': (e) => e.involvedObject?.kind,
  'involvedObject.uid': (e) => e.involvedObject?.uid,
  'involvedObject.apiVersion': (e) => e.involvedObject?.apiVersion,
  'involvedObject.fieldPath': (e) => e.involvedObject?.fieldPath,
  reason: (e) => e.reason,
  type: (e) => e.type,
  namespace: (e) => e.metadata?.namespace,
  'metadata.name': (e) => e.metadata?.name,
  'metadata.namespace': (e) => e.metadata?.namespace,
  'source.component': (e) => e.source?.component,
  reportingComponent: (e) => e.reportingComponent,
};

export interface CompiledFilter {
  field: (e: KubeEvent) => string | undefined;
  values: Set<string>;
}

/**
 * Filters with values, AND-combined. An unknown key is refused with INVALID_ARGUMENT
 * (upstream silently matched nothing).
 */
export function compileFilters(filters: EventFilter[]): CompiledFilter[] {
  const compiled: CompiledFilter[] = [];
  for (const filter of filters) {
    if (filter.values.length === 0) continue;
    const field = FIELDS[filter.key.trim()];
    if (!field) {
      throw invalidArgument(
        'invalid_filter_key',
        `${JSON.stringify(filter.key)} (supported: ${Object.keys(FIELDS).join(', ')})`,
      );
    }
    compiled.push({ field, values: new Set(filter.values) });
  }
  return compiled;
}

export function eventTime(event: KubeEvent, now: Date): Date {
  for (const value of [event.eventTime, event.lastTimestamp, event.firstTimestamp]) {
    if (!value) continue;
    const date = new Date(value);
    if (!Number.isNaN(date.getTime())) return date;
  }
  return now;
}

export function eventMatches(
  event: KubeEvent,
  filters: CompiledFilter[],
  sinceMs: number,
  now: Date,
): boolean {
  if (sinceMs > 0 && eventTime(event, now).getTime() < sinceMs) return false;
  return filters.every((f) => f.values.has(f.field(event) ?? ''));
}

interface WatchLine {
  type?: string;
  object?: KubeEvent & { code?: number; message?: string; reason?: string };
}

function inBand(code: string, message: string): StreamEventsResponse {
  const error: RunnerError = { code, message, details: {}, retryable: false };
  return { event: { $case: 'error', error } };
}

/**
 * Watches core/v1 Events in the workload namespace (existing ones first, as the API
 * server replays them). Errors once streaming are in-band, then the stream ends OK.
 */
export async function streamEvents(
  shim: ShimContext,
  req: StreamEventsRequest,
  sink: StreamSink<StreamEventsResponse>,
  ctx: CallContext,
): Promise<void> {
  const filters = compileFilters(req.filters);
  const sinceMs = req.since > 0 ? req.since * 1000 : 0;
  let stream: IncomingMessage;
  try {
    stream = await shim.kube.stream(shim.kube.resource(EVENTS).path(shim.namespace), {
      query: { watch: 1 },
      signal: ctx.signal,
    });
  } catch (err) {
    if (ctx.signal.aborted) return;
    throw err;
  }
  const onCancel = (): void => {
    stream.destroy();
  };
  ctx.signal.addEventListener('abort', onCancel, { once: true });
  let buffered = '';
  try {
    for await (const chunk of stream) {
      buffered += (chunk as Buffer).toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        let event: WatchLine;
        try {
          event = JSON.parse(line) as WatchLine;
        } catch {
          await sink.send(inBand('events_stream_error', 'malformed watch event'));
          return;
        }
        if (event.type === 'ERROR') {
          await sink.send(
            inBand('events_stream_error', event.object?.message ?? 'event watch failed'),
          );
          return;
        }
        if ((event.type !== 'ADDED' && event.type !== 'MODIFIED') || !event.object) continue;
        const now = new Date();
        if (!eventMatches(event.object, filters, sinceMs, now)) continue;
        if (event.object.metadata) delete event.object.metadata.managedFields;
        let json: string;
        try {
          json = JSON.stringify(event.object);
        } catch {
          await sink.send(inBand('events_marshal_error', 'could not encode an event'));
          return;
        }
        await sink.send({
          event: { $case: 'data', data: { json, ts: eventTime(event.object, now) } },
        });
      }
    }
  } catch (err) {
    if (ctx.signal.aborted) return;
    ctx.logger.debug({ err }, 'event watch ended with an error');
  } finally {
    ctx.signal.removeEventListener('abort', onCancel);
    stream.destroy();
  }
  if (ctx.signal.aborted) return;
  await sink.send(inBand('events_watcher_closed', 'event watch closed'));
}
