import { createHash } from 'node:crypto';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { AgentWorkload } from '../api/agentworkload.ts';
import { buildPod } from './pod-builder.ts';
import type { RunnerSettings } from './runner-settings.ts';

export const POD_SPEC_HASH_ANNOTATION = 'agyn.io/pod-spec-hash';
/**
 * AgentWorkload annotations with these prefixes are copied onto its Pod. Tests inject more
 * (the simulator's sim.agyn.io/ hooks) through WorkloadControllerOptions.podAnnotationPrefixes.
 */
export const POD_ANNOTATION_PREFIXES: readonly string[] = ['pod.agyn.io/'];

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/** The Pod a workload should have: the builder's, the passed-through annotations and their hash. */
export function desiredPod(
  aw: AgentWorkload,
  runner: RunnerSettings,
  workloadId: string,
  annotationPrefixes: readonly string[] = POD_ANNOTATION_PREFIXES,
): IPod {
  const pod = buildPod({ workload: aw, workloadId, podName: aw.metadata.name, runner });
  const passthrough = Object.entries(aw.metadata.annotations ?? {}).filter(([k]) =>
    annotationPrefixes.some((p) => k.startsWith(p)),
  );
  const metadata = pod.metadata ?? {};
  const annotations: Record<string, string> = {
    ...(metadata.annotations ?? {}),
    ...Object.fromEntries(passthrough),
  };
  annotations[POD_SPEC_HASH_ANNOTATION] = hashOf({
    spec: pod.spec,
    labels: metadata.labels,
    annotations,
  });
  return { ...pod, metadata: { ...metadata, annotations } };
}
