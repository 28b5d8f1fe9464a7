import { LINUX_CAPABILITIES, type LinuxCapability } from '../api/linux-capabilities.ts';
import { isIP } from 'node:net';
import { posix } from 'node:path';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import {
  SIDECAR_ROLES,
  agentWorkloadSpecSchema,
  type AgentWorkload,
  type AgentWorkloadSpec,
  type ContainerState,
  type SidecarRole,
} from '../api/agentworkload.ts';
import {
  API_GROUP_VERSION,
  LABELS,
  MANAGED_BY_VALUE,
  ORCHESTRATOR_MANAGED_BY_VALUE,
  WORKLOAD_FINALIZER,
} from '../api/common.ts';
import { containerStatesFromPod } from '../workload/container-states.ts';
import {
  DOCKER_DAEMON_CONTAINER,
  DOCKER_VOLUMES,
  INLINE_FILES_VOLUME,
  inlineFilesSecretName,
  pullSecretName,
} from '../workload/pod-builder.ts';
import {
  ContainerRole,
  ContainerStatus,
  VolumeKind,
  WorkloadStatus,
  type ContainerSpec as ProtoContainerSpec,
  type InspectWorkloadResponse,
  type SidecarInstance,
  type StartWorkloadRequest,
  type TargetMount,
  type WorkloadContainer,
  type WorkloadFailure,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { workloadIdOf, type Pod, type Workload } from './caches.ts';
import { invalidArgument } from './errors.ts';

export const TOUCHED_AT_ANNOTATION = 'agyn.io/touched-at';
export const TTL_AFTER_STOPPED_ANNOTATION = 'agyn.io/ttl-seconds-after-stopped';
export const STOPPED_WORKLOAD_TTL_SECONDS = 3600;
export const POD_NAME_PREFIX = 'workload-';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const LINUX_CAPABILITY = new Set<string>(LINUX_CAPABILITIES);
const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const LABEL_PREFIX = 'label.';
/** A Secret's data may hold at most 1 MiB (the API server's limit). */
const MAX_INLINE_FILES_BYTES = 1024 * 1024;
const RESERVED_LABELS = new Set<string>([LABELS.managedBy, LABELS.workloadId, LABELS.runner]);

export function podNameFor(workloadId: string): string {
  return `${POD_NAME_PREFIX}${workloadId}`;
}

export function isDnsLabel(value: string): boolean {
  return value.length <= 63 && DNS_LABEL.test(value);
}

export function isEnvName(value: string): boolean {
  return ENV_NAME.test(value);
}

/** Why a label key or value is invalid (Kubernetes qualified-name rules), or undefined. */
export function labelProblem(key: string, value: string): string | undefined {
  if (key === '') return 'empty label key';
  const parts = key.split('/');
  const name = parts.at(-1) ?? '';
  const prefix = parts.length === 2 ? parts[0] : undefined;
  const keyValid =
    parts.length <= 2 &&
    name.length <= 63 &&
    LABEL_NAME.test(name) &&
    (prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix)));
  if (!keyValid) return `invalid label key ${JSON.stringify(key)}`;
  if (value !== '' && (value.length > 63 || !LABEL_NAME.test(value))) {
    return `invalid value ${JSON.stringify(value)} for label ${JSON.stringify(key)}`;
  }
  return undefined;
}

export interface TranslateOptions {
  namespace: string;
  /** The Runner this shim serves; workloads it creates are pinned to it. */
  runnerName?: string;
  newId: () => string;
}

export type Secret = ISecret & { metadata: { name: string; namespace: string } };

/** Everything StartWorkload creates, in creation order: the Secrets, then the AgentWorkload. */
export interface StartPlan {
  workloadId: string;
  podName: string;
  secrets: Secret[];
  workload: AgentWorkload;
  sidecars: SidecarInstance[];
}

/**
 * StartWorkloadRequest → AgentWorkload + Secrets. Pure; throws INVALID_ARGUMENT RpcErrors
 * with the contract's snake_case codes in the order the upstream runner checks them.
 */
export function translateStartRequest(
  req: StartWorkloadRequest,
  options: TranslateOptions,
): StartPlan {
  const main = req.main;
  if (!main) throw invalidArgument('main_container_required');
  if (main.image.trim() === '')
    throw invalidArgument('main_container_image_required', 'main.image');

  const workloadId = resolveWorkloadId(req.workloadId, options.newId);
  const podName = podNameFor(workloadId);
  const labels = podLabels(req);
  const capabilities = normalizeCapabilities(req.capabilities);
  const docker = capabilities.includes('docker');
  const pullSecret = pullCredentialSecret(req, workloadId, podName, options.namespace);

  const volumes = translateVolumes(req, labels);
  const volumeNames = new Set(volumes.map((v) => v.name));
  const inline = inlineFiles(req, workloadId, podName, options.namespace);
  if (inline && volumeNames.has(INLINE_FILES_VOLUME)) {
    throw invalidArgument(
      'capability_volume_name_conflict',
      `${INLINE_FILES_VOLUME} (reserved for inline files)`,
    );
  }

  const containerNames = new Map<string, string>();
  const claim = (name: string, field: string): void => {
    if (containerNames.has(name))
      throw invalidArgument('duplicate_container_name', `${name} (${field})`);
    containerNames.set(name, field);
  };

  const mainSpec = translateContainer(main, 'main', 'main', volumeNames, inline?.keys);
  claim(mainSpec.name, 'main.name');
  rejectRestartPolicy(main, 'main');

  const sidecars: AgentWorkloadSpec['sidecars'] = [];
  req.sidecars.forEach((c, i) => {
    const field = `sidecars[${i}]`;
    const spec = translateContainer(c, `sidecar-${i + 1}`, field, volumeNames, inline?.keys);
    claim(spec.name, `${field}.name`);
    rejectRestartPolicy(c, field);
    sidecars.push({ ...spec, role: sidecarRole(c, spec.name, field) });
  });

  const initContainers: AgentWorkloadSpec['initContainers'] = [];
  let ordinaryInitSeen = false;
  req.initContainers.forEach((c, i) => {
    const field = `initContainers[${i}]`;
    const spec = translateContainer(c, `init-${i + 1}`, field, volumeNames, inline?.keys);
    claim(spec.name, `${field}.name`);
    const nativeSidecar = c.additionalProperties['restart_policy'] === 'Always';
    if (nativeSidecar && !ordinaryInitSeen) {
      // Leading native sidecars are the AgentWorkload's ziti-role sidecars: the Pod keeps them first.
      const role = explicitRole(c, field) ?? 'ziti';
      sidecars.push({ ...spec, role });
    } else if (nativeSidecar) {
      initContainers.push({ ...spec, restartPolicy: 'Always' });
    } else {
      ordinaryInitSeen = true;
      initContainers.push(spec);
    }
  });

  if (inline) checkInlineFilesReferenced(inline.paths, [mainSpec, ...sidecars, ...initContainers]);

  if (docker) {
    if (containerNames.has(DOCKER_DAEMON_CONTAINER)) {
      throw invalidArgument('capability_container_name_conflict', DOCKER_DAEMON_CONTAINER);
    }
    if (volumeNames.has(DOCKER_VOLUMES.data)) {
      throw invalidArgument('capability_volume_name_conflict', DOCKER_VOLUMES.data);
    }
  }

  const spec: AgentWorkloadSpec = {
    workloadId,
    main: mainSpec,
    sidecars,
    initContainers,
    volumes,
    capabilities,
    stopped: false,
    restartPolicy: 'Never',
    deleteVolumesWithWorkload: false,
  };
  const userLabels = withoutFixedLabels(labels);
  if (Object.keys(userLabels).length > 0) spec.labels = userLabels;
  if (pullSecret) spec.imagePullSecretRef = { name: pullSecret.metadata.name };
  if (inline)
    spec.inlineFiles = { secretRef: { name: inline.secret.metadata.name }, files: inline.files };
  const dns = dnsConfig(req);
  if (dns) spec.dns = dns;
  const flavor = req.additionalProperties['flavor']?.trim();
  if (flavor) spec.flavor = flavor;
  if (options.runnerName) spec.runnerRef = { name: options.runnerName };

  checkSchema(spec);

  const workload: AgentWorkload = {
    apiVersion: API_GROUP_VERSION,
    kind: 'AgentWorkload',
    metadata: {
      name: podName,
      namespace: options.namespace,
      labels: { ...userLabels, ...ownedLabels(workloadId) },
      // In the create, so the controller need not patch it in.
      finalizers: [WORKLOAD_FINALIZER],
      // Should someone set spec.stopped on it, the stopped workload goes after an hour.
      annotations: { [TTL_AFTER_STOPPED_ANNOTATION]: String(STOPPED_WORKLOAD_TTL_SECONDS) },
    },
    spec,
  };

  const sidecarInstances: SidecarInstance[] = req.sidecars.map((_, i) => {
    const name = sidecars[i]?.name ?? '';
    return { name, id: `${podName}:${name}`, status: 'starting' };
  });
  if (docker) {
    sidecarInstances.push({
      name: DOCKER_DAEMON_CONTAINER,
      id: `${podName}:${DOCKER_DAEMON_CONTAINER}`,
      status: 'starting',
    });
  }

  const secrets = [pullSecret, inline?.secret].filter((s): s is Secret => s !== undefined);
  return { workloadId, podName, secrets, workload, sidecars: sidecarInstances };
}

function resolveWorkloadId(raw: string, newId: () => string): string {
  const id = raw.trim();
  if (id === '') return newId();
  // Only the canonical lowercase spelling: the response id must equal the id sent, and
  // Pod names cannot hold uppercase letters or braces.
  if (!UUID.test(id)) throw invalidArgument('workload_id_invalid', JSON.stringify(raw));
  return id;
}

function ownedLabels(workloadId: string): Record<string, string> {
  return { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.workloadId]: workloadId };
}

/** `label.*` additional properties, then `labels` (which win), validated; fixed labels excluded. */
function podLabels(req: StartWorkloadRequest): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(req.additionalProperties)) {
    if (!key.startsWith(LABEL_PREFIX)) continue;
    const name = key.slice(LABEL_PREFIX.length);
    if (name === '') throw invalidArgument('invalid_label', 'empty label key');
    labels[name] = value;
  }
  Object.assign(labels, req.labels);
  for (const [key, value] of Object.entries(labels)) checkUserLabel(key, value, 'invalid_label');
  return labels;
}

function checkUserLabel(key: string, value: string, code: string): void {
  const problem = labelProblem(key, value);
  if (problem) throw invalidArgument(code, problem);
  if (RESERVED_LABELS.has(key))
    throw invalidArgument(code, `label ${JSON.stringify(key)} is reserved`);
  if (key === LABELS.orchestratorManagedBy && value !== ORCHESTRATOR_MANAGED_BY_VALUE) {
    throw invalidArgument(code, `label ${JSON.stringify(key)} is reserved`);
  }
}

function withoutFixedLabels(labels: Record<string, string>): Record<string, string> {
  const result = { ...labels };
  delete result[LABELS.orchestratorManagedBy];
  return result;
}

function normalizeCapabilities(raw: string[]): string[] {
  const result: string[] = [];
  raw.forEach((entry, i) => {
    const capability = entry.trim().toLowerCase();
    if (capability === '') throw invalidArgument('capability_required', `capabilities[${i}]`);
    if (capability.length > 63) throw invalidArgument('unknown_capability', capability);
    if (!result.includes(capability)) result.push(capability);
  });
  return result;
}

function pullCredentialSecret(
  req: StartWorkloadRequest,
  workloadId: string,
  podName: string,
  namespace: string,
): Secret | undefined {
  if (req.imagePullCredentials.length === 0) return undefined;
  const auths: Record<string, { username: string; password: string; auth: string }> = {};
  req.imagePullCredentials.forEach((cred, i) => {
    const field = `image_pull_credentials[${i}]`;
    if (cred.registry.trim() === '')
      throw invalidArgument('image_pull_registry_required', `${field}.registry`);
    if (cred.username.trim() === '')
      throw invalidArgument('image_pull_username_required', `${field}.username`);
    if (cred.password === '')
      throw invalidArgument('image_pull_password_required', `${field}.password`);
  });
  for (const cred of req.imagePullCredentials) {
    const registry = cred.registry.trim();
    const username = cred.username.trim();
    auths[registry] = {
      username,
      password: cred.password,
      auth: Buffer.from(`${username}:${cred.password}`).toString('base64'),
    };
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: { name: pullSecretName(podName), namespace, labels: ownedLabels(workloadId) },
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') },
  };
}

function translateVolumes(
  req: StartWorkloadRequest,
  podLabels: Record<string, string>,
): AgentWorkloadSpec['volumes'] {
  const seen = new Set<string>();
  return req.volumes.map((v, i) => {
    const field = `volumes[${i}]`;
    const name = v.name.trim();
    if (name === '') throw invalidArgument('volume_name_required', `${field}.name`);
    if (!isDnsLabel(name))
      throw invalidArgument('invalid_volume_name', `${field}.name: ${JSON.stringify(name)}`);
    if (seen.has(name)) throw invalidArgument('duplicate_volume_name', `${name} (${field}.name)`);
    seen.add(name);
    if (v.kind === VolumeKind.VOLUME_KIND_EPHEMERAL) return { name, kind: 'Ephemeral' as const };
    if (v.kind === VolumeKind.VOLUME_KIND_UNSPECIFIED)
      throw invalidArgument('volume_kind_required', `${field}.kind`);
    if (v.kind !== VolumeKind.VOLUME_KIND_NAMED) {
      throw invalidArgument('invalid_volume_kind', `${field}.kind: ${String(v.kind)}`);
    }
    const persistentName = v.persistentName.trim() || name;
    if (!isDnsLabel(persistentName)) {
      throw invalidArgument(
        'invalid_pvc_name',
        `${field}.persistent_name: ${JSON.stringify(persistentName)}`,
      );
    }
    for (const [key, value] of Object.entries(v.labels))
      checkUserLabel(key, value, 'invalid_volume_label');
    const labels = { ...withoutFixedLabels(podLabels), ...v.labels };
    const volume: AgentWorkloadSpec['volumes'][number] = {
      name,
      kind: 'Persistent',
      persistentName,
    };
    if (Object.keys(labels).length > 0) volume.labels = labels;
    const size = v.additionalProperties['size']?.trim();
    if (size) {
      if (size.length > 64 || !QUANTITY.test(size)) {
        throw invalidArgument(
          'invalid_volume_size',
          `${field}.additional_properties.size: ${JSON.stringify(size)}`,
        );
      }
      volume.size = size;
    }
    const storageClass = v.additionalProperties['storage_class']?.trim();
    if (storageClass) volume.storageClass = storageClass;
    return volume;
  });
}

interface InlinePlan {
  secret: Secret;
  files: Array<{ path: string; key: string }>;
  keys: Map<string, string>;
  paths: string[];
}

function checkInlinePath(path: string, field: string): void {
  if (
    !path.startsWith('/') ||
    path === '/' ||
    posix.normalize(path) !== path ||
    path.endsWith('/')
  ) {
    throw invalidArgument('inline_file_path_invalid', `${path} (${field})`);
  }
}

function inlineFiles(
  req: StartWorkloadRequest,
  workloadId: string,
  podName: string,
  namespace: string,
): InlinePlan | undefined {
  const paths = Object.keys(req.inlineFiles).sort();
  if (paths.length === 0) return undefined;
  const data: Record<string, string> = {};
  const files: InlinePlan['files'] = [];
  const keys = new Map<string, string>();
  let total = 0;
  paths.forEach((path, i) => {
    checkInlinePath(path, 'inline_files');
    const key = `inline-file-${i}`;
    const content = req.inlineFiles[path] ?? Buffer.alloc(0);
    total += content.length;
    data[key] = Buffer.from(content).toString('base64');
    files.push({ path, key });
    keys.set(path, key);
  });
  // They all go into one Secret, which the API server refuses beyond 1 MiB (after the
  // pull Secret may have been written): refuse them here, naming the field.
  if (total > MAX_INLINE_FILES_BYTES) {
    throw invalidArgument(
      'inline_files_too_large',
      `inline_files: ${total} bytes in total, at most ${MAX_INLINE_FILES_BYTES} (one Secret)`,
    );
  }
  return {
    secret: {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: inlineFilesSecretName(podName),
        namespace,
        labels: ownedLabels(workloadId),
      },
      data,
    },
    files,
    keys,
    paths,
  };
}

function checkInlineFilesReferenced(
  paths: string[],
  containers: Array<{ inlineFileMounts?: string[] }>,
): void {
  const used = new Set(containers.flatMap((c) => c.inlineFileMounts ?? []));
  for (const path of paths) {
    if (!used.has(path)) throw invalidArgument('inline_file_not_referenced', path);
  }
}

type TranslatedContainer = AgentWorkloadSpec['main'];

function translateContainer(
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
  if (c.mounts.length > 0) {
    container.mounts = c.mounts.map((m, i) => {
      const mountField = `${field}.mounts[${i}]`;
      const volume = m.volume.trim();
      if (volume === '')
        throw invalidArgument('volume_mount_name_required', `${mountField}.volume`);
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
      const mount: NonNullable<TranslatedContainer['mounts']>[number] = {
        volume,
        mountPath: m.mountPath,
      };
      if (m.readOnly) mount.readOnly = true;
      return mount;
    });
  }
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

function rejectRestartPolicy(c: ProtoContainerSpec, field: string): void {
  const policy = c.additionalProperties['restart_policy'];
  if (policy === 'Always') {
    throw invalidArgument(
      'restart_policy_not_allowed',
      `${field}.additional_properties.restart_policy: only init containers may be native sidecars`,
    );
  }
}

function explicitRole(c: ProtoContainerSpec, field: string): SidecarRole | undefined {
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

function sidecarRole(c: ProtoContainerSpec, name: string, field: string): SidecarRole {
  const explicit = explicitRole(c, field);
  if (explicit) return explicit;
  if (name === 'mcp' || name.startsWith('mcp-')) return 'mcp';
  if (name === 'hook' || name.startsWith('hook-')) return 'hook';
  return 'other';
}

function dnsConfig(req: StartWorkloadRequest): AgentWorkloadSpec['dns'] | undefined {
  const config = req.dnsConfig;
  if (!config || config.nameservers.length === 0) return undefined;
  const nameservers = config.nameservers.map((n) => n.trim());
  if (nameservers.length > 3)
    throw invalidArgument('invalid_dns_config', 'dns_config.nameservers: at most 3');
  nameservers.forEach((n, i) => {
    if (isIP(n) === 0)
      throw invalidArgument(
        'invalid_dns_config',
        `dns_config.nameservers[${i}]: ${JSON.stringify(n)} is not an IP address`,
      );
  });
  const searches = config.searches.map((s) => s.trim()).filter((s) => s !== '');
  searches.forEach((s, i) => {
    if (s.length > 253 || !DNS_SUBDOMAIN.test(s.replace(/\.$/, ''))) {
      throw invalidArgument(
        'invalid_dns_config',
        `dns_config.searches[${i}]: ${JSON.stringify(s)}`,
      );
    }
  });
  if (searches.length > 32)
    throw invalidArgument('invalid_dns_config', 'dns_config.searches: at most 32');
  return { nameservers, searches };
}

/** The CRD's structural limits (sizes, counts), checked before anything is created. */
function checkSchema(spec: AgentWorkloadSpec): void {
  const result = agentWorkloadSpecSchema.safeParse(spec);
  if (result.success) return;
  const issue = result.error.issues[0];
  const path = issue
    ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')
    : '';
  throw invalidArgument('invalid_workload_spec', `spec${path}: ${issue?.message ?? 'invalid'}`);
}

// ---------------------------------------------------------------------------------------
// Reading workloads back

const PHASE_TO_STATUS: Record<string, WorkloadStatus> = {
  Pending: WorkloadStatus.WORKLOAD_STATUS_STARTING,
  Starting: WorkloadStatus.WORKLOAD_STATUS_STARTING,
  Running: WorkloadStatus.WORKLOAD_STATUS_RUNNING,
  Stopping: WorkloadStatus.WORKLOAD_STATUS_STOPPED,
  Stopped: WorkloadStatus.WORKLOAD_STATUS_STOPPED,
  Failed: WorkloadStatus.WORKLOAD_STATUS_FAILED,
};

/** The contract status of a workload, and its failure when (and only when) it FAILED. */
export function workloadStatusOf(workload: AgentWorkload): {
  status: WorkloadStatus;
  failure?: WorkloadFailure;
} {
  const phase = workload.status?.phase;
  const status = phase
    ? (PHASE_TO_STATUS[phase] ?? WorkloadStatus.WORKLOAD_STATUS_STARTING)
    : WorkloadStatus.WORKLOAD_STATUS_STARTING;
  if (status !== WorkloadStatus.WORKLOAD_STATUS_FAILED) return { status };
  const details: Record<string, string> = {};
  if (workload.status?.podName) details['pod_name'] = workload.status.podName;
  return {
    status,
    failure: {
      code: workload.status?.reason ?? 'start_failed',
      message: workload.status?.message ?? '',
      details,
    },
  };
}

/** Labels of the workload's Pod; computed from the CR the same way when no Pod exists. */
export function effectiveLabels(workload: Workload, pod: Pod | undefined): Record<string, string> {
  if (pod?.metadata?.labels) return { ...pod.metadata.labels };
  const labels: Record<string, string> = {
    ...(workload.spec.labels ?? {}),
    ...ownedLabels(workloadIdOf(workload)),
  };
  if (workload.status?.runner) labels[LABELS.runner] = workload.status.runner;
  labels[LABELS.orchestratorManagedBy] = ORCHESTRATOR_MANAGED_BY_VALUE;
  return labels;
}

function timestamp(value: string | undefined): Date | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) || date.getUTCFullYear() <= 1 ? undefined : date;
}

const ROLE: Record<ContainerState['role'], ContainerRole> = {
  main: ContainerRole.CONTAINER_ROLE_MAIN,
  sidecar: ContainerRole.CONTAINER_ROLE_SIDECAR,
  init: ContainerRole.CONTAINER_ROLE_INIT,
};

export function toWorkloadContainer(state: ContainerState): WorkloadContainer {
  const base: WorkloadContainer = {
    containerId: state.containerId ?? '',
    name: state.name,
    role: ROLE[state.role],
    image: state.image,
    status: ContainerStatus.CONTAINER_STATUS_UNSPECIFIED,
    restartCount: state.restartCount,
  };
  switch (state.state) {
    case 'running':
      return {
        ...base,
        status: ContainerStatus.CONTAINER_STATUS_RUNNING,
        startedAt: timestamp(state.startedAt),
      };
    case 'terminated':
      return {
        ...base,
        status: ContainerStatus.CONTAINER_STATUS_TERMINATED,
        reason: state.reason,
        message: state.message,
        exitCode: state.exitCode,
        startedAt: timestamp(state.startedAt),
        finishedAt: timestamp(state.finishedAt),
      };
    case 'waiting':
      // A waiting state without a reason is how container-states records "no state yet".
      if (state.reason === undefined) return { ...base, containerId: '', restartCount: 0 };
      return {
        ...base,
        status: ContainerStatus.CONTAINER_STATUS_WAITING,
        reason: state.reason,
        message: state.message,
      };
  }
}

function targetMounts(spec: AgentWorkloadSpec): TargetMount[] {
  const volumes = new Map(spec.volumes.map((v) => [v.name, v]));
  const mounts: TargetMount[] = [];
  for (const m of spec.main.mounts ?? []) {
    const volume = volumes.get(m.volume);
    if (!volume) continue;
    mounts.push(
      volume.kind === 'Persistent'
        ? {
            type: 'pvc',
            source: volume.persistentName ?? volume.name,
            destination: m.mountPath,
            readOnly: m.readOnly ?? false,
          }
        : {
            type: 'emptydir',
            source: volume.name,
            destination: m.mountPath,
            readOnly: m.readOnly ?? false,
          },
    );
  }
  return mounts;
}

/** A Pod that exists and is not being deleted. */
export function livePod(pod: Pod | undefined): Pod | undefined {
  return pod && !pod.metadata?.deletionTimestamp ? pod : undefined;
}

/**
 * InspectWorkload from the caches. With a Pod, containers and state come from it (fresher
 * than the CR status the controller writes from the same Pod); without one (e.g. a
 * stopped workload), from the CR status.
 */
export function inspectResponse(workload: Workload, pod: Pod | undefined): InspectWorkloadResponse {
  const id = workloadIdOf(workload);
  const states = pod
    ? containerStatesFromPod(pod, workload.spec)
    : (workload.status?.containers ?? []);
  const main = states.find((s) => s.role === 'main');
  const phase = workload.status?.phase;
  const stateStatus = pod
    ? (pod.status?.phase ?? 'Pending').toLowerCase()
    : (phase ?? 'Pending').toLowerCase();
  const running =
    phase === 'Running' &&
    !workload.spec.stopped &&
    !workload.metadata.deletionTimestamp &&
    livePod(pod)?.status?.phase === 'Running';
  return {
    id,
    name: id,
    image: main?.image || workload.spec.main.image,
    configImage: pod?.spec?.containers[0]?.image ?? workload.spec.main.image,
    configLabels: effectiveLabels(workload, pod),
    mounts: targetMounts(workload.spec),
    stateStatus,
    stateRunning: running,
    containers: states.map(toWorkloadContainer),
  };
}
