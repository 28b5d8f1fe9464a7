import { API_GROUP, WORKLOAD_FINALIZER } from './common.ts';
import { AGENT_WORKLOADS } from './resources.ts';

/** The API version of MutatingAdmissionPolicy (GA in Kubernetes 1.36). */
export const ADMISSION_POLICY_API_VERSION = 'admissionregistration.k8s.io/v1';
const lacksFinalizer = `!has(object.metadata.finalizers) || !('${WORKLOAD_FINALIZER}' in object.metadata.finalizers)`;
const addFinalizer = [
  'has(object.metadata.finalizers)',
  `? [JSONPatch{op: 'add', path: '/metadata/finalizers/-', value: '${WORKLOAD_FINALIZER}'}]`,
  `: [JSONPatch{op: 'add', path: '/metadata/finalizers', value: ['${WORKLOAD_FINALIZER}']}]`,
].join(' ');

/**
 * A MutatingAdmissionPolicy that puts the workload finalizer into every AgentWorkload as it
 * is created, so the controller need not PATCH it in afterwards (one API write less per
 * workload created with kubectl or GitOps). It only saves a write: failures are ignored and
 * the controller adds a missing finalizer as before, except the API server's own 503 while it
 * lacks the resource's schema (for seconds after each API server start, until its 5 s poll
 * of /openapi/v3 has run), which no failurePolicy covers (hence opt-in in the chart). The
 * binding scopes it to the one workload namespace an operator serves: a finalizer nobody
 * removes would block deletion.
 */
export function workloadFinalizerPolicy(name: string) {
  return {
    apiVersion: ADMISSION_POLICY_API_VERSION,
    kind: 'MutatingAdmissionPolicy',
    metadata: { name },
    spec: {
      failurePolicy: 'Ignore',
      reinvocationPolicy: 'Never',
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: [API_GROUP],
            apiVersions: ['*'],
            operations: ['CREATE'],
            resources: [AGENT_WORKLOADS.plural],
          },
        ],
      },
      matchConditions: [{ name: 'lacks-workload-finalizer', expression: lacksFinalizer }],
      mutations: [{ patchType: 'JSONPatch', jsonPatch: { expression: addFinalizer } }],
    },
  };
}

/** Binds the policy to one workload namespace. */
export function workloadFinalizerBinding(name: string, policyName: string, namespace: string) {
  return {
    apiVersion: ADMISSION_POLICY_API_VERSION,
    kind: 'MutatingAdmissionPolicyBinding',
    metadata: { name },
    spec: {
      policyName,
      matchResources: {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
      },
    },
  };
}
