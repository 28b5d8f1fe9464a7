import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';
import type { ContainerRole } from '../api/linux-capabilities.ts';
import type { WorkloadSecurity } from '../api/runner.ts';

/** A workload container as the Runner's grants see it. */
export interface GrantedContainer {
  role: ContainerRole;
  /** The spec path of the container, e.g. spec.sidecars[2]. */
  field: string;
  linuxCapabilities?: readonly string[];
}

/** A capability the Runner does not grant the container's role. */
export interface CapabilityRefusal {
  field: string;
  detail: string;
}

/** The first requested capability the Runner does not grant, if any. */
export function ungrantedCapability(
  container: GrantedContainer,
  security: WorkloadSecurity,
): CapabilityRefusal | undefined {
  const granted = security.capabilities[container.role] as readonly string[];
  const requested = container.linuxCapabilities ?? [];
  const index = requested.findIndex((c) => !granted.includes(c));
  if (index < 0) return undefined;
  return {
    field: `${container.field}.linuxCapabilities[${index}]`,
    detail: `${requested[index]} is not granted to ${container.role} containers (Runner spec.workloadSecurity.capabilities.${container.role})`,
  };
}

/**
 * The security context of every workload container: no privilege escalation, every
 * capability dropped but the granted ones it asks for, the runtime's default seccomp
 * profile, and non-root unless the Runner allows root. With no grants this meets Pod
 * Security "restricted"; with allowRoot "baseline".
 */
export function workloadSecurityContext(
  container: GrantedContainer,
  security: WorkloadSecurity,
): ISecurityContext {
  const add = [...new Set(container.linuxCapabilities ?? [])];
  const context: ISecurityContext = {
    allowPrivilegeEscalation: false,
    capabilities: add.length > 0 ? { drop: ['ALL'], add } : { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
  if (!security.allowRoot) context.runAsNonRoot = true;
  return context;
}

/** The operator's own helper containers (e.g. docker's subid init): restricted, whatever the grants. */
export const HELPER_SECURITY_CONTEXT: ISecurityContext = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};
