import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
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
  labelProblem,
  ownerReference,
} from '../api/common.ts';
import type { DockerImplementation, Flavor } from '../api/runner.ts';
import type { RunnerSettings } from './runner-settings.ts';
import type { ContainerRole } from '../api/linux-capabilities.ts';
import { reservedLabel } from './label-policy.ts';
import {
  HELPER_SECURITY_CONTEXT,
  ungrantedCapability,
  workloadSecurityContext,
} from './pod-security.ts';

export const ANNOTATIONS = {
  pvcNames: 'agyn.io/pvc-names',
  pullSecretNames: 'agyn.io/pull-secret-names',
} as const;

export const INLINE_FILES_VOLUME = 'inline-files';
export const GPU_RESOURCE = 'nvidia.com/gpu';

export const DOCKER_HOST = 'tcp://localhost:2375';
export const DOCKER_DIND_IMAGE = 'docker:27-dind';
export const DOCKER_DIND_ROOTLESS_IMAGE = 'docker:27-dind-rootless';
export const DOCKER_DAEMON_CONTAINER = 'docker-daemon';
export const DOCKER_SUBID_INIT_CONTAINER = 'docker-subid-init';
export const DOCKER_VOLUMES = {
  data: 'docker-data',
  run: 'docker-run',
  tun: 'docker-tun',
  subid: 'docker-subid',
} as const;
export const DOCKER_ROOTLESS_ANNOTATIONS: Readonly<Record<string, string>> = {
  'container.apparmor.security.beta.kubernetes.io/docker-daemon': 'unconfined',
  'seccomp.security.alpha.kubernetes.io/pod': 'unconfined',
  'container.seccomp.security.alpha.kubernetes.io/docker-daemon': 'unconfined',
};

/**
 * Writes /subid/subuid and /subid/subgid for user `rootless` from the size N of the
 * pod's user-namespace maps: 1..min(N-1, 999), then 1001..N-1 (1000 is rootless itself).
 */
export const DOCKER_SUBID_SCRIPT = [
  'set -eu',
  'write_ranges() {',
  '  size=$(awk \'NR == 1 { print $3 }\' "$1")',
  '  last=$((size - 1))',
  '  : > "$2"',
  '  if [ "$last" -ge 1 ]; then',
  '    first=$last',
  '    if [ "$first" -gt 999 ]; then first=999; fi',
  '    echo "rootless:1:$first" >> "$2"',
  '  fi',
  '  if [ "$last" -ge 1001 ]; then',
  '    echo "rootless:1001:$((last - 1000))" >> "$2"',
  '  fi',
  '}',
  'write_ranges /proc/self/uid_map /subid/subuid',
  'write_ranges /proc/self/gid_map /subid/subgid',
  '',
].join('\n');

export type WorkloadConfigErrorCode =
  | 'unknown_flavor'
  | 'unknown_storage_class'
  | 'docker_capability_not_configured'
  | 'unknown_docker_implementation'
  | 'unknown_capability'
  | 'capability_required'
  | 'capability_container_name_conflict'
  | 'capability_volume_name_conflict'
  | 'inline_file_not_defined'
  | 'capability_not_granted'
  | 'invalid_label';

/** Configuration the CRD schema cannot reject; the controller reports it as Failed / config_invalid. */
export class WorkloadConfigError extends Error {
  override readonly name = 'WorkloadConfigError';
  readonly code: WorkloadConfigErrorCode;
  readonly field: string;

  constructor(code: WorkloadConfigErrorCode, field: string, detail: string) {
    super(`${code}: ${detail}`);
    this.code = code;
    this.field = field;
  }
}

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

interface NamedContainer {
  spec: ContainerSpec;
  field: string;
  role: ContainerRole;
}

interface DockerPlan {
  daemon: IContainer;
  subidInit?: IContainer;
  volumes: IVolume[];
  annotations: Record<string, string>;
  hostUsers?: false;
  runtimeClassName?: string;
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
  const resources = mainResources(flavor, capabilities.gpu);
  if (resources) main.resources = resources;
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

  const annotations: Record<string, string> = {};
  const pvcNames = unique(spec.volumes.filter((v) => v.kind === 'Persistent').map(claimName));
  if (pvcNames.length > 0) annotations[ANNOTATIONS.pvcNames] = pvcNames.join(',');
  // The runner's shared pull secrets are left out: these are the workload's own Secrets.
  const secretNames = unique([spec.imagePullSecretRef?.name, spec.inlineFiles?.secretRef.name]);
  if (secretNames.length > 0) annotations[ANNOTATIONS.pullSecretNames] = secretNames.join(',');
  Object.assign(annotations, docker?.annotations);

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

function mergeLabels(
  user: Record<string, string> | undefined,
  userField: string,
  fixed: Record<string, string>,
): Record<string, string> {
  for (const [key, value] of Object.entries(user ?? {})) {
    checkLabel(key, value, userField);
    const reserved = reservedLabel(key);
    if (reserved) throw new WorkloadConfigError('invalid_label', userField, reserved);
  }
  for (const [key, value] of Object.entries(fixed)) checkLabel(key, value, 'metadata.labels');
  return { ...user, ...fixed };
}

function checkLabel(key: string, value: string, field: string): void {
  const problem = labelProblem(key, value);
  if (problem) throw new WorkloadConfigError('invalid_label', field, problem);
}

function resolveCapabilities(
  spec: AgentWorkloadSpec,
  runner: RunnerSettings,
): { docker?: DockerImplementation; gpu: boolean } {
  const offered = new Set(runner.capabilities.map(normalizeCapability));
  const required = new Set<string>();
  spec.capabilities.forEach((raw, i) => {
    const capability = normalizeCapability(raw);
    const field = `spec.capabilities[${i}]`;
    if (capability === '') {
      throw new WorkloadConfigError('capability_required', field, 'blank capability');
    }
    if (capability === 'docker') {
      if (runner.docker === undefined) {
        throw new WorkloadConfigError(
          'docker_capability_not_configured',
          field,
          `runner ${JSON.stringify(runner.name)} has no docker implementation`,
        );
      }
    } else if (!offered.has(capability)) {
      throw new WorkloadConfigError(
        'unknown_capability',
        field,
        `${capability} is not offered by runner ${JSON.stringify(runner.name)}`,
      );
    }
    required.add(capability);
  });
  return { docker: required.has('docker') ? runner.docker : undefined, gpu: required.has('gpu') };
}

function normalizeCapability(capability: string): string {
  return capability.trim().toLowerCase();
}

function resolveFlavor(spec: AgentWorkloadSpec, runner: RunnerSettings): Flavor | undefined {
  if (spec.flavor === undefined || spec.flavor === '') return runner.flavors.find((f) => f.default);
  const flavor = runner.flavors.find((f) => f.name === spec.flavor);
  if (!flavor) {
    throw new WorkloadConfigError(
      'unknown_flavor',
      'spec.flavor',
      `${spec.flavor} is not in the catalog of runner ${JSON.stringify(runner.name)}`,
    );
  }
  return flavor;
}

function mainResources(
  flavor: Flavor | undefined,
  gpu: boolean,
): IResourceRequirements | undefined {
  const requests = definedEntries(flavor?.resources.requests);
  const limits: Record<string, string> = definedEntries(flavor?.resources.limits);
  if (gpu) limits[GPU_RESOURCE] = '1';
  const resources: IResourceRequirements = {};
  if (Object.keys(requests).length > 0) resources.requests = requests;
  if (Object.keys(limits).length > 0) resources.limits = limits;
  return Object.keys(resources).length > 0 ? resources : undefined;
}

function definedEntries(
  values: Record<string, string | undefined> | undefined,
): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(values ?? {})) {
    if (value !== undefined) result[key] = value;
  }
  return result;
}

function resolveStorageClass(
  volume: VolumeSpec,
  runner: RunnerSettings,
  field: string,
): string | undefined {
  if (volume.storageClass !== undefined && volume.storageClass !== '') {
    const entry = runner.storageClasses.find((c) => c.name === volume.storageClass);
    if (!entry) {
      throw new WorkloadConfigError(
        'unknown_storage_class',
        field,
        `${volume.storageClass} is not in the catalog of runner ${JSON.stringify(runner.name)}`,
      );
    }
    return entry.storageClassName || undefined;
  }
  if (runner.storage.defaultClass) return runner.storage.defaultClass;
  return runner.storageClasses.find((c) => c.default)?.storageClassName || undefined;
}

function allContainers(spec: AgentWorkloadSpec): NamedContainer[] {
  return [
    { spec: spec.main, field: 'spec.main', role: 'main' },
    ...spec.sidecars.map((s, i) => ({ spec: s, field: `spec.sidecars[${i}]`, role: s.role })),
    ...spec.initContainers.map((c, i) => ({
      spec: c,
      field: `spec.initContainers[${i}]`,
      role: 'init' as const,
    })),
  ];
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

function dockerReservedNames(implementation: DockerImplementation): {
  containers: string[];
  volumes: string[];
} {
  return implementation === 'rootless'
    ? {
        containers: [DOCKER_DAEMON_CONTAINER, DOCKER_SUBID_INIT_CONTAINER],
        volumes: [
          DOCKER_VOLUMES.data,
          DOCKER_VOLUMES.run,
          DOCKER_VOLUMES.tun,
          DOCKER_VOLUMES.subid,
        ],
      }
    : { containers: [DOCKER_DAEMON_CONTAINER], volumes: [DOCKER_VOLUMES.data] };
}

function checkDockerNames(spec: AgentWorkloadSpec, implementation: DockerImplementation): void {
  const reserved = dockerReservedNames(implementation);
  for (const { spec: container, field } of allContainers(spec)) {
    if (reserved.containers.includes(container.name)) {
      throw new WorkloadConfigError(
        'capability_container_name_conflict',
        `${field}.name`,
        `${container.name} is reserved by the docker capability`,
      );
    }
  }
  spec.volumes.forEach((volume, i) => {
    if (reserved.volumes.includes(volume.name)) {
      throw new WorkloadConfigError(
        'capability_volume_name_conflict',
        `spec.volumes[${i}].name`,
        `${volume.name} is reserved by the docker capability`,
      );
    }
  });
}

function dockerPlan(implementation: DockerImplementation): DockerPlan {
  const env: IEnvVar[] = [{ name: 'DOCKER_TLS_CERTDIR', value: '' }];
  switch (implementation) {
    case 'rootless':
      return {
        daemon: {
          name: DOCKER_DAEMON_CONTAINER,
          image: DOCKER_DIND_ROOTLESS_IMAGE,
          env,
          securityContext: {
            allowPrivilegeEscalation: true,
            seccompProfile: { type: 'Unconfined' },
            appArmorProfile: { type: 'Unconfined' },
            procMount: 'Unmasked',
          },
          volumeMounts: [
            { name: DOCKER_VOLUMES.data, mountPath: '/home/rootless/.local/share' },
            { name: DOCKER_VOLUMES.run, mountPath: '/run/user/1000' },
            { name: DOCKER_VOLUMES.tun, mountPath: '/dev/net/tun' },
            {
              name: DOCKER_VOLUMES.subid,
              mountPath: '/etc/subuid',
              subPath: 'subuid',
              readOnly: true,
            },
            {
              name: DOCKER_VOLUMES.subid,
              mountPath: '/etc/subgid',
              subPath: 'subgid',
              readOnly: true,
            },
          ],
        },
        subidInit: {
          name: DOCKER_SUBID_INIT_CONTAINER,
          image: DOCKER_DIND_ROOTLESS_IMAGE,
          command: ['/bin/sh', '-c', DOCKER_SUBID_SCRIPT],
          securityContext: { ...HELPER_SECURITY_CONTEXT },
          volumeMounts: [{ name: DOCKER_VOLUMES.subid, mountPath: '/subid' }],
        },
        volumes: [
          { name: DOCKER_VOLUMES.data, emptyDir: {} },
          { name: DOCKER_VOLUMES.run, emptyDir: {} },
          { name: DOCKER_VOLUMES.tun, hostPath: { path: '/dev/net/tun', type: 'CharDevice' } },
          { name: DOCKER_VOLUMES.subid, emptyDir: {} },
        ],
        annotations: { ...DOCKER_ROOTLESS_ANNOTATIONS },
        hostUsers: false,
      };
    case 'privileged':
    case 'kata-qemu':
    case 'kata-fc': {
      const plan: DockerPlan = {
        daemon: {
          name: DOCKER_DAEMON_CONTAINER,
          image: DOCKER_DIND_IMAGE,
          env,
          securityContext: { privileged: true, allowPrivilegeEscalation: true },
          volumeMounts: [{ name: DOCKER_VOLUMES.data, mountPath: '/var/lib/docker' }],
        },
        volumes: [{ name: DOCKER_VOLUMES.data, emptyDir: {} }],
        annotations: {},
      };
      if (implementation !== 'privileged') plan.runtimeClassName = implementation;
      return plan;
    }
    default:
      throw new WorkloadConfigError(
        'unknown_docker_implementation',
        'runner.capabilityImplementations.docker',
        String(implementation satisfies never),
      );
  }
}

function unique(values: ReadonlyArray<string | undefined>): string[] {
  return [...new Set(values.filter((v): v is string => v !== undefined && v !== ''))];
}
