import type { AgentWorkload, AgentWorkloadSpecInput } from '../../src/api/agentworkload.ts';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import {
  DEFAULT_RUNNER_SETTINGS,
  type RunnerSettings,
} from '../../src/workload/runner-settings.ts';
import { eventually } from './kube.ts';

export type Workload = AgentWorkload & KubeObject;

/** Pod annotation prefixes of the tests: the production one and the kwok simulator's hooks. */
export const SIM_ANNOTATION_PREFIXES = ['pod.agyn.io/', 'sim.agyn.io/'];

export function fastRunner(overrides: Partial<RunnerSettings> = {}): RunnerSettings {
  return {
    ...DEFAULT_RUNNER_SETTINGS,
    name: 'local',
    health: {
      startGraceSeconds: 3,
      initRetryThreshold: 3,
      crashloopThreshold: 3,
      runtimeLostGraceSeconds: 1,
    },
    ...overrides,
  };
}

export function workloadManifest(
  name: string,
  spec: Partial<AgentWorkloadSpecInput> = {},
  annotations: Record<string, string> = {},
): Record<string, unknown> {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name, annotations },
    spec: { main: { name: 'main', image: 'example.invalid/agent:1' }, ...spec },
  };
}

export async function createWorkload(
  client: KubeClient,
  namespace: string,
  manifest: Record<string, unknown>,
): Promise<Workload> {
  return client
    .resource<Workload>(AGENT_WORKLOADS)
    .create(namespace, manifest as unknown as Workload);
}

export async function getWorkload(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<Workload> {
  return client.resource<Workload>(AGENT_WORKLOADS).get(namespace, name);
}

export async function waitForPhase(
  client: KubeClient,
  namespace: string,
  name: string,
  phase: string,
  timeoutMs = 30_000,
): Promise<Workload> {
  return eventually(
    async () => {
      const aw = await getWorkload(client, namespace, name);
      return aw.status?.phase === phase ? aw : undefined;
    },
    { timeoutMs, what: `${name} to reach ${phase}` },
  );
}
