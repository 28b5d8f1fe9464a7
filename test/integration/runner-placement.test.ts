import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { AgentWorkload, AgentWorkloadSpecInput } from '../../src/api/agentworkload.ts';
import { agentWorkloadSpecSchema } from '../../src/api/agentworkload.ts';
import type { Runner, RunnerSpecInput } from '../../src/api/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { RUNNERS } from '../../src/api/resources.ts';
import { RunnerController } from '../../src/runner/controller.ts';
import { RunnerRegistry } from '../../src/runner/registry.ts';
import type { PlacementDecision } from '../../src/workload/seams.ts';
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
const runnersApi = client.resource<Runner>(RUNNERS);
const secretsApi = client.resource<Secret>(SECRETS);

let ns: TestNamespace;
let gw: TestGateway;
let controller: RunnerController;
let registry: RunnerRegistry;
let changes = 0;

/**
 * Five Runners: org-a and org-b (org-scoped, both region=eu, org-b also team=x),
 * cluster-eu (cluster scope, region=eu, docker), cluster-gpu (cluster scope, region=us, gpu),
 * and cluster-down (cluster scope, region=eu, no token Secret: never Ready).
 */
const RUNNER_SPECS: Record<string, Partial<RunnerSpecInput>> = {
  'org-a': { organizationId: 'org-a', labels: { region: 'eu' }, pullSecrets: [{ name: 'pull-a' }] },
  'org-b': { organizationId: 'org-b', labels: { region: 'eu', team: 'x' } },
  'cluster-eu': {
    labels: { region: 'eu', tier: 'standard' },
    capabilities: ['docker'],
    capabilityImplementations: { docker: 'privileged' },
    storage: { defaultClass: 'standard' },
  },
  'cluster-gpu': {
    labels: { region: 'us' },
    capabilities: ['gpu'],
    scheduling: {
      nodeSelector: { pool: 'gpu' },
      tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
    },
  },
  'cluster-down': { labels: { region: 'eu' } },
};

async function putTokenSecret(name: string, token: string): Promise<void> {
  await secretsApi.apply(
    ns.name,
    name,
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: ns.name, labels: { 'agyn.io/runner-token': 'true' } },
      data: { token: Buffer.from(token).toString('base64') },
    },
    { fieldManager: 'test', force: true },
  );
}

function workload(spec: Partial<AgentWorkloadSpecInput>): AgentWorkload {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: 'w', namespace: 'agents', uid: 'u-1' },
    spec: agentWorkloadSpecSchema.parse({ main: { name: 'main', image: 'agent:1' }, ...spec }),
  };
}

/** Every runner placement chooses across many draws. */
function choices(spec: Partial<AgentWorkloadSpecInput>, draws = 60): Set<string> {
  const seen = new Set<string>();
  for (let i = 0; i < draws; i++) {
    const decision = registry.place(workload(spec));
    if (!decision.placed) throw new Error(`not placed: ${decision.message}`);
    seen.add(decision.runner.name);
  }
  return seen;
}

function refusal(
  spec: Partial<AgentWorkloadSpecInput>,
): Extract<PlacementDecision, { placed: false }> {
  const decision = registry.place(workload(spec));
  if (decision.placed) throw new Error(`unexpectedly placed on ${decision.runner.name}`);
  return decision;
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'rnr-place');
  const tokens: Record<string, { identityJson: string; serviceName: string; identityId: string }> =
    {};
  for (const name of Object.keys(RUNNER_SPECS)) {
    tokens[`token-${name}`] = {
      identityJson: JSON.stringify({ runnerId: `id-${name}` }),
      serviceName: name,
      identityId: `ident-${name}`,
    };
  }
  gw = await startTestGateway({ tokens });
  controller = new RunnerController({
    client,
    namespace: ns.name,
    logger: testLogger,
    backoff: { initialMs: 100, maxMs: 500 },
  });
  registry = new RunnerRegistry({ runners: controller.runnerInformer, logger: testLogger });
  registry.onChange(() => changes++);
  await controller.start();
  for (const [name, spec] of Object.entries(RUNNER_SPECS)) {
    if (name !== 'cluster-down') await putTokenSecret(`${name}-token`, `token-${name}`);
    await runnersApi.create(ns.name, {
      apiVersion: 'agyn.io/v1alpha1',
      kind: 'Runner',
      metadata: { name, namespace: ns.name },
      spec: {
        gateway: { url: gw.url, insecure: true },
        serviceToken: { secretRef: { name: `${name}-token` } },
        workloadNamespace: 'agents',
        ...spec,
      },
    } as unknown as Runner);
  }
  await eventually(
    () =>
      ['org-a', 'org-b', 'cluster-eu', 'cluster-gpu'].every(
        (n) => registry.notReadySince(n) === undefined,
      ),
    { what: 'four Ready runners' },
  );
});

afterAll(async () => {
  await controller.stop();
  await gw.stop();
  await ns.cleanup();
});

describe('placement across Runners', () => {
  it('lets an organization use its own and cluster-scoped runners, never another organization’s', () => {
    expect(choices({ organizationId: 'org-a' })).toEqual(
      new Set(['org-a', 'cluster-eu', 'cluster-gpu']),
    );
    expect(
      choices({ organizationId: 'org-b', runnerSelector: { labels: { region: 'eu' } } }),
    ).toEqual(new Set(['org-b', 'cluster-eu']));
    expect(choices({})).toEqual(new Set(['cluster-eu', 'cluster-gpu']));
  });

  it('keeps organizations apart even when only another organization’s runner matches the labels', () => {
    const d = refusal({ organizationId: 'org-a', runnerSelector: { labels: { team: 'x' } } });
    expect(d.filter).toBe('labels');
    expect(d.message).toBe('no Runner matches labels {team=x} (3 candidates after scope)');
    expect(refusal({ runnerRef: { name: 'org-b' }, organizationId: 'org-a' })).toMatchObject({
      filter: 'scope',
      message: 'Runner "org-b" serves organization "org-b", not "org-a"',
    });
    expect(refusal({ runnerRef: { name: 'org-b' } })).toMatchObject({ filter: 'scope' });
  });

  it('filters by labels and capabilities, docker included when an implementation is configured', () => {
    expect(
      choices({
        organizationId: 'org-a',
        runnerSelector: { labels: { region: 'eu', tier: 'standard' } },
      }),
    ).toEqual(new Set(['cluster-eu']));
    expect(choices({ organizationId: 'org-b', capabilities: ['gpu'] })).toEqual(
      new Set(['cluster-gpu']),
    );
    expect(choices({ organizationId: 'org-a', capabilities: ['docker'] })).toEqual(
      new Set(['cluster-eu']),
    );
    const d = refusal({
      organizationId: 'org-a',
      runnerSelector: { labels: { region: 'eu' } },
      capabilities: ['gpu'],
    });
    expect(d).toEqual({
      placed: false,
      filter: 'capabilities',
      message: 'no Runner offers capabilities [gpu] (2 candidates after labels)',
    });
  });

  it('names the filter that emptied the set', () => {
    expect(
      refusal({ organizationId: 'org-c', runnerSelector: { labels: { region: 'ap' } } }),
    ).toEqual({
      placed: false,
      filter: 'labels',
      message: 'no Runner matches labels {region=ap} (2 candidates after scope)',
    });
    expect(refusal({ runnerRef: { name: 'cluster-down' } })).toEqual({
      placed: false,
      filter: 'ready',
      message: 'Runner "cluster-down" is not Ready',
    });
    expect(refusal({ runnerRef: { name: 'missing' } })).toMatchObject({
      filter: 'runnerRef',
      message: 'Runner "missing" not found',
    });
  });

  it('hands out the chosen runner’s settings', () => {
    const d = registry.place(workload({ runnerRef: { name: 'cluster-gpu' } }));
    expect(d.placed && d.runner).toMatchObject({
      name: 'cluster-gpu',
      capabilities: ['gpu'],
      scheduling: {
        nodeSelector: { pool: 'gpu' },
        tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
      },
      health: {
        startGraceSeconds: 60,
        initRetryThreshold: 3,
        crashloopThreshold: 3,
        runtimeLostGraceSeconds: 30,
      },
    });
    expect(registry.settings('org-a')).toMatchObject({ name: 'org-a', pullSecrets: ['pull-a'] });
    expect(registry.settings('cluster-eu')).toMatchObject({
      docker: 'privileged',
      storage: { defaultClass: 'standard', defaultSize: '10Gi' },
    });
    expect(registry.settings('cluster-down')).toMatchObject({ name: 'cluster-down' });
    expect(registry.settings('missing')).toBeUndefined();
  });

  it('tracks readiness, announces changes and re-evaluates placement when Runners change', async () => {
    const downSince = registry.notReadySince('cluster-down');
    expect(downSince).toBeInstanceOf(Date);
    expect(registry.notReadySince('never-existed')).toBeInstanceOf(Date);

    const before = changes;
    await putTokenSecret('cluster-down-token', 'token-cluster-down');
    await eventually(() => registry.notReadySince('cluster-down') === undefined, {
      what: 'cluster-down Ready',
    });
    expect(changes).toBeGreaterThan(before);
    expect(choices({ runnerSelector: { labels: { region: 'eu' } } })).toEqual(
      new Set(['cluster-eu', 'cluster-down']),
    );

    // A label change is announced and placement follows it.
    const beforeLabels = changes;
    await runnersApi.mergePatch(ns.name, 'cluster-down', { spec: { labels: { region: 'ap' } } });
    await eventually(() => changes > beforeLabels, { what: 'a change for the label update' });
    expect(choices({ runnerSelector: { labels: { region: 'ap' } } })).toEqual(
      new Set(['cluster-down']),
    );

    // Losing the token makes the Runner not Ready; the time is the Ready=False transition.
    const t0 = Date.now();
    await secretsApi.delete(ns.name, 'cluster-down-token');
    const since = await eventually(() => registry.notReadySince('cluster-down'), {
      what: 'cluster-down not Ready',
    });
    expect(since.getTime()).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000);
    expect(refusal({ runnerSelector: { labels: { region: 'ap' } } })).toMatchObject({
      filter: 'labels',
    });
    expect(refusal({ runnerRef: { name: 'cluster-down' } })).toMatchObject({ filter: 'ready' });

    // Deletion of a Ready Runner: not Ready since the deletion, and gone from placement.
    const t1 = Date.now();
    await runnersApi.delete(ns.name, 'cluster-gpu');
    const gone = await eventually(() => registry.notReadySince('cluster-gpu'), {
      what: 'cluster-gpu gone',
    });
    expect(gone.getTime()).toBeGreaterThanOrEqual(t1 - 1000);
    expect(registry.settings('cluster-gpu')).toBeUndefined();
    expect(refusal({ capabilities: ['gpu'] })).toMatchObject({ filter: 'capabilities' });
  });
});
