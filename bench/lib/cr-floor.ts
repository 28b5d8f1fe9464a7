/**
 * The CR design's floor for StartWorkload: the API writes the card's design needs per
 * workload, made with no controller logic at all (no informer, queue, decision, coalescing
 * or Pod hash). The AgentWorkload POST (finalizer in it, as the shim creates it), answered
 * STARTING at once as the shim does; then, as a controller must, the Pod POST and one status
 * write (a start that ends Running records no Event). Beside the direct phase (the Go runner's one Pod POST) it shows what
 * the design itself costs on this cluster; beside the shim, what the operator's code adds.
 */
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { AgentWorkload } from '../../src/api/agentworkload.ts';
import { ownerReference } from '../../src/api/common.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import {
  WorkloadStatus,
  type StartWorkloadRequest,
  type StartWorkloadResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { Secret } from '../../src/grpc/translate-secrets.ts';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { PODS, SECRETS } from '../../src/kube/resources.ts';
import type { RunnerSettings } from '../../src/workload/runner-settings.ts';
import { rawObjectsFor, startPlanIn } from './shapes.ts';

type Workload = AgentWorkload & KubeObject;

export interface CrFloor {
  start(req: StartWorkloadRequest): Promise<StartWorkloadResponse>;
}

export function crFloor(client: KubeClient, namespace: string, runner: RunnerSettings): CrFloor {
  const materialize = async (created: Workload): Promise<void> => {
    const { pod } = rawObjectsFor(created, runner);
    const meta = created.metadata;
    const owner = ownerReference('AgentWorkload', created, {
      controller: true,
      blockOwnerDeletion: true,
    });
    pod.metadata = { ...pod.metadata, ownerReferences: [owner] };
    await client.resource<IPod & KubeObject>(PODS).create(namespace, pod as IPod & KubeObject);
    await client
      .resource<Workload>(AGENT_WORKLOADS)
      .mergePatch(
        namespace,
        meta.name,
        { status: { phase: 'Running', podName: meta.name, observedGeneration: meta.generation } },
        'status',
      );
  };
  return {
    async start(req) {
      const plan = startPlanIn(req, namespace, runner);
      for (const secret of plan.secrets)
        await client.resource<Secret>(SECRETS).create(namespace, secret);
      const created = await client
        .resource<Workload>(AGENT_WORKLOADS)
        .create(namespace, plan.workload as Workload);
      // A failed follow-up shows in the phase's result as a Pod that never runs.
      materialize(created).catch(() => undefined);
      return {
        id: plan.workloadId,
        containers: { main: created.metadata.name, sidecars: [] },
        status: WorkloadStatus.WORKLOAD_STATUS_STARTING,
      };
    },
  };
}
