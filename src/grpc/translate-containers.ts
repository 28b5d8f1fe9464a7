import { posix } from 'node:path';
import { SIDECAR_ROLES, type AgentWorkloadSpec, type SidecarRole } from '../api/agentworkload.ts';
import { isDnsLabel } from '../api/common.ts';
import { LINUX_CAPABILITIES, type LinuxCapability } from '../api/linux-capabilities.ts';
import type { ContainerSpec as ProtoContainerSpec } from '../gen/agynio/api/runner/v1/runner.ts';
import { invalidArgument } from './errors.ts';

// One ContainerSpec of a StartWorkloadRequest → one container of the AgentWorkload spec.

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const LINUX_CAPABILITY = new Set<string>(LINUX_CAPABILITIES);

export function isEnvName(value: string): boolean {
  return ENV_NAME.test(value);
}

export function checkInlinePath(path: string, field: string): void {
  if (
    !path.startsWith('/') ||
    path === '/' ||
    posix.normalize(path) !== path ||
    path.endsWith('/')
  ) {
    throw invalidArgument('inline_file_path_invalid', `${path} (${field})`);
  }
}

export type TranslatedContainer = AgentWorkloadSpec['main'];

export function translateContainer(
  c: ProtoContainerSpec,
  defaultName: string,
  field: string,
  volumes: ReadonlySet<string>,
  inlineKeys: ReadonlyMap<string, string> | undefined,
): TranslatedContainer {
  const name = c.name.trim() || defaultName;
  if (!isDnsLabel(name))
    throw invalidArgument('invalid_container_name', `${field}.name: ${JSON.stringify(name)}`);
  const image = c.image.trim();
  if (image === '') throw invalidArgument('container_image_required', `${field}.image`);

  const container: TranslatedContainer = { name, image };
  const entrypoint = c.entrypoint.trim();
  if (entrypoint !== '') {
    if (/\s/.test(entrypoint))
      throw invalidArgument('entrypoint_must_be_single_path', `${field}.entrypoint`);
    container.command = [entrypoint];
  }
  if (c.cmd.length > 0) container.args = [...c.cmd];
  if (c.env.length > 0) {
    container.env = c.env.map((e, i) => {
      const envField = `${field}.env[${i}].name`;
      if (e.name.trim() === '') throw invalidArgument('env_name_required', envField);
      if (!isEnvName(e.name))
        throw invalidArgument('invalid_env_name', `${envField}: ${JSON.stringify(e.name)}`);
      return { name: e.name, value: e.value };
    });
  }
  if (c.workingDir !== '') container.workingDir = c.workingDir;
  if (c.mounts.length > 0) container.mounts = translateMounts(c, field, volumes);
  const capabilities = [
    ...new Set(c.requiredCapabilities.map((x) => x.trim().toUpperCase()).filter((x) => x !== '')),
  ];
  for (const capability of capabilities) {
    if (!LINUX_CAPABILITY.has(capability)) {
      throw invalidArgument(
        'invalid_required_capability',
        `${field}.required_capabilities: ${JSON.stringify(capability)}`,
      );
    }
  }
  if (capabilities.length > 0) container.linuxCapabilities = capabilities as LinuxCapability[];
  if (c.inlineFileMounts.length > 0) {
    const paths: string[] = [];
    c.inlineFileMounts.forEach((m, i) => {
      const mountField = `${field}.inline_file_mounts[${i}].path`;
      if (!inlineKeys)
        throw invalidArgument('inline_file_not_defined', `${m.path} (${mountField})`);
      checkInlinePath(m.path, mountField);
      if (!inlineKeys.has(m.path))
        throw invalidArgument('inline_file_not_defined', `${m.path} (${mountField})`);
      if (!paths.includes(m.path)) paths.push(m.path);
    });
    container.inlineFileMounts = paths;
  }
  return container;
}

type TranslatedMount = NonNullable<TranslatedContainer['mounts']>[number];

function translateMounts(
  c: ProtoContainerSpec,
  field: string,
  volumes: ReadonlySet<string>,
): TranslatedMount[] {
  return c.mounts.map((m, i) => {
    const mountField = `${field}.mounts[${i}]`;
    const volume = m.volume.trim();
    if (volume === '') throw invalidArgument('volume_mount_name_required', `${mountField}.volume`);
    if (!volumes.has(volume))
      throw invalidArgument('volume_not_defined', `${volume} (${mountField}.volume)`);
    if (m.mountPath.trim() === '')
      throw invalidArgument('mount_path_required', `${mountField}.mount_path`);
    if (!m.mountPath.startsWith('/')) {
      throw invalidArgument(
        'mount_path_invalid',
        `${mountField}.mount_path: ${JSON.stringify(m.mountPath)} is not absolute`,
      );
    }
    const mount: TranslatedMount = {
      volume,
      mountPath: m.mountPath,
    };
    if (m.readOnly) mount.readOnly = true;
    return mount;
  });
}

export function rejectRestartPolicy(c: ProtoContainerSpec, field: string): void {
  const policy = c.additionalProperties['restart_policy'];
  if (policy === 'Always') {
    throw invalidArgument(
      'restart_policy_not_allowed',
      `${field}.additional_properties.restart_policy: only init containers may be native sidecars`,
    );
  }
}

export function explicitRole(c: ProtoContainerSpec, field: string): SidecarRole | undefined {
  const role = c.additionalProperties['role']?.trim();
  if (!role) return undefined;
  if (!(SIDECAR_ROLES as readonly string[]).includes(role)) {
    throw invalidArgument(
      'invalid_sidecar_role',
      `${field}.additional_properties.role: ${JSON.stringify(role)}`,
    );
  }
  return role as SidecarRole;
}

export function sidecarRole(c: ProtoContainerSpec, name: string, field: string): SidecarRole {
  const explicit = explicitRole(c, field);
  if (explicit) return explicit;
  if (name === 'mcp' || name.startsWith('mcp-')) return 'mcp';
  if (name === 'hook' || name.startsWith('hook-')) return 'hook';
  return 'other';
}
