/**
 * What Flux (kstatus) and Argo CD (the health scripts in docs/install.md) read from live
 * objects of every state: kstatus computed by sigs.k8s.io/cli-utils itself, the Argo CD
 * scripts run by a real Lua 5.1. Stopped and completed workloads are where their spec asks
 * them to be (Current); a failed workload or a Runner that needs a person is Failed.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentWorkload } from '../../src/api/agentworkload.ts';
import type { Runner } from '../../src/api/runner.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS, RUNNERS } from '../../src/api/resources.ts';
import { RunnerController } from '../../src/runner/controller.ts';
import { GatewayClient } from '../../src/runner/gateway-client.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory, type RunnerDirectory } from '../../src/workload/seams.ts';
import { argoHealth, kstatus } from '../support/gitops-health.ts';
import {
  binDir,
  createTestNamespace,
  eventually,
  testKubeClient,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import { createRunner } from '../support/operator-process.ts';
import { startTestGateway, testGateway, type TestGateway } from '../support/test-gateway.ts';
import {
  fastRunner,
  SIM_ANNOTATION_PREFIXES,
  waitForPhase,
  workloadManifest,
} from '../support/workloads.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const luaScript = (kind: string): string =>
  readFileSync(path.join(root, `charts/k8s-runner/files/argocd/${kind}-health.lua`), 'utf8');
const UNPLACEABLE = 'test.agyn.io/unplaceable';
const TOKEN = 'gitops-token';

const client = testKubeClient();
let ns: TestNamespace;
let workloads: WorkloadController;
let runners: RunnerController;
let gateway: TestGateway;

/** Places every workload on one runner, except those annotated as matching none. */
function directory(): RunnerDirectory {
  const fixed = new StaticRunnerDirectory(fastRunner());
  return {
    place: (aw: AgentWorkload) =>
      aw.metadata.annotations?.[UNPLACEABLE]
        ? { placed: false, filter: 'selector', message: 'no Runner matches runnerSelector' }
        : fixed.place(),
    settings: (name) => fixed.settings(name),
    notReadySince: () => undefined,
    onChange: () => undefined,
  };
}

async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function kubectlList(resource: string, namespace = ns.name): string {
  return execFileSync(
    path.join(binDir(), 'kubectl'),
    ['get', resource, '-n', namespace, '-o', 'json'],
    {
      encoding: 'utf8',
    },
  );
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'it-gitops');
  workloads = new WorkloadController({
    client,
    logger: testLogger,
    runners: directory(),
    namespace: ns.name,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
    // Shorter than the held Pod's start delay, so that Starting is written.
    statusCoalesceMs: 1_000,
  });
  await workloads.startInformers();
  workloads.start();
  gateway = await startTestGateway({
    tokens: {
      [TOKEN]: { identityJson: '{}', serviceName: 'svc-gitops', identityId: 'ident-gitops' },
    },
  });
  runners = new RunnerController({
    client,
    namespace: ns.name,
    logger: testLogger,
    backoff: { initialMs: 100, maxMs: 800 },
    gatewayFactory: (url, caPem) => new GatewayClient({ url, caPem, timeoutMs: 1_500 }),
  });
  await runners.start();
});

afterAll(async () => {
  await ns?.cleanup();
  await eventually(
    async () => (await client.resource(AGENT_WORKLOADS).list(ns.name)).items.length === 0,
    {
      timeoutMs: 60_000,
      what: 'the workloads to be finalized',
    },
  );
  await workloads?.stop();
  await workloads?.stopInformers();
  await runners?.stop();
  await gateway?.stop();
});

test('AgentWorkloads of every phase read as kstatus and Argo CD should read them', async () => {
  const create = (name: string, spec: object, annotations: Record<string, string> = {}) =>
    client
      .resource(AGENT_WORKLOADS)
      .create(ns.name, workloadManifest(name, spec, annotations) as never);
  await Promise.all([
    create('running', {}),
    create('starting', {}, { 'sim.agyn.io/start-delay': '10m' }),
    create('pending', {}, { [UNPLACEABLE]: 'true' }),
    create('stopped', { stopped: true }),
    create('completed', {}, { 'sim.agyn.io/scenario': 'exit-0' }),
    create('failed', {}, { 'sim.agyn.io/scenario': 'exit-1' }),
  ]);
  const phases = {
    running: 'Running',
    starting: 'Starting',
    pending: 'Pending',
    stopped: 'Stopped',
    completed: 'Stopped',
    failed: 'Failed',
  };
  for (const [name, phase] of Object.entries(phases)) {
    await waitForPhase(client, ns.name, name, phase);
  }

  const list = kubectlList('agentworkloads.agyn.io');
  const flux = kstatus(list);
  const items = (JSON.parse(list) as { items: AgentWorkload[] }).items;
  const argo = Object.fromEntries(
    items.map((o) => [o.metadata.name, argoHealth(luaScript('agentworkload'), o).status]),
  );
  const got = Object.fromEntries(
    Object.keys(phases).map((n) => [n, `${flux[n]?.status} / ${argo[n]}`]),
  );
  expect(got).toEqual({
    running: 'Current / Healthy',
    starting: 'InProgress / Progressing',
    pending: 'InProgress / Progressing',
    stopped: 'Current / Suspended',
    completed: 'Current / Healthy',
    failed: 'Failed / Degraded',
  });
});

test('Runners ready, retrying and needing a person read as kstatus and Argo CD should read them', async () => {
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 'gitops-token',
      namespace: ns.name,
      labels: { 'agyn.io/runner-token': 'true' },
    },
    data: { token: Buffer.from(TOKEN).toString('base64') },
  };
  await client.resource(SECRETS).create(ns.name, secret as never);
  const runner = (name: string, url: string, tokenSecret: string) =>
    client.resource<Runner>(RUNNERS).create(ns.name, {
      apiVersion: 'agyn.io/v1alpha1',
      kind: 'Runner',
      metadata: { name, namespace: ns.name },
      spec: {
        gateway: testGateway({ url }),
        serviceToken: { secretRef: { name: tokenSecret, key: 'token' } },
        workloadNamespace: ns.name,
      },
    } as never);
  const unreachable = `grpc://127.0.0.1:${await closedLoopbackPort()}`;
  await Promise.all([
    runner('ready', gateway.url, 'gitops-token'),
    runner('retrying', unreachable, 'gitops-token'),
    runner('needs-person', gateway.url, 'no-such-secret'),
  ]);
  const expectedReason = {
    ready: 'Ready',
    retrying: 'GatewayUnreachable',
    'needs-person': 'TokenSecretMissing',
  };
  await eventually(
    async () => {
      const list = await client.resource<Runner>(RUNNERS).list(ns.name);
      return Object.entries(expectedReason).every(([name, reason]) =>
        list.items
          .find((r) => r.metadata.name === name)
          ?.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === reason),
      );
    },
    { timeoutMs: 30_000, what: 'the Runners to settle' },
  );

  const list = kubectlList('runners.agyn.io');
  const flux = kstatus(list);
  const items = (JSON.parse(list) as { items: Runner[] }).items;
  const argo = Object.fromEntries(
    items.map((o) => [o.metadata.name, argoHealth(luaScript('runner'), o).status]),
  );
  const got = Object.fromEntries(
    Object.keys(expectedReason).map((n) => [n, `${flux[n]?.status} / ${argo[n]}`]),
  );
  expect(got).toEqual({
    ready: 'Current / Healthy',
    retrying: 'InProgress / Progressing',
    'needs-person': 'Failed / Degraded',
  });
});

test('an AgentWorkload and a Runner no controller has written yet read InProgress, not Current', async () => {
  // kstatus reads an object without status as Current: a Kustomization with `wait: true`
  // would pass before the operator has seen it. The CRDs default status.observedGeneration
  // to 0, so until the controller writes status the generation reads as not observed.
  const unwatched = await createTestNamespace(client, 'it-gitops-new');
  try {
    await client.resource(AGENT_WORKLOADS).create(unwatched.name, workloadManifest('new') as never);
    await createRunner(client, unwatched.name, 'new', gateway.url, TOKEN);
    const got: Record<string, string> = {};
    const statuses: Record<string, unknown> = {};
    for (const [kind, resource] of [
      ['agentworkload', 'agentworkloads.agyn.io'],
      ['runner', 'runners.agyn.io'],
    ] as const) {
      const list = kubectlList(resource, unwatched.name);
      const [item] = (JSON.parse(list) as { items: Array<AgentWorkload | Runner> }).items;
      if (!item) throw new Error(`no ${kind} listed`);
      got[kind] = `${kstatus(list).new?.status} / ${argoHealth(luaScript(kind), item).status}`;
      statuses[kind] = item.status;
    }
    expect(got).toEqual({
      agentworkload: 'InProgress / Progressing',
      runner: 'InProgress / Progressing',
    });
    expect(statuses).toEqual({
      agentworkload: { observedGeneration: 0 },
      runner: { observedGeneration: 0 },
    });
  } finally {
    await unwatched.cleanup();
  }
});
