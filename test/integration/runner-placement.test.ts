import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { AgentWorkload, AgentWorkloadSpecInput } from '../../src/api/agentworkload.ts';
import { agentWorkloadSpecSchema } from '../../src/api/agentworkload.ts';
import type { Runner, RunnerSpecInput } from '../../src/api/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { NAMESPACES, SECRETS } from '../../src/kube/resources.ts';
import { RUNNERS } from '../../src/api/resources.ts';
import { RunnerController } from '../../src/runner/controller.ts';
import type { Namespace } from '../../src/runner/namespace-informer.ts';
import { ORGANIZATION_LABEL } from '../../src/runner/organization.ts';
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
/** Workload namespaces: of organization org-a, of org-b, and of none. */
let nsA: TestNamespace;
let nsB: TestNamespace;
let nsNone: TestNamespace;
let namespaces: Informer<Namespace>;
let gw: TestGateway;
let controller: RunnerController;
let registry: RunnerRegistry;
let changes = 0;

/** Namespaces of this organization (the label only cluster admins can set). */
const ofOrganization = (org: string) => ({
  selector: { matchLabels: { [ORGANIZATION_LABEL]: org } },
});

/**
 * Five Runners: org-a and org-b (org-scoped, both region=eu, org-b also team=x, each accepting
 * the namespaces of its organization and, by mistake, org-b also org-a's), cluster-eu (cluster
 * scope, region=eu, docker), cluster-gpu (cluster scope, region=us, gpu), and cluster-down
 * (cluster scope, region=eu, no token Secret: never Ready); the cluster-scoped ones accept
 * every test namespace by name.
 */
const RUNNER_SPECS: Record<string, Partial<RunnerSpecInput>> = {
  'org-a': {
    organizationId: 'org-a',
    labels: { region: 'eu' },
    pullSecrets: [{ name: 'pull-a' }],
    acceptedNamespaces: ofOrganization('org-a'),
  },
  'org-b': {
    organizationId: 'org-b',
    labels: { region: 'eu', team: 'x' },
    acceptedNamespaces: {
      selector: {
        matchExpressions: [{ key: ORGANIZATION_LABEL, operator: 'In', values: ['org-a', 'org-b'] }],
      },
    },
  },
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

function workload(spec: Partial<AgentWorkloadSpecInput>, namespace = nsNone.name): AgentWorkload {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: 'w', namespace, uid: 'u-1' },
    spec: agentWorkloadSpecSchema.parse({ main: { name: 'main', image: 'agent:1' }, ...spec }),
  };
}

/** Every runner placement chooses across many draws. */
function choices(
  spec: Partial<AgentWorkloadSpecInput>,
  namespace = nsNone.name,
  draws = 60,
): Set<string> {
  const seen = new Set<string>();
  for (let i = 0; i < draws; i++) {
    const decision = registry.place(workload(spec, namespace));
    if (!decision.placed) throw new Error(`not placed: ${decision.message}`);
    seen.add(decision.runner.name);
  }
  return seen;
}

function refusal(
  spec: Partial<AgentWorkloadSpecInput>,
  namespace = nsNone.name,
): Extract<PlacementDecision, { placed: false }> {
  const decision = registry.place(workload(spec, namespace));
  if (decision.placed) throw new Error(`unexpectedly placed on ${decision.runner.name}`);
  return decision;
}

async function labelNamespace(name: string, org: string): Promise<void> {
  await client
    .resource<Namespace>(NAMESPACES)
    .mergePatch(undefined, name, { metadata: { labels: { [ORGANIZATION_LABEL]: org } } });
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'rnr-place');
  nsA = await createTestNamespace(client, 'rnr-place-a');
  nsB = await createTestNamespace(client, 'rnr-place-b');
  nsNone = await createTestNamespace(client, 'rnr-place-none');
  await labelNamespace(nsA.name, 'org-a');
  await labelNamespace(nsB.name, 'org-b');
  // The registry sees the test's three workload namespaces, as the operator sees its own.
  namespaces = new Informer(client.resource<Namespace>(NAMESPACES), {
    logger: testLogger,
    labelSelector:
      'kubernetes.io/metadata.name in (' + [nsA, nsB, nsNone].map((n) => n.name).join(',') + ')',
  });
  namespaces.start();
  await namespaces.waitForSync();
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
  registry = new RunnerRegistry({
    runners: controller.runnerInformer,
    namespaces,
    logger: testLogger,
  });
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
        workloadNamespace: nsNone.name,
        ...(name.startsWith('cluster')
          ? { acceptedNamespaces: { names: [nsA.name, nsB.name] } }
          : {}),
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
  await namespaces.stop();
  await gw.stop();
  await Promise.all([ns, nsA, nsB, nsNone].map((n) => n.cleanup()));
});

describe('placement across Runners', () => {
  it('lets an organization use its own and cluster-scoped runners, never another organization’s', () => {
    expect(choices({}, nsA.name)).toEqual(new Set(['org-a', 'cluster-eu', 'cluster-gpu']));
    // The spec may repeat its namespace's organization.
    expect(choices({ organizationId: 'org-a' }, nsA.name)).toEqual(
      new Set(['org-a', 'cluster-eu', 'cluster-gpu']),
    );
    expect(choices({ runnerSelector: { labels: { region: 'eu' } } }, nsB.name)).toEqual(
      new Set(['org-b', 'cluster-eu']),
    );
    expect(choices({})).toEqual(new Set(['cluster-eu', 'cluster-gpu']));
  });

  it('keeps organizations apart even when only another organization’s runner matches the labels', () => {
    // org-b accepts org-a's namespace by mistake: its organization still keeps it out.
    const d = refusal({ runnerSelector: { labels: { team: 'x' } } }, nsA.name);
    expect(d.filter).toBe('labels');
    expect(d.message).toBe('no Runner matches labels {team=x} (3 candidates after scope)');
    expect(refusal({ runnerRef: { name: 'org-b' } }, nsA.name)).toMatchObject({
      filter: 'scope',
      message: 'Runner "org-b" serves organization "org-b", not "org-a"',
    });
    expect(refusal({ runnerRef: { name: 'org-b' } })).toMatchObject({
      filter: 'scope',
      message: 'Runner "org-b" serves organization "org-b" and the workload has no organization',
    });
  });

  it('takes the organization from the namespace: a spec claiming another one is refused, naming the field', () => {
    const claim = (spec: Partial<AgentWorkloadSpecInput>, namespace: string) =>
      registry.place(workload(spec, namespace));
    expect(claim({ organizationId: 'org-b' }, nsA.name)).toEqual({
      placed: false,
      filter: 'organization',
      field: 'spec.organizationId',
      message: `organization "org-b" is not the workload's: namespace "${nsA.name}" belongs to organization "org-a" (label ${ORGANIZATION_LABEL})`,
    });
    expect(
      claim({ organizationId: 'org-b', runnerRef: { name: 'org-b' } }, nsA.name),
    ).toMatchObject({ placed: false, field: 'spec.organizationId' });
    expect(claim({ organizationId: 'org-a', runnerRef: { name: 'org-a' } }, nsNone.name)).toEqual({
      placed: false,
      filter: 'organization',
      field: 'spec.organizationId',
      message: `organization "org-a" is not the workload's: namespace "${nsNone.name}" belongs to no organization (label ${ORGANIZATION_LABEL})`,
    });
  });

  it('places a workload only on Runners that accept its namespace', () => {
    expect(refusal({}, 'elsewhere')).toEqual({
      placed: false,
      filter: 'namespace',
      message: 'no Runner accepts namespace "elsewhere" (4 candidates after ready)',
    });
    expect(refusal({ runnerRef: { name: 'cluster-eu' } }, 'elsewhere')).toEqual({
      placed: false,
      filter: 'namespace',
      message: 'Runner "cluster-eu" does not accept namespace "elsewhere"',
    });
  });

  it('filters by labels and capabilities, docker included when an implementation is configured', () => {
    expect(
      choices({ runnerSelector: { labels: { region: 'eu', tier: 'standard' } } }, nsA.name),
    ).toEqual(new Set(['cluster-eu']));
    expect(choices({ capabilities: ['gpu'] }, nsB.name)).toEqual(new Set(['cluster-gpu']));
    expect(choices({ capabilities: ['docker'] }, nsA.name)).toEqual(new Set(['cluster-eu']));
    const d = refusal(
      { runnerSelector: { labels: { region: 'eu' } }, capabilities: ['gpu'] },
      nsA.name,
    );
    expect(d).toEqual({
      placed: false,
      filter: 'capabilities',
      message: 'no Runner offers capabilities [gpu] (2 candidates after labels)',
    });
  });

  it('names the filter that emptied the set', () => {
    expect(refusal({ runnerSelector: { labels: { region: 'ap' } } }, nsA.name)).toEqual({
      placed: false,
      filter: 'labels',
      message: 'no Runner matches labels {region=ap} (3 candidates after scope)',
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

  it('follows the namespace’s organization label, and announces its change', async () => {
    const before = changes;
    await labelNamespace(nsB.name, 'org-a');
    await eventually(() => changes > before, { what: 'a change for the namespace label' });
    expect(choices({ runnerSelector: { labels: { region: 'eu' } } }, nsB.name)).toEqual(
      new Set(['org-a', 'cluster-eu']),
    );
    expect(refusal({ organizationId: 'org-b' }, nsB.name)).toMatchObject({
      field: 'spec.organizationId',
    });
  });
});
