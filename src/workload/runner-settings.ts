import type { DockerImplementation, Flavor, HealthThresholds, RunnerSpec } from '../api/runner.ts';
import { DEFAULT_HEALTH, DEFAULT_WORKLOAD_SECURITY, type WorkloadSecurity } from '../api/runner.ts';

/**
 * What the pod builder and the health classifier need to know about the Runner a
 * workload was placed on. Placement produces it from a Runner; without Runners the
 * controller falls back to namespace defaults (DEFAULT_RUNNER_SETTINGS).
 */
export interface RunnerSettings {
  name: string;
  pullSecrets: string[];
  storage: { defaultClass?: string; defaultSize: string };
  storageClasses: Array<{ name: string; storageClassName?: string; default: boolean }>;
  flavors: Flavor[];
  capabilities: string[];
  docker?: DockerImplementation;
  scheduling: {
    nodeSelector?: Record<string, string>;
    tolerations?: Array<{
      key?: string;
      operator?: 'Exists' | 'Equal';
      value?: string;
      effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
      tolerationSeconds?: number;
    }>;
  };
  health: HealthThresholds;
  /** Capabilities each container role may add, and whether containers may run as root. */
  security: WorkloadSecurity;
}

export const DEFAULT_RUNNER_SETTINGS: RunnerSettings = {
  name: '',
  pullSecrets: [],
  storage: { defaultSize: '10Gi' },
  storageClasses: [],
  flavors: [],
  capabilities: [],
  scheduling: {},
  health: DEFAULT_HEALTH,
  security: DEFAULT_WORKLOAD_SECURITY,
};

export function runnerSettingsFromSpec(name: string, spec: RunnerSpec): RunnerSettings {
  return {
    name,
    pullSecrets: spec.pullSecrets.map((s) => s.name),
    storage: { defaultClass: spec.storage.defaultClass, defaultSize: spec.storage.defaultSize },
    storageClasses: spec.catalog.storageClasses,
    flavors: spec.catalog.flavors,
    capabilities: spec.capabilities,
    docker: spec.capabilityImplementations.docker,
    scheduling: spec.scheduling,
    health: spec.health,
    security: spec.workloadSecurity,
  };
}
