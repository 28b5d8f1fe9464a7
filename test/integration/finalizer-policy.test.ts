/**
 * The workload finalizer's MutatingAdmissionPolicy (src/api/finalizer-policy.ts, installed by
 * the chart) on the real API server: AgentWorkloads of the bound namespace carry the
 * finalizer from their creation, others are left alone, and the controller then sends no
 * finalizer PATCH: the Pod, its claim and the status are all it writes for the workload.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { installFinalizerPolicy } from '../../bench/lib/finalizer-policy.ts';
import { WORKLOAD_FINALIZER } from '../../src/api/common.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { isNotFound, KubeApiError } from '../../src/kube/errors.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import {
  createTestNamespace,
  eventually,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';
import {
  createWorkload,
  fastRunner,
  SIM_ANNOTATION_PREFIXES,
  waitForPhase,
  workloadManifest,
} from '../support/workloads.ts';

const client = KubeClient.fromEnvironment(process.env.KUBECONFIG);
const workloads = client.resource(AGENT_WORKLOADS);
let bound: TestNamespace;
let unbound: TestNamespace;
let removePolicy: (() => Promise<void>) | undefined;

/**
 * Creates a workload, retrying the API server's 503 "Resource kind ... not found" that a
 * policy gets until the API server's poll of its own OpenAPI index has seen the kind (the
 * reason the chart's policy is opt-in); any other error fails at once.
 */
const refusals = { count: 0, longestMs: 0 };
async function create(namespace: string, manifest: Record<string, unknown>) {
  const started = Date.now();
  return eventually(
    async () => {
      try {
        const created = await createWorkload(client, namespace, manifest);
        if (Date.now() - started > refusals.longestMs) refusals.longestMs = Date.now() - started;
        return created;
      } catch (err) {
        if (!(err instanceof KubeApiError && err.statusCode === 503)) throw err;
        refusals.count++;
        return undefined;
      }
    },
    {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: `${(manifest.metadata as { name: string }).name} to be created`,
    },
  );
}

/** Removes the test's finalizer (no controller runs yet) and deletes the workload. */
async function discard(namespace: string, name: string): Promise<void> {
  await workloads.mergePatch(namespace, name, { metadata: { finalizers: null } });
  await workloads.delete(namespace, name);
}

beforeAll(async () => {
  bound = await createTestNamespace(client, 'it-fpol');
  unbound = await createTestNamespace(client, 'it-fpol-other');
  removePolicy = await installFinalizerPolicy(client, bound.name);
});

afterAll(async () => {
  if (refusals.count > 0)
    console.log(
      `finalizer policy: ${refusals.count} creates refused 503 (kind's schema not at hand); the longest wait ${refusals.longestMs} ms`,
    );
  await removePolicy?.();
  await unbound?.cleanup();
  await bound?.cleanup();
  client.close();
});

test('an AgentWorkload of the bound namespace is created with the finalizer, others keep theirs', async () => {
  const plain = await create(bound.name, workloadManifest('plain'));
  expect(plain.metadata.finalizers).toEqual([WORKLOAD_FINALIZER]);

  const withOther = workloadManifest('with-other');
  (withOther.metadata as Record<string, unknown>).finalizers = ['example.com/keep'];
  const other = await create(bound.name, withOther);
  expect(other.metadata.finalizers).toEqual(['example.com/keep', WORKLOAD_FINALIZER]);

  const already = workloadManifest('already');
  (already.metadata as Record<string, unknown>).finalizers = [WORKLOAD_FINALIZER];
  const once = await create(bound.name, already);
  expect(once.metadata.finalizers).toEqual([WORKLOAD_FINALIZER]);

  const elsewhere = await create(unbound.name, workloadManifest('plain'));
  expect(elsewhere.metadata.finalizers).toBeUndefined();

  for (const name of ['plain', 'with-other', 'already']) await discard(bound.name, name);
  await workloads.delete(unbound.name, 'plain');
});

test('the controller writes no finalizer PATCH for a workload the policy finalized', async () => {
  const controllerClient = KubeClient.fromEnvironment(process.env.KUBECONFIG);
  const requests: string[] = [];
  const request = controllerClient.request.bind(controllerClient);
  controllerClient.request = ((method: string, path: string, opts?: never) => {
    requests.push(`${method} ${path.split('?')[0]}`);
    return request(method, path, opts);
  }) as typeof controllerClient.request;
  const controller = new WorkloadController({
    client: controllerClient,
    logger: testLogger,
    runners: new StaticRunnerDirectory(fastRunner()),
    namespace: bound.name,
    podAnnotationPrefixes: SIM_ANNOTATION_PREFIXES,
  });
  await controller.startInformers();
  controller.start();
  try {
    await create(bound.name, workloadManifest('kubectl-made'));
    await waitForPhase(client, bound.name, 'kubectl-made', 'Running');
    const own = `/apis/agyn.io/v1alpha1/namespaces/${bound.name}/agentworkloads/kubectl-made`;
    const writes = requests.filter((r) => !r.startsWith('GET ') && r.includes(own));
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.filter((w) => w !== `PATCH ${own}/status`)).toEqual([]);

    await workloads.delete(bound.name, 'kubectl-made');
    await eventually(
      async () => {
        try {
          await workloads.get(bound.name, 'kubectl-made');
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      },
      { what: 'the controller to finalize the workload' },
    );
  } finally {
    await controller.stop();
    await controller.stopInformers();
    controllerClient.close();
  }
});
