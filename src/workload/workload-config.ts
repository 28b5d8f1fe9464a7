import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import type { AgentWorkloadSpec, ContainerSpec, VolumeSpec } from '../api/agentworkload.ts';
import type { DockerImplementation, Flavor } from '../api/runner.ts';
import type { ContainerRole } from '../api/linux-capabilities.ts';
import { labelProblem } from '../api/common.ts';
import { reservedLabel } from './label-policy.ts';
import type { RunnerSettings } from './runner-settings.ts';

export const GPU_RESOURCE = 'nvidia.com/gpu';

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

export interface NamedContainer {
  spec: ContainerSpec;
  field: string;
  role: ContainerRole;
}

export function allContainers(spec: AgentWorkloadSpec): NamedContainer[] {
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

/** User labels (checked, none reserved) under the operator's fixed ones. */
export function mergeLabels(
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

/** The capabilities the spec asks for, each offered by the runner. */
export function resolveCapabilities(
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

export function resolveFlavor(spec: AgentWorkloadSpec, runner: RunnerSettings): Flavor | undefined {
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

export function mainResources(
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

export function resolveStorageClass(
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

export function unique(values: ReadonlyArray<string | undefined>): string[] {
  return [...new Set(values.filter((v): v is string => v !== undefined && v !== ''))];
}
