import {
  diag,
  DiagLogLevel,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { AgentWorkload, AgentWorkloadStatus } from '../api/agentworkload.ts';
import { randomHex } from '../kube/random-ids.ts';
import { childLogger } from '../kube/child-logger.ts';

export const TRACER_NAME = 'k8s-runner';

/** Where workload transitions go (the workload controller's state sink has this shape). */
export interface TransitionSink {
  workloadChanged(workload: AgentWorkload, status: AgentWorkloadStatus): void;
}

let processTracer: Tracer | undefined;

/** The process-wide tracer: a no-op until startTracing registers an exporting provider. */
export function defaultTracer(): Tracer {
  processTracer ??= trace.getTracer(TRACER_NAME);
  return processTracer;
}

export interface Tracing {
  readonly enabled: boolean;
  /** Exports what is still buffered, then stops. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: the OTLP/HTTP base URL; spans go to `<endpoint>/v1/traces`. */
  endpoint?: string;
  serviceName: string;
  /** service.instance.id, e.g. the Pod name. */
  instanceId: string;
  /** How long finished spans wait to be batched, in ms. */
  scheduledDelayMs?: number;
  logger: Logger;
}

const DISABLED: Tracing = { enabled: false, shutdown: () => Promise.resolve() };

/** The traces URL of an OTLP/HTTP base endpoint, as the OTLP exporter specification derives it. */
export function tracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

/**
 * Registers a tracer provider that exports over OTLP/HTTP (protobuf) when an endpoint is
 * configured. Without one the SDK is never loaded and every span is the API's no-op.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  if (!options.endpoint) return DISABLED;
  const [
    { TracerProvider, BatchSpanProcessor },
    { OTLPTraceExporter },
    { resourceFromAttributes },
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-proto'),
    import('@opentelemetry/resources'),
  ]);
  const log = childLogger(options.logger, { component: 'otel' });
  diag.setLogger(
    {
      error: (message, ...args) => log.warn({ args }, message),
      warn: (message, ...args) => log.warn({ args }, message),
      info: (message) => log.debug(message),
      debug: () => {},
      verbose: () => {},
    },
    DiagLogLevel.WARN,
  );
  const url = tracesUrl(options.endpoint);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.serviceName,
      'service.instance.id': options.instanceId,
    }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url }),
        scheduledDelayMillis: options.scheduledDelayMs,
      }),
    ],
  });
  trace.setGlobalTracerProvider(provider);
  log.info({ url }, 'exporting traces over OTLP');
  return { enabled: true, shutdown: () => provider.shutdown() };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A W3C traceparent header's span context, if it is well formed. */
export function parseTraceparent(value: unknown): SpanContext | undefined {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT.exec(value.trim().toLowerCase());
  if (!match) return undefined;
  const context: SpanContext = {
    traceId: match[1]!,
    spanId: match[2]!,
    traceFlags: parseInt(match[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  return isSpanContextValid(context) ? context : undefined;
}

export function formatTraceparent(context: SpanContext): string {
  const flags = (context.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, '0');
  return `00-${context.traceId}-${context.spanId}-${flags}`;
}

/** gRPC codes that are the server's fault (OpenTelemetry's RPC conventions mark only these as errors). */
const SERVER_ERROR_CODES = new Set([2, 4, 12, 13, 14, 15]);

export interface RpcSpan {
  /** Logged with the call; the span's trace when tracing is on, else the caller's or a fresh one. */
  readonly traceId: string;
  /** What to propagate: this call's position in the trace. */
  readonly traceparent: string;
  end(code: number, codeName: string): void;
}

/** A SERVER span for one gRPC call, child of the caller's traceparent when it sent one. */
export function startRpcSpan(
  service: string,
  method: string,
  incomingTraceparent: unknown,
  tracer: Tracer = defaultTracer(),
): RpcSpan {
  const parent = parseTraceparent(incomingTraceparent);
  const span = tracer.startSpan(
    `${service}/${method}`,
    {
      kind: SpanKind.SERVER,
      attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method },
    },
    parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT,
  );
  let context = span.spanContext();
  if (!isSpanContextValid(context)) {
    context = parent ?? {
      traceId: randomHex(16),
      spanId: randomHex(8),
      traceFlags: TraceFlags.NONE,
    };
  }
  let ended = false;
  return {
    traceId: context.traceId,
    traceparent: formatTraceparent(context),
    end(code, codeName) {
      if (ended) return;
      ended = true;
      span.setAttribute('rpc.grpc.status_code', code);
      if (SERVER_ERROR_CODES.has(code))
        span.setStatus({ code: SpanStatusCode.ERROR, message: codeName });
      span.end();
    },
  };
}

type Stage = 'start' | 'run' | 'stop';

interface Lifecycle {
  root: Span;
  stage?: { name: Stage; span: Span };
}

const STAGE_OF_PHASE: Record<string, Stage | undefined> = {
  Pending: 'start',
  Starting: 'start',
  Running: 'run',
  Stopping: 'stop',
};

/**
 * Traces each workload's lifecycle as a `workload` span (from the first observed phase to
 * Stopped, Failed or deletion) with one child per stage: `workload.start` (Pending/Starting
 * until Running or Failed), `workload.run` and `workload.stop`. Phase transitions are also
 * events on the root span. Only the replica that reconciles sees transitions; a new leader
 * starts new spans for the workloads that change under it.
 */
export class WorkloadLifecycleTracer implements TransitionSink {
  private readonly open = new Map<string, Lifecycle>();

  constructor(
    private readonly next?: TransitionSink,
    private readonly tracer: Tracer = defaultTracer(),
  ) {}

  get openSpans(): number {
    return this.open.size;
  }

  workloadChanged(workload: AgentWorkload, status: AgentWorkloadStatus): void {
    try {
      this.record(workload, status);
    } finally {
      this.next?.workloadChanged(workload, status);
    }
  }

  /** The workload is gone: whatever was open ends here. */
  workloadDeleted(workload: AgentWorkload): void {
    const key = keyOf(workload);
    const lifecycle = this.open.get(key);
    if (!lifecycle) return;
    lifecycle.root.addEvent('deleted');
    this.finish(key, lifecycle, { code: SpanStatusCode.UNSET });
  }

  /** Ends every open span (leadership lost, shutdown): another replica carries on. */
  endAll(why: string): void {
    for (const [key, lifecycle] of this.open) {
      lifecycle.root.setAttribute('agyn.workload.trace_interrupted', why);
      this.finish(key, lifecycle, { code: SpanStatusCode.UNSET });
    }
  }

  private record(workload: AgentWorkload, status: AgentWorkloadStatus): void {
    const phase = status.phase ?? 'Pending';
    const key = keyOf(workload);
    let lifecycle = this.open.get(key);
    if (!lifecycle) {
      if (phase === 'Stopped' || phase === 'Failed') return;
      lifecycle = {
        root: this.tracer.startSpan('workload', {
          kind: SpanKind.INTERNAL,
          attributes: attributesOf(workload, status),
          startTime: unseenStartOf(workload, phase),
        }),
      };
      this.open.set(key, lifecycle);
    }
    const { root } = lifecycle;
    if (status.runner) root.setAttribute('agyn.runner.name', status.runner);
    root.addEvent(phase, {
      ...(status.reason ? { reason: status.reason } : {}),
      ...(status.message ? { message: status.message } : {}),
    });

    if (phase === 'Failed') {
      const failure = { code: SpanStatusCode.ERROR, message: status.reason ?? 'failed' };
      if (status.reason) root.setAttribute('agyn.workload.failure_reason', status.reason);
      this.finish(key, lifecycle, failure);
      return;
    }
    if (phase === 'Stopped') {
      this.finish(key, lifecycle, { code: SpanStatusCode.OK });
      return;
    }
    const stage = STAGE_OF_PHASE[phase];
    if (!stage || lifecycle.stage?.name === stage) return;
    if (!lifecycle.stage && stage === 'run') this.recordUnseenStart(workload, status, lifecycle);
    lifecycle.stage?.span.setStatus({ code: SpanStatusCode.OK });
    lifecycle.stage?.span.end();
    lifecycle.stage = {
      name: stage,
      span: this.tracer.startSpan(
        `workload.${stage}`,
        { kind: SpanKind.INTERNAL, attributes: attributesOf(workload, status) },
        trace.setSpan(ROOT_CONTEXT, root),
      ),
    };
  }

  /**
   * A workload whose first written status is Running (its Starting was coalesced away) still
   * gets its `workload.start` stage, from its creation; not one first seen mid-life (a new
   * leader), whose earlier status had a phase.
   */
  private recordUnseenStart(
    workload: AgentWorkload,
    status: AgentWorkloadStatus,
    lifecycle: Lifecycle,
  ): void {
    const startTime = unseenStartOf(workload, status.phase ?? 'Pending');
    if (!startTime) return;
    lifecycle.stage = {
      name: 'start',
      span: this.tracer.startSpan(
        'workload.start',
        {
          kind: SpanKind.INTERNAL,
          attributes: attributesOf(workload, status),
          startTime,
        },
        trace.setSpan(ROOT_CONTEXT, lifecycle.root),
      ),
    };
  }

  private finish(
    key: string,
    lifecycle: Lifecycle,
    status: { code: SpanStatusCode; message?: string },
  ): void {
    this.open.delete(key);
    if (lifecycle.stage) {
      lifecycle.stage.span.setStatus(status);
      lifecycle.stage.span.end();
    }
    lifecycle.root.setStatus(status);
    lifecycle.root.end();
  }
}

/** The creation time of a workload going Running with no phase written before. */
function unseenStartOf(workload: AgentWorkload, phase: string): Date | undefined {
  const previous = workload.status?.phase;
  if (phase !== 'Running' || (previous !== undefined && previous !== 'Pending')) return undefined;
  const created = Date.parse(workload.metadata.creationTimestamp ?? '');
  return Number.isNaN(created) ? undefined : new Date(created);
}

function keyOf(workload: AgentWorkload): string {
  return workload.metadata.uid ?? `${workload.metadata.namespace}/${workload.metadata.name}`;
}

function attributesOf(
  workload: AgentWorkload,
  status: AgentWorkloadStatus,
): Record<string, string> {
  const runner = status.runner ?? workload.status?.runner;
  const attributes: Record<string, string> = {
    'agyn.workload.id':
      workload.spec.workloadId ??
      status.workloadId ??
      workload.status?.workloadId ??
      workload.metadata.uid ??
      '',
    'agyn.workload.name': workload.metadata.name,
    'k8s.namespace.name': workload.metadata.namespace ?? '',
    'k8s.pod.name': workload.metadata.name,
  };
  if (runner) attributes['agyn.runner.name'] = runner;
  return attributes;
}

/**
 * The state sink the workload controller reports to: `sink` itself when tracing is off (no
 * cost), else a WorkloadLifecycleTracer in front of it that also hears of deletions.
 */
export function traceWorkloadLifecycle(
  tracing: Tracing,
  sink: TransitionSink,
  workloads: { addHandler(handler: { onDelete?(workload: AgentWorkload): void }): void },
): { sink: TransitionSink; endAll(why: string): void } {
  if (!tracing.enabled) return { sink, endAll: () => {} };
  const tracer = new WorkloadLifecycleTracer(sink);
  workloads.addHandler({ onDelete: (workload) => tracer.workloadDeleted(workload) });
  return { sink: tracer, endAll: (why) => tracer.endAll(why) };
}
