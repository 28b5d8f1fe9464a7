import { describe, expect, it } from '@jest/globals';
import { SpanStatusCode } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { AgentWorkload, AgentWorkloadStatus } from '../../src/api/agentworkload.ts';
import type { Runner } from '../../src/api/runner.ts';
import {
  enrollmentSamples,
  registerCacheMetrics,
  workloadSamples,
} from '../../src/observability/cache-metrics.ts';
import { createLogger } from '../../src/observability/logging.ts';
import { setKubeMetrics } from '../../src/kube/metrics.ts';
import { metricsRegistry, promKubeMetrics } from '../../src/observability/metrics.ts';

// The app's metrics, as main plugs them into the generic layer.
setKubeMetrics(promKubeMetrics);
import {
  formatTraceparent,
  parseTraceparent,
  startRpcSpan,
  tracesUrl,
  WorkloadLifecycleTracer,
} from '../../src/observability/tracing.ts';
import { isRunnerEnrolled } from '../../src/runner/runner-status.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

function workload(name: string, status?: AgentWorkloadStatus): AgentWorkload {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name, namespace: 'agents', uid: `uid-${name}` },
    spec: { workloadId: `wl-${name}` } as AgentWorkload['spec'],
    status,
  };
}

function runner(name: string, enrolled: 'True' | 'False' | undefined): Runner {
  const conditions = enrolled
    ? [{ type: 'Enrolled', status: enrolled, reason: 'x', message: '', lastTransitionTime: '' }]
    : undefined;
  return { metadata: { name }, status: { conditions } } as unknown as Runner;
}

describe('traceparent', () => {
  it('parses and formats W3C trace context', () => {
    const context = parseTraceparent(`00-${TRACE}-${SPAN}-01`);
    expect(context).toEqual({ traceId: TRACE, spanId: SPAN, traceFlags: 1, isRemote: true });
    expect(formatTraceparent(context!)).toBe(`00-${TRACE}-${SPAN}-01`);
  });

  it('rejects malformed or all-zero ids', () => {
    for (const bad of [
      undefined,
      42,
      '',
      `01-${TRACE}-${SPAN}-01`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-xyz-01`,
    ]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
  });

  it('derives the OTLP traces URL from the base endpoint', () => {
    expect(tracesUrl('http://collector:4318')).toBe('http://collector:4318/v1/traces');
    expect(tracesUrl('http://collector:4318/')).toBe('http://collector:4318/v1/traces');
  });
});

describe('startRpcSpan without a tracer provider (tracing off)', () => {
  it("keeps the caller's trace id", () => {
    const span = startRpcSpan('svc', 'Ready', `00-${TRACE}-${SPAN}-01`);
    expect(span.traceId).toBe(TRACE);
    expect(span.traceparent).toBe(`00-${TRACE}-${SPAN}-01`);
    span.end(0, 'OK');
  });

  it('makes up a trace id for logs when the caller sent none', () => {
    const a = startRpcSpan('svc', 'Ready', undefined);
    const b = startRpcSpan('svc', 'Ready', 'garbage');
    expect(a.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(b.traceId).not.toBe(a.traceId);
    expect(parseTraceparent(a.traceparent)?.traceId).toBe(a.traceId);
  });
});

function inMemoryTracer() {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  return { exporter, tracer: provider.getTracer('test') };
}

describe('startRpcSpan with a tracer provider', () => {
  it("is a SERVER span under the caller's span, with the gRPC status", () => {
    const { exporter, tracer } = inMemoryTracer();
    const span = startRpcSpan(
      'agynio.api.runner.v1.RunnerService',
      'StartWorkload',
      `00-${TRACE}-${SPAN}-01`,
      tracer,
    );
    expect(span.traceId).toBe(TRACE);
    span.end(13, 'INTERNAL');
    span.end(0, 'OK');
    const [finished] = exporter.getFinishedSpans();
    expect(exporter.getFinishedSpans()).toHaveLength(1);
    expect(finished).toMatchObject({
      name: 'agynio.api.runner.v1.RunnerService/StartWorkload',
      status: { code: SpanStatusCode.ERROR, message: 'INTERNAL' },
      parentSpanContext: { spanId: SPAN },
    });
    expect(finished!.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.method': 'StartWorkload',
      'rpc.grpc.status_code': 13,
    });
    expect(span.traceparent).toBe(`00-${TRACE}-${finished!.spanContext().spanId}-01`);
  });
});

describe('WorkloadLifecycleTracer', () => {
  it('traces start -> running -> stop as a workload span with one child per stage', () => {
    const { exporter, tracer } = inMemoryTracer();
    const forwarded: string[] = [];
    const lifecycle = new WorkloadLifecycleTracer(
      { workloadChanged: (_w, s) => void forwarded.push(s.phase ?? '') },
      tracer,
    );
    const aw = workload('a');
    for (const phase of ['Pending', 'Starting', 'Running', 'Stopping', 'Stopped'] as const) {
      lifecycle.workloadChanged(aw, { phase, runner: 'local' });
    }
    expect(forwarded).toEqual(['Pending', 'Starting', 'Running', 'Stopping', 'Stopped']);
    expect(lifecycle.openSpans).toBe(0);
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual([
      'workload.start',
      'workload.run',
      'workload.stop',
      'workload',
    ]);
    const root = spans.find((s) => s.name === 'workload')!;
    expect(root.attributes).toMatchObject({
      'agyn.workload.id': 'wl-a',
      'agyn.runner.name': 'local',
      'k8s.namespace.name': 'agents',
    });
    expect(root.events.map((e) => e.name)).toEqual([
      'Pending',
      'Starting',
      'Running',
      'Stopping',
      'Stopped',
    ]);
    expect(root.status.code).toBe(SpanStatusCode.OK);
    for (const child of spans.filter((s) => s !== root)) {
      expect(child.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
      expect(child.spanContext().traceId).toBe(root.spanContext().traceId);
    }
  });

  it('marks a failure as an error with its reason', () => {
    const { exporter, tracer } = inMemoryTracer();
    const lifecycle = new WorkloadLifecycleTracer(undefined, tracer);
    const aw = workload('b');
    lifecycle.workloadChanged(aw, { phase: 'Starting' });
    lifecycle.workloadChanged(aw, {
      phase: 'Failed',
      reason: 'image_pull_failed',
      message: 'pull failed',
    });
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => [s.name, s.status])).toEqual([
      ['workload.start', { code: SpanStatusCode.ERROR, message: 'image_pull_failed' }],
      ['workload', { code: SpanStatusCode.ERROR, message: 'image_pull_failed' }],
    ]);
    expect(spans[1]!.events.at(-1)?.attributes).toEqual({
      reason: 'image_pull_failed',
      message: 'pull failed',
    });
  });

  it('gives a workload whose first status is Running its start stage from its creation', () => {
    const { exporter, tracer } = inMemoryTracer();
    const lifecycle = new WorkloadLifecycleTracer(undefined, tracer);
    const created = '2026-01-01T00:00:00Z';
    const fresh = {
      ...workload('f'),
      metadata: { ...workload('f').metadata, creationTimestamp: created },
    };
    lifecycle.workloadChanged(fresh, { phase: 'Running' });
    lifecycle.workloadChanged({ ...fresh, status: { phase: 'Running' } }, { phase: 'Stopped' });
    // Seen first mid-life (a new leader): its earlier phase was written, so no start stage.
    const later = { ...fresh, metadata: { ...fresh.metadata, uid: 'uid-g' } };
    lifecycle.workloadChanged({ ...later, status: { phase: 'Starting' } }, { phase: 'Running' });
    lifecycle.endAll('test');
    const spans = exporter.getFinishedSpans();
    expect(spans.map((x) => x.name)).toEqual([
      'workload.start',
      'workload.run',
      'workload',
      'workload.run',
      'workload',
    ]);
    const [start, , root] = spans;
    expect(start!.startTime).toEqual(root!.startTime);
    expect(start!.startTime[0]).toBe(Date.parse(created) / 1000);
    expect(start!.status.code).toBe(SpanStatusCode.OK);
  });

  it('ends open spans on deletion and when reconciling stops, and ignores already finished workloads', () => {
    const { exporter, tracer } = inMemoryTracer();
    const lifecycle = new WorkloadLifecycleTracer(undefined, tracer);
    lifecycle.workloadChanged(workload('c'), { phase: 'Running' });
    lifecycle.workloadChanged(workload('d'), { phase: 'Starting' });
    lifecycle.workloadChanged(workload('e'), { phase: 'Stopped' });
    expect(lifecycle.openSpans).toBe(2);
    lifecycle.workloadDeleted(workload('c'));
    lifecycle.endAll('leadership lost');
    expect(lifecycle.openSpans).toBe(0);
    const roots = exporter.getFinishedSpans().filter((s) => s.name === 'workload');
    expect(roots).toHaveLength(2);
    expect(roots[0]!.events.at(-1)?.name).toBe('deleted');
    expect(roots[1]!.attributes['agyn.workload.trace_interrupted']).toBe('leadership lost');
  });
});

describe('createLogger', () => {
  it('redacts credentials but keeps the replica identity', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (s: string) => void lines.push(s) });
    logger.info(
      {
        identity: 'pod-a',
        token: 't0ken',
        request: { serviceToken: 's3rvice', identityJson: '{"key":"k3y"}' },
        headers: { authorization: 'Bearer b3arer' },
        secret: { data: { token: 'ZGF0YQ==' } },
      },
      'hello',
    );
    const text = lines.join('');
    for (const secret of ['t0ken', 's3rvice', 'k3y', 'b3arer', 'ZGF0YQ=='])
      expect(text).not.toContain(secret);
    expect(JSON.parse(text)).toMatchObject({
      identity: 'pod-a',
      token: '[redacted]',
      name: 'k8s-runner',
    });
  });
});

describe('cache gauges', () => {
  it('count workloads by phase and reason, every phase present', () => {
    const samples = workloadSamples([
      workload('a', { phase: 'Running' }),
      workload('b', { phase: 'Running' }),
      workload('c', { phase: 'Failed', reason: 'crashloop' }),
      workload('d'),
    ]);
    const byKey = Object.fromEntries(
      samples.map((s) => [`${s.labels.phase}/${s.labels.reason}`, s.value]),
    );
    expect(byKey).toEqual({
      'Pending/': 1,
      'Starting/': 0,
      'Running/': 2,
      'Stopping/': 0,
      'Stopped/': 0,
      'Failed/': 0,
      'Failed/crashloop': 1,
    });
  });

  it('report enrollment from the Enrolled condition', () => {
    expect(
      enrollmentSamples(
        [runner('a', 'True'), runner('b', 'False'), runner('c', undefined)],
        isRunnerEnrolled,
      ),
    ).toEqual([
      { labels: { runner: 'a' }, value: 1 },
      { labels: { runner: 'b' }, value: 0 },
      { labels: { runner: 'c' }, value: 0 },
    ]);
  });

  it('are read from the caches at scrape time', async () => {
    const workloads = [workload('a', { phase: 'Running' })];
    const runners = [runner('gone', 'True')];
    const unregister = registerCacheMetrics({
      workloads: { list: () => workloads },
      runners: { cache: { list: () => runners }, enrolled: isRunnerEnrolled },
    });
    try {
      let text = await metricsRegistry.metrics();
      expect(text).toContain('k8s_runner_workloads{phase="Running",reason=""} 1');
      expect(text).toContain('k8s_runner_runner_enrolled{runner="gone"} 1');
      workloads.push(workload('b', { phase: 'Running' }));
      runners.splice(0, 1, runner('new', 'False'));
      text = await metricsRegistry.metrics();
      expect(text).toContain('k8s_runner_workloads{phase="Running",reason=""} 2');
      expect(text).toContain('k8s_runner_runner_enrolled{runner="new"} 0');
      expect(text).not.toContain('runner="gone"');
    } finally {
      unregister();
    }
  });
});
