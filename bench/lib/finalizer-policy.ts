import { randomBytes } from 'node:crypto';
import { API_GROUP_VERSION, WORKLOAD_FINALIZER } from '../../src/api/common.ts';
import {
  workloadFinalizerBinding,
  workloadFinalizerPolicy,
} from '../../src/api/finalizer-policy.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { isNotFound, KubeApiError } from '../../src/kube/errors.ts';
import type { ResourceType } from '../../src/kube/resources.ts';
import { sleep } from './stats.ts';

const admission = (plural: string, kind: string): ResourceType => ({
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural,
  kind,
  namespaced: false,
});
const MUTATING_ADMISSION_POLICIES = admission(
  'mutatingadmissionpolicies',
  'MutatingAdmissionPolicy',
);
const MUTATING_ADMISSION_POLICY_BINDINGS = admission(
  'mutatingadmissionpolicybindings',
  'MutatingAdmissionPolicyBinding',
);

/**
 * (Benchmarks and integration tests.) Installs the workload finalizer policy bound to
 * `namespace`, as the chart does when it is enabled, and waits until the API server applies it (it does once its own informer has seen the policy): probe
 * AgentWorkloads are created until one carries the finalizer (each is deleted at once, its
 * finalizer removed, so call this before a controller watches the namespace). Returns the
 * policy's removal.
 */
export async function installFinalizerPolicy(
  kube: KubeClient,
  namespace: string,
  timeoutMs = 30_000,
): Promise<() => Promise<void>> {
  const name = `finalizer-${namespace}`.slice(0, 253);
  await kube
    .resource(MUTATING_ADMISSION_POLICIES)
    .create(undefined, workloadFinalizerPolicy(name) as KubeObject);
  await kube
    .resource(MUTATING_ADMISSION_POLICY_BINDINGS)
    .create(undefined, workloadFinalizerBinding(name, name, namespace) as KubeObject);
  const workloads = kube.resource<KubeObject>(AGENT_WORKLOADS);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = `finalizer-probe-${randomBytes(4).toString('hex')}`;
    const created = await workloads
      .create(namespace, {
        apiVersion: API_GROUP_VERSION,
        kind: AGENT_WORKLOADS.kind,
        metadata: { name: probe },
        spec: { main: { name: 'main', image: 'example.invalid/probe:1' } },
      } as KubeObject)
      .catch((err: unknown) => {
        // The API server's 503 while the policy lacks the kind's schema: probe again.
        if (err instanceof KubeApiError && err.statusCode === 503) return undefined;
        throw err;
      });
    if (created) {
      await workloads.mergePatch(namespace, probe, { metadata: { finalizers: null } });
      await workloads.delete(namespace, probe);
    }
    if (created?.metadata?.finalizers?.includes(WORKLOAD_FINALIZER)) break;
    if (Date.now() > deadline)
      throw new Error(`the finalizer policy of ${namespace} never applied`);
    await sleep(250);
  }
  return async () => {
    for (const type of [MUTATING_ADMISSION_POLICY_BINDINGS, MUTATING_ADMISSION_POLICIES]) {
      try {
        await kube.resource(type).delete(undefined, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  };
}
