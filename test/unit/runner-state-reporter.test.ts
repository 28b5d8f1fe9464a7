import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type {
  AgentWorkload,
  AgentWorkloadStatus,
  ContainerState,
} from '../../src/api/agentworkload.ts';
import {
  ContainerRole,
  ContainerStatus,
  WorkloadStatus,
} from '../../src/gen/agynio/api/runners/v1/runners.ts';
import {
  GatewayClient,
  GatewayError,
  type WorkloadStateReport,
} from '../../src/runner/gateway-client.ts';
import {
  GatewayStateReporter,
  type ReportTarget,
  type ReportTargetLookup,
  type ReportTargetSource,
} from '../../src/runner/state-reporter.ts';
import { workloadReportOf } from '../../src/runner/workload-report.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';

const logger = pino({ level: 'silent' });
const OBSERVED = new Date('2030-02-03T04:05:06.000Z');

function workload(id: string, overrides: Partial<AgentWorkload['spec']> = {}): AgentWorkload {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: `workload-${id}`, namespace: 'agents', uid: `uid-${id}` },
    spec: {
      workloadId: id,
      main: { name: 'main', image: 'agent:1' },
      ...overrides,
    } as AgentWorkload['spec'],
    // The id the controller recorded after checking it is unique.
    status: { workloadId: id },
  };
}

function container(overrides: Partial<ContainerState> = {}): ContainerState {
  return {
    name: 'main',
    role: 'main',
    image: 'agent:1',
    state: 'running',
    restartCount: 0,
    ...overrides,
  };
}

function status(
  phase: AgentWorkloadStatus['phase'],
  extra: Partial<AgentWorkloadStatus> = {},
): AgentWorkloadStatus {
  return { phase, runner: 'r1', containers: [container()], ...extra };
}

describe('workloadReportOf', () => {
  it.each([
    ['Starting', 'STARTING'],
    ['Running', 'RUNNING'],
    ['Stopping', 'STOPPING'],
    ['Stopped', 'STOPPED'],
    ['Failed', 'FAILED'],
  ] as const)('maps phase %s to %s by name', (phase, reported) => {
    expect(workloadReportOf(workload('w'), status(phase), OBSERVED)?.status).toBe(reported);
  });

  it('has nothing to report for Pending, an unplaced workload or a workload without id', () => {
    expect(workloadReportOf(workload('w'), status('Pending'), OBSERVED)).toBeUndefined();
    expect(workloadReportOf(workload('w'), { phase: 'Running' }, OBSERVED)).toBeUndefined();
    const anonymous = {
      ...workload('w'),
      spec: { main: { name: 'm', image: 'i' } } as AgentWorkload['spec'],
      status: undefined,
    };
    anonymous.metadata = { name: 'x' };
    expect(workloadReportOf(anonymous, status('Running'), OBSERVED)).toBeUndefined();
  });

  it('takes the workload id the controller recorded, never the spec or uid alone', () => {
    const unverified = { ...workload('claimed'), status: undefined };
    expect(workloadReportOf(unverified, status('Running'), OBSERVED)).toBeUndefined();
    expect(
      workloadReportOf(unverified, status('Running', { workloadId: 'verified' }), OBSERVED)
        ?.workloadId,
    ).toBe('verified');
    // A duplicate of another workload's id is recorded with its own uid: that is what is reported.
    expect(
      workloadReportOf(workload('victim'), status('Running', { workloadId: 'uid-x' }), OBSERVED)
        ?.workloadId,
    ).toBe('uid-x');
  });

  it('maps containers: roles and states by name, times parsed, unknown values skipped', () => {
    const report = workloadReportOf(
      workload('w'),
      status('Failed', {
        containers: [
          container({
            name: 'init',
            role: 'init',
            state: 'terminated',
            exitCode: 0,
            reason: 'Completed',
            startedAt: '2030-01-01T00:00:00Z',
            finishedAt: '2030-01-01T00:00:02Z',
            containerId: 'containerd://1',
          }),
          container({
            name: 'ziti',
            role: 'sidecar',
            sidecarRole: 'ziti',
            state: 'waiting',
            reason: 'CrashLoopBackOff',
            message: 'back-off',
            restartCount: 4,
          }),
          container({ state: 'terminated', exitCode: 137, startedAt: 'not a date' }),
          container({ name: 'odd', role: 'bogus' as ContainerState['role'] }),
        ],
      }),
      OBSERVED,
    );
    expect(report).toEqual({
      runner: 'r1',
      workloadId: 'w',
      status: 'FAILED',
      observedAt: OBSERVED,
      containers: [
        {
          containerId: 'containerd://1',
          name: 'init',
          role: 'INIT',
          image: 'agent:1',
          status: 'TERMINATED',
          reason: 'Completed',
          message: undefined,
          exitCode: 0,
          restartCount: 0,
          startedAt: new Date('2030-01-01T00:00:00Z'),
          finishedAt: new Date('2030-01-01T00:00:02Z'),
        },
        {
          containerId: '',
          name: 'ziti',
          role: 'SIDECAR',
          image: 'agent:1',
          status: 'WAITING',
          reason: 'CrashLoopBackOff',
          message: 'back-off',
          exitCode: undefined,
          restartCount: 4,
          startedAt: undefined,
          finishedAt: undefined,
        },
        {
          containerId: '',
          name: 'main',
          role: 'MAIN',
          image: 'agent:1',
          status: 'TERMINATED',
          reason: undefined,
          message: undefined,
          exitCode: 137,
          restartCount: 0,
          startedAt: undefined,
          finishedAt: undefined,
        },
      ],
    });
  });
});

describe('GatewayStateReporter against the test gateway', () => {
  let gw: TestGateway;
  let client: GatewayClient;
  let reporter: GatewayStateReporter | undefined;
  const rejected: Array<[string, string]> = [];
  let lookup: (runner: string) => ReportTargetLookup;

  const targets: ReportTargetSource = {
    reportTarget: (runner) => lookup(runner),
    identityRejected: (runner, runnerId) => rejected.push([runner, runnerId]),
  };

  function target(gateway: ReportTarget['gateway'] = client): ReportTargetLookup {
    return {
      ok: true,
      target: { gateway, gatewayUrl: gw.url, runnerId: 'rid-1', serviceToken: 'tok-1' },
    };
  }

  function start(options: Partial<ConstructorParameters<typeof GatewayStateReporter>[0]> = {}) {
    reporter = new GatewayStateReporter({
      targets,
      logger,
      backoff: { initialMs: 20, maxMs: 160 },
      ...options,
    });
    return reporter;
  }

  const statuses = (id?: string) =>
    gw.requests.reportWorkloadState
      .filter((r) => id === undefined || r.workloadId === id)
      .map((r) => WorkloadStatus[r.status]);

  beforeEach(async () => {
    gw = await startTestGateway();
    client = new GatewayClient({ url: gw.url, timeoutMs: 2_000 });
    lookup = () => target();
    rejected.length = 0;
  });

  afterEach(async () => {
    await reporter?.stop();
    reporter = undefined;
    client.close();
    await gw.stop();
  });

  it('sends the report with the runner identity and runners.v1 enum numbers', async () => {
    const r = start();
    r.workloadChanged(
      workload('w1'),
      status('Running', {
        containers: [
          container(),
          container({ name: 'init', role: 'init', state: 'terminated', exitCode: 0 }),
        ],
      }),
    );
    await r.flush();
    expect(gw.requests.reportWorkloadState).toHaveLength(1);
    const sent = gw.requests.reportWorkloadState[0];
    expect(sent).toMatchObject({
      runnerId: 'rid-1',
      serviceToken: 'tok-1',
      workloadId: 'w1',
      status: WorkloadStatus.WORKLOAD_STATUS_RUNNING,
    });
    expect(sent?.status).toBe(2);
    expect(sent?.containers.map((c) => [c.role, c.status, c.exitCode])).toEqual([
      [ContainerRole.CONTAINER_ROLE_MAIN, ContainerStatus.CONTAINER_STATUS_RUNNING, undefined],
      [ContainerRole.CONTAINER_ROLE_INIT, ContainerStatus.CONTAINER_STATUS_TERMINATED, 0],
    ]);
    expect(r.stats.delivered).toBe(1);
  });

  it('keeps one report in flight per workload and coalesces the rest: the latest state wins', async () => {
    gw.behaviour.delayMs = 150;
    const r = start();
    r.workloadChanged(workload('w1'), status('Starting'));
    r.workloadChanged(workload('w1'), status('Running'));
    r.workloadChanged(workload('w1'), status('Stopping'));
    r.workloadChanged(workload('w1'), status('Stopped'));
    r.workloadChanged(workload('w2'), status('Starting'));
    expect(r.pending()).toBe(2);
    await r.flush();
    expect(statuses('w1')).toEqual(['WORKLOAD_STATUS_STARTING', 'WORKLOAD_STATUS_STOPPED']);
    expect(statuses('w2')).toEqual(['WORKLOAD_STATUS_STARTING']);
    expect(r.stats.coalesced).toBe(2);
    const times = gw.requests.reportWorkloadState
      .filter((x) => x.workloadId === 'w1')
      .map((x) => x.observedAt?.getTime() ?? 0);
    expect(times[1]).toBeGreaterThanOrEqual(times[0] ?? Infinity);
  });

  it('skips a state identical to the last one delivered or in flight', async () => {
    const r = start();
    r.workloadChanged(workload('w1'), status('Running'));
    r.workloadChanged(workload('w1'), status('Running'));
    await r.flush();
    r.workloadChanged(workload('w1'), status('Running'));
    await r.flush();
    expect(statuses()).toEqual(['WORKLOAD_STATUS_RUNNING']);
    r.workloadChanged(
      workload('w1'),
      status('Running', { containers: [container({ restartCount: 1 })] }),
    );
    await r.flush();
    expect(statuses()).toHaveLength(2);
  });

  it('retries with capped backoff during an outage without blocking, then delivers the latest state', async () => {
    gw.behaviour.stateFailure = 'UNAVAILABLE';
    const r = start();
    const t0 = performance.now();
    for (let i = 0; i < 200; i++)
      r.workloadChanged(
        workload(`w${i % 20}`),
        status('Running', { containers: [container({ restartCount: i })] }),
      );
    expect(performance.now() - t0).toBeLessThan(100);
    await new Promise((res) => setTimeout(res, 700));
    // 20 workloads; per workload attempts at about 0, 20, 60, 140, 300, 460, 620 ms (±20 %).
    const perWorkload = gw.count('reportWorkloadState') / 20;
    expect(perWorkload).toBeGreaterThanOrEqual(3);
    expect(perWorkload).toBeLessThanOrEqual(9);
    expect(r.pending()).toBe(20);
    gw.behaviour.stateFailure = undefined;
    gw.clearRequests();
    await r.flush();
    expect(r.pending()).toBe(0);
    // Each workload's latest state (restartCount 180..199) and nothing older.
    expect(
      gw.requests.reportWorkloadState
        .map((x) => x.containers[0]?.restartCount)
        .sort((a, b) => (a ?? 0) - (b ?? 0)),
    ).toEqual(Array.from({ length: 20 }, (_, i) => 180 + i));
  });

  it('never has more than maxConcurrent reports in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const counting: ReportTarget['gateway'] = {
      async reportWorkloadState(report: WorkloadStateReport) {
        inFlight++;
        peak = Math.max(peak, inFlight);
        try {
          return await client.reportWorkloadState(report);
        } finally {
          inFlight--;
        }
      },
    };
    lookup = () => target(counting);
    gw.behaviour.delayMs = 20;
    const r = start({ maxConcurrent: 3 });
    for (let i = 0; i < 30; i++) r.workloadChanged(workload(`w${i}`), status('Running'));
    await r.flush();
    expect(gw.count('reportWorkloadState')).toBe(30);
    expect(peak).toBe(3);
  });

  it('delivers 1,000 workloads × 4 transitions promptly, coalescing what piles up', async () => {
    const r = start({ maxConcurrent: 8 });
    const phases = ['Starting', 'Running', 'Stopping', 'Stopped'] as const;
    const t0 = performance.now();
    let callerMs = 0;
    for (const phase of phases) {
      const c0 = performance.now();
      for (let i = 0; i < 1_000; i++) r.workloadChanged(workload(`w${i}`), status(phase));
      callerMs += performance.now() - c0;
      await new Promise((res) => setImmediate(res));
    }
    await r.flush();
    const elapsed = performance.now() - t0;
    const sent = gw.count('reportWorkloadState');
    console.log(
      `1000 workloads x 4 transitions: ${sent} reports sent, ${r.stats.coalesced} coalesced, ` +
        `${Math.round(elapsed)} ms total, ${(callerMs / 4000).toFixed(3)} ms per workloadChanged call`,
    );
    // Every workload ends on its latest state.
    const last = new Map<string, number>();
    for (const req of gw.requests.reportWorkloadState) last.set(req.workloadId, req.status);
    expect(last.size).toBe(1_000);
    expect([...last.values()].every((v) => v === WorkloadStatus.WORKLOAD_STATUS_STOPPED)).toBe(
      true,
    );
    expect(sent + r.stats.coalesced).toBe(4_000);
    expect(elapsed).toBeLessThan(10_000);
  });

  it('stops reporting to a gateway that answers UNIMPLEMENTED, for good', async () => {
    gw.behaviour.stateFailure = 'UNIMPLEMENTED';
    const r = start();
    r.workloadChanged(workload('w1'), status('Starting'));
    await r.flush();
    gw.behaviour.stateFailure = undefined;
    r.workloadChanged(workload('w1'), status('Running'));
    r.workloadChanged(workload('w2'), status('Running'));
    await r.flush();
    expect(statuses()).toEqual(['WORKLOAD_STATUS_STARTING']);
    expect(r.pending()).toBe(0);
  });

  it('asks for a new enrollment when the platform refuses the identity, and retries', async () => {
    let refusals = 2;
    const refusing: ReportTarget['gateway'] = {
      async reportWorkloadState(report: WorkloadStateReport) {
        if (refusals-- > 0)
          throw new GatewayError('ReportWorkloadState', 'UNAUTHENTICATED', 'identity revoked');
        return client.reportWorkloadState(report);
      },
    };
    lookup = () => target(refusing);
    const r = start();
    r.workloadChanged(workload('w1'), status('Running'));
    await r.flush();
    expect(rejected).toEqual([
      ['r1', 'rid-1'],
      ['r1', 'rid-1'],
    ]);
    expect(statuses()).toEqual(['WORKLOAD_STATUS_RUNNING']);
  });

  it('waits for a runner that is not enrolled yet and drops reports of a runner that is gone', async () => {
    let enrolled = false;
    lookup = (runner) =>
      runner === 'gone'
        ? { ok: false, permanent: true, why: 'Runner "gone" not found' }
        : enrolled
          ? target()
          : { ok: false, permanent: false, why: 'not enrolled' };
    const r = start();
    r.workloadChanged(workload('w1'), status('Running'));
    r.workloadChanged(workload('w2'), status('Running', { runner: 'gone' }));
    await new Promise((res) => setTimeout(res, 100));
    expect(r.pending()).toBe(1);
    enrolled = true;
    await r.flush();
    expect(statuses()).toEqual(['WORKLOAD_STATUS_RUNNING']);
    expect(r.stats.dropped).toBe(1);
  });

  it('drops what is queued on stop and ignores later changes', async () => {
    gw.behaviour.stateFailure = 'UNAVAILABLE';
    const r = start();
    r.workloadChanged(workload('w1'), status('Running'));
    await new Promise((res) => setTimeout(res, 50));
    await r.stop();
    expect(r.pending()).toBe(0);
    gw.behaviour.stateFailure = undefined;
    const before = gw.count('reportWorkloadState');
    r.workloadChanged(workload('w1'), status('Stopped'));
    await new Promise((res) => setTimeout(res, 100));
    expect(gw.count('reportWorkloadState')).toBe(before);
  });
});
