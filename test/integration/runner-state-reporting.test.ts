import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type {
  AgentWorkload,
  AgentWorkloadStatus,
  ContainerState,
} from '../../src/api/agentworkload.ts';
import { agentWorkloadSpecSchema } from '../../src/api/agentworkload.ts';
import type { Runner } from '../../src/api/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { RUNNERS } from '../../src/api/resources.ts';
import { WorkloadStatus } from '../../src/gen/agynio/api/runners/v1/runners.ts';
import { RunnerController } from '../../src/runner/controller.ts';
import { GatewayStateReporter } from '../../src/runner/state-reporter.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import { startTestGateway, type TestGateway } from '../support/test-gateway.ts';

type Secret = ISecret & KubeObject;

const client = testKubeClient();
const TOKEN = 'report-token-4d2a';

let ns: TestNamespace;
let gw: TestGateway;
let controller: RunnerController;
let reporter: GatewayStateReporter;

function workload(id: string): AgentWorkload {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: `workload-${id}`, namespace: 'agents', uid: `uid-${id}` },
    spec: agentWorkloadSpecSchema.parse({
      workloadId: id,
      main: { name: 'main', image: 'agent:1' },
    }),
    // The id the workload controller recorded after checking it is unique: what is reported.
    status: { workloadId: id },
  };
}

function status(
  phase: AgentWorkloadStatus['phase'],
  restarts = 0,
  runner = 'reporter',
): AgentWorkloadStatus {
  const main: ContainerState = {
    name: 'main',
    role: 'main',
    image: 'agent:1',
    state: phase === 'Running' ? 'running' : phase === 'Starting' ? 'waiting' : 'terminated',
    restartCount: restarts,
    ...(phase === 'Stopped' ? { exitCode: 0, reason: 'Completed' } : {}),
  };
  return { phase, runner, containers: [main] };
}

const A = '0a0a0a0a-0000-4000-8000-00000000000a';
const B = '0b0b0b0b-0000-4000-8000-00000000000b';

const NAME_BY_NUMBER = new Map<number, string>(
  Object.entries(WorkloadStatus)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k.replace('WORKLOAD_STATUS_', '')]),
);

function statusesOf(id: string): string[] {
  return gw.requests.reportWorkloadState
    .filter((r) => r.workloadId === id)
    .map((r) => NAME_BY_NUMBER.get(r.status) ?? '?');
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'rnr-report');
  gw = await startTestGateway({
    tokens: {
      [TOKEN]: {
        identityJson: '{"runner_id":"rid-reporter"}',
        serviceName: 'svc',
        identityId: 'ident',
      },
    },
  });
  controller = new RunnerController({
    client,
    namespace: ns.name,
    logger: testLogger,
    backoff: { initialMs: 100, maxMs: 500 },
  });
  reporter = new GatewayStateReporter({
    targets: controller,
    logger: testLogger,
    backoff: { initialMs: 50, maxMs: 400 },
  });
  await controller.start();
  await client.resource<Secret>(SECRETS).create(ns.name, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'reporter-token', labels: { 'agyn.io/runner-token': 'true' } },
    data: { token: Buffer.from(TOKEN).toString('base64') },
  });
  await client.resource<Runner>(RUNNERS).create(ns.name, {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'Runner',
    metadata: { name: 'reporter', namespace: ns.name },
    spec: {
      gateway: { url: gw.url, insecure: true },
      serviceToken: { secretRef: { name: 'reporter-token' } },
      workloadNamespace: 'agents',
    },
  } as unknown as Runner);
  await eventually(() => controller.reportTarget('reporter').ok, { what: 'an enrolled runner' });
});

afterAll(async () => {
  await reporter.stop();
  await controller.stop();
  await gw.stop();
  await ns.cleanup();
});

describe('workload state reporting', () => {
  it('reports transitions in order, as the Runner, with enums mapped by name', async () => {
    reporter.workloadChanged(workload(A), status('Starting'));
    reporter.workloadChanged(workload(A), status('Running'));
    await reporter.flush();
    expect(statusesOf(A)).toEqual(['STARTING', 'RUNNING']);
    const running = gw.requests.reportWorkloadState.at(-1);
    expect(running).toMatchObject({
      runnerId: 'rid-reporter',
      serviceToken: TOKEN,
      workloadId: A,
      status: WorkloadStatus.WORKLOAD_STATUS_RUNNING,
      containers: [{ name: 'main', role: 1, status: 1, restartCount: 0 }],
    });
    // runners.v1 RUNNING is 2 (runner.v1's RUNNING is 1).
    expect(running?.status).toBe(2);

    // The same state again is not sent twice.
    reporter.workloadChanged(workload(A), status('Running'));
    await reporter.flush();
    expect(statusesOf(A)).toEqual(['STARTING', 'RUNNING']);
  });

  it('coalesces during a gateway outage and catches up, in order, afterwards', async () => {
    gw.behaviour.stateFailure = 'UNAVAILABLE';
    const t0 = performance.now();
    reporter.workloadChanged(workload(A), status('Running', 1));
    reporter.workloadChanged(workload(B), status('Starting'));
    // Never blocks the caller, whatever the gateway does.
    expect(performance.now() - t0).toBeLessThan(50);
    await eventually(() => statusesOf(A).length >= 4, {
      what: 'failed attempts during the outage',
    });
    reporter.workloadChanged(workload(A), status('Stopping', 1));
    reporter.workloadChanged(workload(B), status('Running'));
    reporter.workloadChanged(workload(A), status('Stopped', 1));
    expect(reporter.pending()).toBe(2);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(reporter.pending()).toBe(2);
    const duringOutage = gw.count('reportWorkloadState');

    gw.behaviour.stateFailure = undefined;
    await eventually(() => reporter.pending() === 0, {
      what: 'the reporter to catch up',
      timeoutMs: 5_000,
    });
    const after = gw.requests.reportWorkloadState.slice(duringOutage);
    // After the outage each workload gets only its latest state; the intermediate ones
    // (A Stopping, B Starting) were replaced while waiting. (An attempt that raced the end
    // of the outage may repeat the latest state once.)
    const namesAfter = (id: string) =>
      new Set(after.filter((r) => r.workloadId === id).map((r) => NAME_BY_NUMBER.get(r.status)));
    expect(namesAfter(A)).toEqual(new Set(['STOPPED']));
    expect(namesAfter(B)).toEqual(new Set(['RUNNING']));
    expect(after.length).toBeLessThanOrEqual(4);
    expect(statusesOf(A).at(-1)).toBe('STOPPED');
    expect(statusesOf(B).at(-1)).toBe('RUNNING');
    expect(statusesOf(A)).not.toContain('STOPPING');
    expect(reporter.stats.coalesced).toBeGreaterThanOrEqual(2);

    // Per workload, observed times never go backwards in what the gateway received.
    for (const id of [A, B]) {
      const times = gw.requests.reportWorkloadState
        .filter((r) => r.workloadId === id)
        .map((r) => r.observedAt?.getTime() ?? 0);
      expect([...times].sort((x, y) => x - y)).toEqual(times);
    }
  });

  it('stops reporting for good when the platform answers UNIMPLEMENTED, and keeps serving', async () => {
    const C = '0c0c0c0c-0000-4000-8000-00000000000c';
    gw.behaviour.stateFailure = 'UNIMPLEMENTED';
    reporter.workloadChanged(workload(C), status('Starting'));
    await reporter.flush();
    expect(statusesOf(C)).toEqual(['STARTING']);
    gw.behaviour.stateFailure = undefined;
    reporter.workloadChanged(workload(C), status('Running'));
    reporter.workloadChanged(workload(A), status('Starting', 2));
    await reporter.flush();
    expect(statusesOf(C)).toEqual(['STARTING']);
    expect(reporter.pending()).toBe(0);
    expect(controller.reportTarget('reporter').ok).toBe(true);
  });

  it('drops reports of workloads whose Runner does not exist', async () => {
    const before = gw.count('reportWorkloadState');
    reporter.workloadChanged(
      workload('0d0d0d0d-0000-4000-8000-00000000000d'),
      status('Running', 0, 'no-such-runner'),
    );
    await reporter.flush();
    expect(gw.count('reportWorkloadState')).toBe(before);
  });
});
