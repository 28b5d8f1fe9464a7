import { isIP } from 'node:net';
import {
  agentWorkloadSpecSchema,
  type AgentWorkload,
  type AgentWorkloadSpec,
} from '../api/agentworkload.ts';
import {
  ANNOTATIONS,
  API_GROUP_VERSION,
  DNS_SUBDOMAIN,
  LABELS,
  ORCHESTRATOR_MANAGED_BY_VALUE,
  WORKLOAD_FINALIZER,
  isDnsLabel,
  labelProblem,
  workloadLabels,
} from '../api/common.ts';
import {
  DOCKER_DAEMON_CONTAINER,
  DOCKER_VOLUMES,
  INLINE_FILES_VOLUME,
} from '../workload/pod-builder.ts';
import {
  VolumeKind,
  type SidecarInstance,
  type StartWorkloadRequest,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { invalidArgument } from './errors.ts';
import {
  explicitRole,
  rejectRestartPolicy,
  sidecarRole,
  translateContainer,
  type TranslatedContainer,
} from './translate-containers.ts';
import {
  checkInlineFilesReferenced,
  inlineFiles,
  pullCredentialSecret,
  type InlinePlan,
  type Secret,
} from './translate-secrets.ts';

// StartWorkloadRequest → the AgentWorkload (and Secrets) that StartWorkload creates.

export const STOPPED_WORKLOAD_TTL_SECONDS = 3600;
export const POD_NAME_PREFIX = 'workload-';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const LABEL_PREFIX = 'label.';
const RESERVED_LABELS = new Set<string>([LABELS.managedBy, LABELS.workloadId, LABELS.runner]);

export function podNameFor(workloadId: string): string {
  return `${POD_NAME_PREFIX}${workloadId}`;
}

export interface TranslateOptions {
  namespace: string;
  /** The Runner this shim serves; workloads it creates are pinned to it. */
  runnerName?: string;
  newId: () => string;
}

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
  const containers = translateContainers(req, main, volumeNames, inline);
  if (docker) {
    if (containers.names.has(DOCKER_DAEMON_CONTAINER)) {
      throw invalidArgument('capability_container_name_conflict', DOCKER_DAEMON_CONTAINER);
    }
    if (volumeNames.has(DOCKER_VOLUMES.data)) {
      throw invalidArgument('capability_volume_name_conflict', DOCKER_VOLUMES.data);
    }
  }

  const spec: AgentWorkloadSpec = {
    workloadId,
    main: containers.main,
    sidecars: containers.sidecars,
    initContainers: containers.initContainers,
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

  const secrets = [pullSecret, inline?.secret].filter((s): s is Secret => s !== undefined);
  return {
    workloadId,
    podName,
    secrets,
    workload: workloadOf(spec, workloadId, podName, options.namespace, userLabels),
    sidecars: sidecarInstances(req, spec, podName, docker),
  };
}

function workloadOf(
  spec: AgentWorkloadSpec,
  workloadId: string,
  podName: string,
  namespace: string,
  userLabels: Record<string, string>,
): AgentWorkload {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: 'AgentWorkload',
    metadata: {
      name: podName,
      namespace,
      labels: { ...userLabels, ...workloadLabels(workloadId) },
      // In the create, so the controller need not patch it in.
      finalizers: [WORKLOAD_FINALIZER],
      // Should someone set spec.stopped on it, the stopped workload goes after an hour.
      annotations: { [ANNOTATIONS.ttlAfterStopped]: String(STOPPED_WORKLOAD_TTL_SECONDS) },
    },
    spec,
  };
}

function sidecarInstances(
  req: StartWorkloadRequest,
  spec: AgentWorkloadSpec,
  podName: string,
  docker: boolean,
): SidecarInstance[] {
  const instances: SidecarInstance[] = req.sidecars.map((_, i) => {
    const name = spec.sidecars[i]?.name ?? '';
    return { name, id: `${podName}:${name}`, status: 'starting' };
  });
  if (docker) {
    instances.push({
      name: DOCKER_DAEMON_CONTAINER,
      id: `${podName}:${DOCKER_DAEMON_CONTAINER}`,
      status: 'starting',
    });
  }
  return instances;
}

interface TranslatedContainers {
  main: TranslatedContainer;
  sidecars: AgentWorkloadSpec['sidecars'];
  initContainers: AgentWorkloadSpec['initContainers'];
  /** Container name → the field that named it. */
  names: Map<string, string>;
}

/** Main, sidecars and init containers; leading native-sidecar init containers become sidecars. */
function translateContainers(
  req: StartWorkloadRequest,
  mainSpec: NonNullable<StartWorkloadRequest['main']>,
  volumeNames: ReadonlySet<string>,
  inline: InlinePlan | undefined,
): TranslatedContainers {
  const names = new Map<string, string>();
  const claim = (name: string, field: string): void => {
    if (names.has(name)) throw invalidArgument('duplicate_container_name', `${name} (${field})`);
    names.set(name, field);
  };
  const translate = (c: NonNullable<StartWorkloadRequest['main']>, name: string, field: string) => {
    const spec = translateContainer(c, name, field, volumeNames, inline?.keys);
    claim(spec.name, `${field}.name`);
    return spec;
  };
  const main = translate(mainSpec, 'main', 'main');
  rejectRestartPolicy(mainSpec, 'main');

  const sidecars: AgentWorkloadSpec['sidecars'] = [];
  req.sidecars.forEach((c, i) => {
    const field = `sidecars[${i}]`;
    const spec = translate(c, `sidecar-${i + 1}`, field);
    rejectRestartPolicy(c, field);
    sidecars.push({ ...spec, role: sidecarRole(c, spec.name, field) });
  });

  const initContainers: AgentWorkloadSpec['initContainers'] = [];
  let ordinaryInitSeen = false;
  req.initContainers.forEach((c, i) => {
    const field = `initContainers[${i}]`;
    const spec = translate(c, `init-${i + 1}`, field);
    const nativeSidecar = c.additionalProperties['restart_policy'] === 'Always';
    if (nativeSidecar && !ordinaryInitSeen) {
      // Leading native sidecars are the AgentWorkload's ziti-role sidecars: the Pod keeps them first.
      sidecars.push({ ...spec, role: explicitRole(c, field) ?? 'ziti' });
    } else if (nativeSidecar) {
      initContainers.push({ ...spec, restartPolicy: 'Always' });
    } else {
      ordinaryInitSeen = true;
      initContainers.push(spec);
    }
  });

  if (inline) checkInlineFilesReferenced(inline.paths, [main, ...sidecars, ...initContainers]);
  return { main, sidecars, initContainers, names };
}

function resolveWorkloadId(raw: string, newId: () => string): string {
  const id = raw.trim();
  if (id === '') return newId();
  // Only the canonical lowercase spelling: the response id must equal the id sent, and
  // Pod names cannot hold uppercase letters or braces.
  if (!UUID.test(id)) throw invalidArgument('workload_id_invalid', JSON.stringify(raw));
  return id;
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
