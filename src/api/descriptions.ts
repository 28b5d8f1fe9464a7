/**
 * Descriptions of the CRD schema nodes that the zod schemas leave without one, so that every
 * level reads in `kubectl explain`. Keys are paths below the root (`spec.main.env`, `[]` for
 * list items); a key may be the path's tail (`env[].name`), the longest matching tail wins.
 * `metadata` stays bare: the API server allows nothing on it.
 */
type JsonSchema = { [key: string]: unknown };

const COMMON: Record<string, string> = {
  apiVersion:
    'APIVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources',
  kind: 'Kind is a string value representing the REST resource this object represents. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds',
  status: 'Observed state, written by the operator (kstatus conventions).',
  'status.observedGeneration': 'The metadata.generation the status describes.',
  'status.conditions':
    'Ready, Reconciling and Stalled (kstatus) and the kind-specific conditions, each with the generation it describes.',
  'conditions[].type': 'Condition type, e.g. Ready, Reconciling, Stalled.',
  'conditions[].status': 'True, False or Unknown.',
  'conditions[].reason': 'A CamelCase reason for the last transition.',
  'conditions[].message': 'A human-readable message about the last transition.',
  'conditions[].lastTransitionTime': 'When the status last changed.',
  'conditions[].observedGeneration': 'The metadata.generation the condition describes.',
};

export const AGENT_WORKLOAD_DESCRIPTIONS: Record<string, string> = {
  ...COMMON,
  spec: 'The workload the user (or the gRPC shim) asks for: containers, volumes, files and placement.',
  env: 'Environment variables of the container.',
  'env[].name': 'Variable name.',
  'env[].value': 'Variable value.',
  workingDir: 'Working directory of the container process.',
  mounts: 'Volumes of spec.volumes mounted into the container.',
  'mounts[].readOnly': 'Mount read-only.',
  'spec.sidecars': 'Containers that run beside main (native sidecars), keyed by name.',
  'spec.initContainers':
    'Containers that run to completion before the others start, keyed by name.',
  'spec.volumes': 'Volumes the containers mount, keyed by name.',
  'spec.inlineFiles.files': 'Files to project from the Secret.',
  'spec.inlineFiles.files[].key': 'Key of the file in the Secret.',
  'spec.dns': 'DNS settings of the Pod.',
  'spec.dns.nameservers': 'Extra DNS nameserver addresses.',
  'spec.dns.searches': 'Extra DNS search domains.',
  'status.workloadId': 'The workload id (spec.workloadId or metadata.uid).',
  'status.phase': 'Pending, Starting, Running, Stopping, Stopped or Failed.',
  'status.reason':
    'Why the workload failed: start_failed, image_pull_failed, config_invalid, crashloop or runtime_lost.',
  'status.message': 'Details of the phase or failure.',
  'status.runner': 'The Runner the workload is placed on.',
  'status.podName': 'Name of the workload Pod.',
  'status.startTime': 'When the current run started.',
  'status.lastActivityTime': 'Last activity reported through the gRPC shim.',
  'status.containers': 'State of every container of the Pod.',
  'containers[].name': 'Container name.',
  'containers[].role': 'main, sidecar or init.',
  'containers[].sidecarRole': 'The sidecar role (mcp, hook, ziti, other).',
  'containers[].image': 'Image the container runs.',
  'containers[].state': 'waiting, running or terminated.',
  'containers[].reason': 'Reason of the state.',
  'containers[].message': 'Message of the state.',
  'containers[].exitCode': 'Exit code of a terminated container.',
  'containers[].restartCount': 'Restarts of the container.',
  'containers[].containerId': 'Container runtime id.',
  'containers[].startedAt': 'When the container started.',
  'containers[].finishedAt': 'When the container terminated.',
};

export const RUNNER_DESCRIPTIONS: Record<string, string> = {
  ...COMMON,
  spec: 'The runner identity, its platform gateway and where and how its workloads run.',
  'spec.gateway': 'The platform gateway the Runner enrolls with.',
  'spec.serviceToken': 'The Secret key holding the service token used to enroll.',
  'spec.pullSecrets': 'Image pull Secrets (in the workload namespace) added to every workload Pod.',
  'spec.storage': 'Defaults of new workload volumes.',
  'spec.storage.defaultClass': 'StorageClass of new volumes; empty means the cluster default.',
  'spec.storage.defaultSize': 'Size of a new volume that asks for none.',
  'spec.capabilities': 'Capabilities offered to workloads (docker, gpu, ...).',
  'spec.catalog': 'Flavors and storage classes offered to workloads, reported to the platform.',
  'spec.catalog.flavors': 'Named resource sizes workloads choose with spec.flavor.',
  resources: 'Resources of the main container.',
  requests: 'Requested resources.',
  limits: 'Resource limits.',
  cpu: 'CPU quantity, e.g. 500m.',
  memory: 'Memory quantity, e.g. 1Gi.',
  'flavors[].default': 'The flavor of workloads that name none.',
  'flavors[].deprecated': 'Still served, no longer offered for new workloads.',
  'spec.catalog.storageClasses': 'Storage classes offered to workload volumes.',
  'storageClasses[].default': 'The class of volumes that name none.',
  'storageClasses[].deprecated': 'Still served, no longer offered for new volumes.',
  'spec.capabilityImplementations': 'How each capability is implemented.',
  'spec.capabilityImplementations.docker': 'rootless, privileged, kata-qemu or kata-fc.',
  'spec.scheduling': 'Where workload Pods are scheduled.',
  'spec.scheduling.nodeSelector': 'Node labels workload Pods require.',
  'spec.scheduling.tolerations': 'Tolerations of workload Pods.',
  'tolerations[].key': 'Taint key the toleration applies to.',
  'tolerations[].operator': 'Exists or Equal.',
  'tolerations[].value': 'Taint value for Equal.',
  'tolerations[].effect': 'Taint effect: NoSchedule, PreferNoSchedule or NoExecute.',
  'tolerations[].tolerationSeconds': 'How long a NoExecute taint is tolerated.',
  'spec.health': 'Health thresholds of its workloads.',
  'spec.health.startGraceSeconds': 'How long a workload may take to start (default 60).',
  'spec.health.initRetryThreshold':
    'Init container failures before the workload fails (default 3).',
  'spec.health.crashloopThreshold':
    'Main container restarts before the workload fails (default 3).',
  'spec.health.runtimeLostGraceSeconds':
    'How long workloads outlive a Runner that stopped being Ready (default 30).',
  'status.runnerId': 'Runner id assigned by the platform at enrollment.',
  'status.identityId': 'Identity id assigned by the platform.',
  'status.serviceName': 'Service name assigned by the platform.',
  'status.identitySecretRef': 'The Secret holding the enrolled identity.',
  'status.identitySecretRef.name': 'Name of that Secret.',
  'status.enrolledAt': 'When the Runner enrolled.',
  'status.catalogReportedAt': 'When the catalog was last reported.',
  'status.scope': 'cluster, or organization:<id>.',
  'status.workloads': 'Counts of the workloads placed on the Runner.',
  'status.workloads.total': 'All placed workloads.',
  'status.workloads.running': 'Running workloads.',
  'status.workloads.failed': 'Failed workloads.',
};

function lookup(path: string, descriptions: Record<string, string>): string | undefined {
  const parts = path.split('.');
  for (let i = 0; i < parts.length; i++) {
    const found = descriptions[parts.slice(i).join('.')];
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Fills missing descriptions below `node` (an openAPIV3Schema) from `descriptions`. */
export function describeSchema(
  node: JsonSchema,
  descriptions: Record<string, string>,
  path = '',
): void {
  if (path && !node.description) {
    const found = lookup(path, descriptions);
    if (found !== undefined) node.description = found;
  }
  for (const [key, child] of Object.entries((node.properties as Record<string, JsonSchema>) ?? {}))
    describeSchema(child, descriptions, path ? `${path}.${key}` : key);
  if (node.items && typeof node.items === 'object')
    describeSchema(node.items as JsonSchema, descriptions, `${path}[]`);
}
