import { randomUUID } from 'node:crypto';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { AgentWorkload } from '../../src/api/agentworkload.ts';
import {
  StartWorkloadRequest,
  VolumeKind,
  type DeepPartial,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { Secret } from '../../src/grpc/translate-secrets.ts';
import { translateStartRequest, type StartPlan } from '../../src/grpc/translate-start.ts';
import { buildPersistentVolumeClaim, buildPod } from '../../src/workload/pod-builder.ts';
import {
  DEFAULT_RUNNER_SETTINGS,
  type RunnerSettings,
} from '../../src/workload/runner-settings.ts';
import {
  EXAMPLE_AGENT_ID,
  EXAMPLE_THREAD_ID,
  EXAMPLE_WORKLOAD_ID,
  agentWorkloadExample,
  runnerSettingsExample,
} from '../../test/fixtures/agent-workload-example.ts';

/**
 * The Runner settings every benchmark workload is placed with: the example's catalog and
 * pull secret, default health thresholds except a 10-minute start grace. The simulated
 * volume provisioner binds ~10 PVCs/s, so at 1,000 workloads the last Pods (raw ones too)
 * wait for their volume well past the default 60 s and would be classified start_failed
 * and stopped, which is right for a real runner but not what a throughput run measures.
 */
export const BENCH_START_GRACE_SECONDS = 600;

export function benchRunner(startGraceSeconds = BENCH_START_GRACE_SECONDS): RunnerSettings {
  const runner = runnerSettingsExample();
  return { ...runner, health: { ...runner.health, startGraceSeconds } };
}

/**
 * The real agent (test/fixtures/agent-workload-example.ts) with fresh identifiers: its own
 * workload id, Pod name and persistent workspace, so N of them coexist.
 */
export function agentWorkload(namespace: string, id: string = randomUUID()): AgentWorkload {
  const aw = structuredClone(agentWorkloadExample());
  const name = `workload-${id}`;
  aw.metadata = { name, namespace };
  aw.spec.workloadId = id;
  aw.spec.labels = { ...aw.spec.labels, workload_key: id };
  // A referenced Secret must exist and carry the workload's label (tenant isolation); the
  // benchmark measures the workload path, so its workloads reference none.
  delete aw.spec.imagePullSecretRef;
  for (const volume of aw.spec.volumes) {
    if (volume.kind === 'Persistent') volume.persistentName = `pv-${id}`;
  }
  for (const env of aw.spec.main.env ?? []) {
    if (env.value === EXAMPLE_WORKLOAD_ID) env.value = id;
  }
  return aw;
}

/**
 * What the operator makes of that workload, built by the same pure builder, minus the owner
 * references (there is no AgentWorkload in the baseline, and the garbage collector would
 * delete an orphan): the PVCs, then the Pod.
 */
export function rawObjectsFor(
  aw: AgentWorkload,
  runner: RunnerSettings,
): { pvcs: IPersistentVolumeClaim[]; pod: IPod } {
  // The builder insists on an owner uid; the reference is dropped below anyway.
  const workload = {
    ...aw,
    metadata: { ...aw.metadata, uid: aw.metadata.uid ?? '00000000-0000-0000-0000-000000000000' },
  };
  const input = {
    workload,
    workloadId: aw.spec.workloadId ?? '',
    podName: aw.metadata.name,
    runner,
  };
  const pod = buildPod(input);
  if (pod.metadata) delete pod.metadata.ownerReferences;
  const pvcs = aw.spec.volumes
    .filter((v) => v.kind === 'Persistent')
    .map((v) => {
      const pvc = buildPersistentVolumeClaim(input, v);
      if (pvc.metadata) delete pvc.metadata.ownerReferences;
      return pvc;
    });
  return { pvcs, pod };
}

/** The agent of shared/design/agent-pod-example.md as the orchestrator sends it. */
export function agentStartRequest(id: string = randomUUID()): StartWorkloadRequest {
  const partial: DeepPartial<StartWorkloadRequest> = {
    workloadId: id,
    capabilities: [],
    additionalProperties: {
      'label.managed-by': 'agents-orchestrator',
      'label.agent-id': EXAMPLE_AGENT_ID,
      'label.thread-id': EXAMPLE_THREAD_ID,
      'label.workload_key': id,
    },
    dnsConfig: {
      nameservers: ['127.0.0.1', '10.43.0.10'],
      searches: ['svc.cluster.local', 'cluster.local'],
    },
    imagePullCredentials: [{ registry: 'ghcr.io', username: 'bench-bot', password: 'bench-token' }],
    volumes: [
      { name: 'agyn-bin', kind: VolumeKind.VOLUME_KIND_EPHEMERAL },
      {
        name: 'vol-e8f70a1b',
        kind: VolumeKind.VOLUME_KIND_NAMED,
        persistentName: `pv-${id}`,
        labels: { volume_key: id },
      },
      { name: 'ziti-identity', kind: VolumeKind.VOLUME_KIND_EPHEMERAL },
    ],
    initContainers: [
      {
        name: 'ziti-sidecar',
        image: 'openziti/ziti-tunnel:2.0.0-pre8',
        cmd: ['tproxy', '--dnsUpstream', 'udp://10.43.0.10:53'],
        env: [
          { name: 'ZITI_IDENTITY_BASENAME', value: 'agent' },
          { name: 'ZITI_ENROLL_TOKEN', value: 'ziti-enrollment-jwt-placeholder' },
        ],
        mounts: [{ volume: 'ziti-identity', mountPath: '/netfoundry' }],
        requiredCapabilities: ['NET_ADMIN'],
        additionalProperties: { restart_policy: 'Always' },
      },
      {
        name: 'ziti-gateway-wait',
        image: 'busybox:1.37.0',
        cmd: [
          '/bin/sh',
          '-c',
          'for i in $(seq 1 60); do nslookup gateway.ziti 127.0.0.1 && exit 0; sleep 1; done; exit 1',
        ],
      },
      {
        name: 'agent-init',
        image: 'ghcr.io/agynio/agent-init-codex:1.4.2',
        mounts: [{ volume: 'agyn-bin', mountPath: '/agyn-bin' }],
      },
    ],
    main: {
      name: 'agent-7c1e2f90-3f5d8e21',
      image: 'ghcr.io/agynio/workspace:1.4.2',
      cmd: ['/agyn-bin/agynd'],
      env: [
        { name: 'AGENT_ID', value: EXAMPLE_AGENT_ID },
        { name: 'AGENT_NAME', value: 'reviewer' },
        { name: 'AGENT_ROLE', value: 'assistant' },
        { name: 'AGENT_MODEL', value: '6b7c8d9e-6666-4a1b-8c2d-ffffffffffff' },
        { name: 'AGENT_CONFIG', value: '{"instructions":"review pull requests"}' },
        { name: 'THREAD_ID', value: EXAMPLE_THREAD_ID },
        { name: 'GATEWAY_ADDRESS', value: 'gateway.ziti:443' },
        { name: 'AGYN_GATEWAY_URL', value: 'http://gateway.ziti:443' },
        { name: 'LLM_BASE_URL', value: 'http://llm-proxy.ziti/v1' },
        { name: 'TRACING_ADDRESS', value: 'tracing.ziti:443' },
        { name: 'GITHUB_TOKEN', value: 'github-token-placeholder' },
        { name: 'AGENT_MCP_SERVERS', value: 'files:8100' },
        { name: 'WORKLOAD_ID', value: id },
      ],
      mounts: [
        { volume: 'vol-e8f70a1b', mountPath: '/workspace' },
        { volume: 'agyn-bin', mountPath: '/agyn-bin' },
      ],
    },
    sidecars: [
      {
        name: 'mcp-51aa2b3c',
        image: 'ghcr.io/agynio/files-mcp:latest',
        cmd: ['/bin/sh', '-c', 'files-mcp'],
        env: [
          { name: 'MCP_PORT', value: '8100' },
          { name: 'GATEWAY_ADDRESS', value: 'gateway.ziti:443' },
          { name: 'AGYN_GATEWAY_URL', value: 'http://gateway.ziti:443' },
          { name: 'MAX_FILE_SIZE', value: '10485760' },
        ],
      },
    ],
  };
  return StartWorkloadRequest.fromPartial(partial);
}

/**
 * Everything a StartWorkload of that request ends up creating in the cluster (the shim's
 * Secrets, the operator's PVCs and Pod), built by the same translation and builder, for the
 * raw baseline of the gRPC benchmark.
 */
export function rawObjectsForStart(
  req: StartWorkloadRequest,
  namespace: string,
  runner: RunnerSettings,
): { secrets: Secret[]; pvcs: IPersistentVolumeClaim[]; pod: IPod } {
  const plan = startPlanIn(req, namespace, runner);
  const { pvcs, pod } = rawObjectsFor(plan.workload, runner);
  return { secrets: plan.secrets, pvcs, pod };
}

/** The shim's translation of a StartWorkload request, its AgentWorkload in `namespace`. */
export function startPlanIn(
  req: StartWorkloadRequest,
  namespace: string,
  runner: RunnerSettings,
): StartPlan {
  const plan = translateStartRequest(req, {
    namespace,
    runnerName: runner.name,
    newId: randomUUID,
  });
  return {
    ...plan,
    workload: { ...plan.workload, metadata: { ...plan.workload.metadata, namespace } },
  };
}

/**
 * The request of the side-by-side measurement: main, one sidecar and an ephemeral
 * volume (no credentials, no named volume), so the Go runner's path is one Pod POST.
 */
export function simpleStartRequest(id: string = randomUUID()): StartWorkloadRequest {
  return StartWorkloadRequest.fromPartial({
    workloadId: id,
    additionalProperties: { 'label.workload_key': id },
    volumes: [{ name: 'scratch', kind: VolumeKind.VOLUME_KIND_EPHEMERAL }],
    main: {
      image: 'ghcr.io/agynio/workspace:1.4.2',
      cmd: ['sleep', 'infinity'],
      mounts: [{ volume: 'scratch', mountPath: '/scratch' }],
    },
    sidecars: [{ name: 'mcp-files', image: 'ghcr.io/agynio/files-mcp:latest' }],
  });
}

export const START_SHAPES = { simple: simpleStartRequest, agent: agentStartRequest } as const;
export type StartShape = keyof typeof START_SHAPES;

/**
 * The Runner settings the operator places workloads with in standalone mode without Runners
 * (src/main.ts: the namespace defaults, no Runner name): bench:grpc's operator runs so, and
 * its direct phase builds the same Pods.
 */
export function standaloneRunner(): RunnerSettings {
  return { ...DEFAULT_RUNNER_SETTINGS, name: '' };
}
