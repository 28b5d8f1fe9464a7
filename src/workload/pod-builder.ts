import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type {
  AgentWorkload,
  AgentWorkloadSpec,
  ContainerSpec,
  VolumeSpec,
} from '../api/agentworkload.ts';
import { AGENT_WORKLOAD_KIND } from '../api/agentworkload.ts';
import {
  LABELS,
  MANAGED_BY_VALUE,
  ORCHESTRATOR_MANAGED_BY_VALUE,
  ownerReference,
} from '../api/common.ts';
import type { RunnerSettings } from './runner-settings.ts';
import { checkDockerNames, DOCKER_HOST, dockerPlan, type DockerPlan } from './docker-capability.ts';
import { ungrantedCapability, workloadSecurityContext } from './pod-security.ts';
import {
  allContainers,
  mainResources,
  mergeLabels,
  resolveCapabilities,
  resolveFlavor,
  resolveStorageClass,
  unique,
  WorkloadConfigError,
} from './workload-config.ts';

export {
  DOCKER_DAEMON_CONTAINER,
  DOCKER_DIND_IMAGE,
  DOCKER_DIND_ROOTLESS_IMAGE,
  DOCKER_HOST,
  DOCKER_ROOTLESS_ANNOTATIONS,
  DOCKER_SUBID_INIT_CONTAINER,
  DOCKER_SUBID_SCRIPT,
  DOCKER_VOLUMES,
} from './docker-capability.ts';
export {
  GPU_RESOURCE,
  WorkloadConfigError,
  type WorkloadConfigErrorCode,
} from './workload-config.ts';

export const ANNOTATIONS = {
  pvcNames: 'agyn.io/pvc-names',
  pullSecretNames: 'agyn.io/pull-secret-names',
} as const;

export const INLINE_FILES_VOLUME = 'inline-files';

export interface PodBuildInput {
  workload: AgentWorkload;
  workloadId: string;
  podName: string;
  runner: RunnerSettings;
}

export function pullSecretName(podName: string): string {
  return `${podName}-pull`;
}

export function inlineFilesSecretName(podName: string): string {
  return `${podName}-inline-files`;
}

export function claimName(volume: VolumeSpec): string {
  return volume.persistentName ?? volume.name;
}

export function buildPod(input: PodBuildInput): IPod {
  const { workload, runner, podName } = input;
  const spec = workload.spec;
  const namespace = requireNamespace(workload);

  const labels = podLabels(input);
  const capabilities = resolveCapabilities(spec, runner);
  const flavor = resolveFlavor(spec, runner);
  if (capabilities.docker !== undefined) checkDockerNames(spec, capabilities.docker);
  const docker = capabilities.docker === undefined ? undefined : dockerPlan(capabilities.docker);
  const { initContainers, containers } = podContainers(input, docker, (main) => {
    const resources = mainResources(flavor, capabilities.gpu);
    if (resources) main.resources = resources;
  });

  const volumes: IVolume[] = [
    ...spec.volumes.map(toVolume),
    ...(spec.inlineFiles ? [inlineFilesVolume(spec.inlineFiles)] : []),
    ...(docker?.volumes ?? []),
  ];

  const podSpec: IPodSpec = {
    restartPolicy: spec.restartPolicy,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    containers,
  };
  if (initContainers.length > 0) podSpec.initContainers = initContainers;
  if (volumes.length > 0) podSpec.volumes = volumes;
  placePod(podSpec, input, docker);

  const annotations = podAnnotations(spec, docker);
  const metadata: NonNullable<IPod['metadata']> = {
    name: podName,
    namespace,
    labels,
    ownerReferences: [
      ownerReference(AGENT_WORKLOAD_KIND, workload, { controller: true, blockOwnerDeletion: true }),
    ],
  };
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;

  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: podSpec };
}

/** The Pod's containers in their order: ziti, docker's helper, init; main, sidecars, docker. */
function podContainers(
  input: PodBuildInput,
  docker: DockerPlan | undefined,
  editMain: (main: IContainer) => void,
): { initContainers: IContainer[]; containers: IContainer[] } {
  const { spec } = input.workload;
  const { runner } = input;
  const inlineKeys = inlineFileKeys(spec);
  const named = new Map(allContainers(spec).map((c) => [c.spec, c]));
  for (const c of named.values()) {
    const refusal = ungrantedCapability({ ...c, ...c.spec }, runner.security);
    if (refusal)
      throw new WorkloadConfigError('capability_not_granted', refusal.field, refusal.detail);
  }

  const toContainer = (c: ContainerSpec) => {
    const container = mapContainer(c, inlineKeys);
    const { role, field } = named.get(c) ?? { role: 'main', field: 'spec.main' };
    container.securityContext = workloadSecurityContext(
      { role, field, linuxCapabilities: c.linuxCapabilities },
      runner.security,
    );
    return container;
  };

  const main = toContainer(spec.main);
  editMain(main);
  if (docker) {
    main.env = [
      ...(main.env ?? []).filter((e) => e.name !== 'DOCKER_HOST'),
      { name: 'DOCKER_HOST', value: DOCKER_HOST },
    ];
  }

  const initContainers: IContainer[] = [
    ...spec.sidecars
      .filter((s) => s.role === 'ziti')
      .map((s) => ({ ...toContainer(s), restartPolicy: 'Always' })),
    ...(docker?.subidInit ? [docker.subidInit] : []),
    ...spec.initContainers.map((c) => {
      const container = toContainer(c);
      if (c.restartPolicy === 'Always') container.restartPolicy = 'Always';
      return container;
    }),
  ];

  const containers: IContainer[] = [
    main,
    ...(['mcp', 'hook', 'other'] as const).flatMap((role) =>
      spec.sidecars.filter((s) => s.role === role).map(toContainer),
    ),
    ...(docker ? [docker.daemon] : []),
  ];
  return { initContainers, containers };
}

/** Pull secrets, DNS, the runner's scheduling and docker's runtime settings. */
function placePod(podSpec: IPodSpec, input: PodBuildInput, docker: DockerPlan | undefined): void {
  const { spec } = input.workload;
  const { runner } = input;
  const pullSecrets = unique([spec.imagePullSecretRef?.name, ...runner.pullSecrets]);
  if (pullSecrets.length > 0) podSpec.imagePullSecrets = pullSecrets.map((name) => ({ name }));

  if (spec.dns && spec.dns.nameservers.length > 0) {
    podSpec.dnsPolicy = 'None';
    podSpec.dnsConfig = { nameservers: [...spec.dns.nameservers] };
    if (spec.dns.searches.length > 0) podSpec.dnsConfig.searches = [...spec.dns.searches];
  }

  const { nodeSelector, tolerations } = runner.scheduling;
  if (nodeSelector && Object.keys(nodeSelector).length > 0) {
    podSpec.nodeSelector = { ...nodeSelector };
  }
  if (tolerations && tolerations.length > 0) {
    podSpec.tolerations = tolerations.map((t) => ({ ...t }));
  }

  if (docker?.hostUsers !== undefined) podSpec.hostUsers = docker.hostUsers;
  if (docker?.runtimeClassName !== undefined) podSpec.runtimeClassName = docker.runtimeClassName;
}

function podAnnotations(
  spec: AgentWorkloadSpec,
  docker: DockerPlan | undefined,
): Record<string, string> {
  const annotations: Record<string, string> = {};
  const pvcNames = unique(spec.volumes.filter((v) => v.kind === 'Persistent').map(claimName));
  if (pvcNames.length > 0) annotations[ANNOTATIONS.pvcNames] = pvcNames.join(',');
  // The runner's shared pull secrets are left out: these are the workload's own Secrets.
  const secretNames = unique([spec.imagePullSecretRef?.name, spec.inlineFiles?.secretRef.name]);
  if (secretNames.length > 0) annotations[ANNOTATIONS.pullSecretNames] = secretNames.join(',');
  Object.assign(annotations, docker?.annotations);
  return annotations;
}

export function buildPersistentVolumeClaim(
  input: PodBuildInput,
  volume: VolumeSpec,
): IPersistentVolumeClaim {
  const { workload, runner } = input;
  if (volume.kind !== 'Persistent') {
    throw new Error(`volume ${volume.name} is ${volume.kind}, not Persistent`);
  }
  const namespace = requireNamespace(workload);
  const index = workload.spec.volumes.findIndex((v) => v.name === volume.name);
  const field = index >= 0 ? `spec.volumes[${index}]` : 'spec.volumes';

  // The creator's id: only it (or a workload granted the claim) may mount it later.
  const fixed: Record<string, string> = {
    [LABELS.managedBy]: MANAGED_BY_VALUE,
    [LABELS.workloadId]: input.workloadId,
  };
  if (runner.name !== '') fixed[LABELS.runner] = runner.name;
  const labels = mergeLabels(volume.labels, `${field}.labels`, fixed);

  const pvcSpec: NonNullable<IPersistentVolumeClaim['spec']> = {
    accessModes: ['ReadWriteOnce'],
    resources: { requests: { storage: volume.size ?? runner.storage.defaultSize } },
  };
  const storageClassName = resolveStorageClass(volume, runner, `${field}.storageClass`);
  if (storageClassName !== undefined) pvcSpec.storageClassName = storageClassName;

  const metadata: NonNullable<IPersistentVolumeClaim['metadata']> = {
    name: claimName(volume),
    namespace,
    labels,
  };
  if (workload.spec.deleteVolumesWithWorkload) {
    metadata.ownerReferences = [
      ownerReference(AGENT_WORKLOAD_KIND, workload, { controller: false }),
    ];
  }

  return { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata, spec: pvcSpec };
}

function requireNamespace(workload: AgentWorkload): string {
  const namespace = workload.metadata.namespace;
  if (!namespace) throw new Error(`AgentWorkload ${workload.metadata.name} has no namespace`);
  return namespace;
}

function podLabels(input: PodBuildInput): Record<string, string> {
  const fixed: Record<string, string> = {
    [LABELS.managedBy]: MANAGED_BY_VALUE,
    [LABELS.workloadId]: input.workloadId,
  };
  if (input.runner.name !== '') fixed[LABELS.runner] = input.runner.name;
  fixed[LABELS.orchestratorManagedBy] = ORCHESTRATOR_MANAGED_BY_VALUE;
  return mergeLabels(input.workload.spec.labels, 'spec.labels', fixed);
}

function inlineFileKeys(spec: AgentWorkloadSpec): Map<string, string> {
  const keys = new Map((spec.inlineFiles?.files ?? []).map((f) => [f.path, f.key]));
  if (spec.inlineFiles) {
    const index = spec.volumes.findIndex((v) => v.name === INLINE_FILES_VOLUME);
    if (index >= 0) {
      throw new WorkloadConfigError(
        'capability_volume_name_conflict',
        `spec.volumes[${index}].name`,
        `${INLINE_FILES_VOLUME} is reserved for inline files`,
      );
    }
  }
  for (const { spec: container, field } of allContainers(spec)) {
    (container.inlineFileMounts ?? []).forEach((path, i) => {
      if (!keys.has(path)) {
        throw new WorkloadConfigError(
          'inline_file_not_defined',
          `${field}.inlineFileMounts[${i}]`,
          path,
        );
      }
    });
  }
  return keys;
}

function inlineFilesVolume(inlineFiles: NonNullable<AgentWorkloadSpec['inlineFiles']>): IVolume {
  const keys = unique(inlineFiles.files.map((f) => f.key));
  return {
    name: INLINE_FILES_VOLUME,
    projected: {
      sources: [
        {
          secret: {
            name: inlineFiles.secretRef.name,
            items: keys.map((key) => ({ key, path: key })),
          },
        },
      ],
    },
  };
}

function mapContainer(spec: ContainerSpec, inlineKeys: ReadonlyMap<string, string>): IContainer {
  const container: IContainer = { name: spec.name, image: spec.image };
  if (spec.command && spec.command.length > 0) container.command = [...spec.command];
  if (spec.args && spec.args.length > 0) container.args = [...spec.args];
  if (spec.env && spec.env.length > 0) {
    container.env = spec.env.map((e): IEnvVar => ({ name: e.name, value: e.value }));
  }
  if (spec.workingDir) container.workingDir = spec.workingDir;
  const mounts: IVolumeMount[] = (spec.mounts ?? []).map((m) => {
    const mount: IVolumeMount = { name: m.volume, mountPath: m.mountPath };
    if (m.readOnly !== undefined) mount.readOnly = m.readOnly;
    return mount;
  });
  for (const path of spec.inlineFileMounts ?? []) {
    mounts.push({
      name: INLINE_FILES_VOLUME,
      mountPath: path,
      subPath: inlineKeys.get(path),
      readOnly: true,
    });
  }
  if (mounts.length > 0) container.volumeMounts = mounts;
  return container;
}

function toVolume(volume: VolumeSpec): IVolume {
  return volume.kind === 'Persistent'
    ? { name: volume.name, persistentVolumeClaim: { claimName: claimName(volume) } }
    : { name: volume.name, emptyDir: {} };
}
