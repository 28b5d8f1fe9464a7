import { z } from 'zod';
import {
  conditionSchema,
  dnsLabel,
  labelMap,
  localObjectReference,
  withCel,
  type ObjectMeta,
} from './common.ts';
import { keyedByName, SPEC_RULES, type Volume } from './spec-rules.ts';
import { selectorRequirementSchema } from './label-selector.ts';
import { LINUX_CAPABILITIES } from './linux-capabilities.ts';

export const AGENT_WORKLOAD_KIND = 'AgentWorkload';
export const AGENT_WORKLOAD_PLURAL = 'agentworkloads';

const MAX_CONTAINERS = 16;
const MAX_VOLUMES = 32;
const MAX_MOUNTS = 32;
const MAX_ENV = 256;
const MAX_ARGS = 256;
const MAX_INLINE_FILES = 64;

const absolutePath = z
  .string()
  .min(1)
  .max(4096)
  .regex(/^\/.*/)
  .meta({ description: 'An absolute path.' });

/**
 * Where an inline file appears in a container: absolute and normalized, so no `.` or `..`
 * segment (a path cannot climb out of where it says), no empty segment, no trailing slash.
 * The gRPC shim applies the same rule (src/grpc/translate.ts).
 */
const inlineFilePath = z
  .string()
  .min(1)
  .max(4096)
  .regex(/^(\/(?:[^/]*[^/.][^/]*|\.{3,}))+$/)
  .meta({ description: 'An absolute, normalized path (no "." or ".." segments).' });

export const envVarSchema = z.object({
  name: z.string().min(1).max(1024),
  value: z.string().max(131072).default(''),
});

export const volumeMountSchema = z.object({
  volume: dnsLabel('Name of a volume declared in spec.volumes.'),
  mountPath: absolutePath,
  readOnly: z.boolean().optional(),
});

const containerFields = {
  name: dnsLabel('Container name, unique across main, sidecars and init containers.'),
  image: z.string().min(1).max(1024).meta({ description: 'Container image reference.' }),
  command: z
    .array(z.string().max(65536))
    .max(MAX_ARGS)
    .optional()
    .meta({ description: 'Entrypoint (the Kubernetes container command).' }),
  args: z
    .array(z.string().max(65536))
    .max(MAX_ARGS)
    .optional()
    .meta({ description: 'Arguments (the Kubernetes container args).' }),
  env: z.array(envVarSchema).max(MAX_ENV).optional(),
  workingDir: z.string().max(4096).optional(),
  mounts: z.array(volumeMountSchema).max(MAX_MOUNTS).optional(),
  linuxCapabilities: z.array(z.enum(LINUX_CAPABILITIES)).max(64).optional().meta({
    description:
      "Linux capabilities to add, e.g. NET_ADMIN; each must be granted to the container's role by the Runner (spec.workloadSecurity).",
  }),
  inlineFileMounts: z.array(inlineFilePath).max(MAX_INLINE_FILES).optional().meta({
    description: 'Paths from spec.inlineFiles.files mounted read-only into this container.',
  }),
};

export const containerSpecSchema = z.object(containerFields);

export const SIDECAR_ROLES = ['mcp', 'hook', 'ziti', 'other'] as const;
export type SidecarRole = (typeof SIDECAR_ROLES)[number];

export const sidecarSpecSchema = z.object({
  ...containerFields,
  role: z
    .enum(SIDECAR_ROLES)
    .default('other')
    .meta({ description: 'mcp, hook, ziti (started first, as a native sidecar) or other.' }),
});

export const initContainerSpecSchema = z.object({
  ...containerFields,
  restartPolicy: z.enum(['Always']).optional().meta({
    description: 'Always makes this init container a native sidecar (reported as a sidecar).',
  }),
});

export const volumeSpecSchema = withCel(
  z.object({
    name: dnsLabel('Volume name, referenced by container mounts.'),
    kind: z.enum(['Ephemeral', 'Persistent']).meta({
      description:
        'Ephemeral is an emptyDir; Persistent is a PersistentVolumeClaim named persistentName.',
    }),
    persistentName: dnsLabel(
      'Name of the PersistentVolumeClaim (adopted when it exists).',
    ).optional(),
    size: z
      .string()
      .max(64)
      .regex(/^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/)
      .optional()
      .meta({ description: 'Requested size of a new PVC (default: the runner default, 10Gi).' }),
    storageClass: z
      .string()
      .max(253)
      .optional()
      .meta({ description: "Name of a storage class entry of the runner's catalog." }),
    labels: labelMap('Extra labels for a PVC the operator creates.').optional(),
  }),
  [
    {
      rule: "self.kind != 'Persistent' || has(self.persistentName)",
      message: 'a Persistent volume needs persistentName',
      fieldPath: '.persistentName',
      reason: 'FieldValueRequired',
      holds: (v: Volume) => v.kind !== 'Persistent' || v.persistentName !== undefined,
    },
    {
      rule: "self.kind == 'Persistent' || (!has(self.persistentName) && !has(self.size) && !has(self.storageClass))",
      message: 'persistentName, size and storageClass apply only to Persistent volumes',
      reason: 'FieldValueForbidden',
      holds: (v: Volume) =>
        v.kind === 'Persistent' ||
        (v.persistentName === undefined && v.size === undefined && v.storageClass === undefined),
    },
  ],
);

export const inlineFilesSchema = z.object({
  secretRef: localObjectReference,
  files: z
    .array(
      z.object({
        path: inlineFilePath,
        key: z
          .string()
          .min(1)
          .max(253)
          .regex(/^[-._a-zA-Z0-9]+$/),
      }),
    )
    .min(1)
    .max(MAX_INLINE_FILES),
});

/** A standard LabelSelector over Runner labels; `labels` is the deprecated spelling of matchLabels. */
const runnerSelectorSchema = z
  .object({
    matchLabels: labelMap('Labels every candidate Runner must carry.').optional(),
    matchExpressions: z.array(selectorRequirementSchema('Runner')).max(16).optional().meta({
      description: 'Requirements every candidate Runner must meet (all of them).',
    }),
    labels: labelMap(
      'Deprecated: use matchLabels. Still accepted until the next API version; merged into matchLabels.',
    ).optional(),
  })
  .meta({
    description:
      'Chooses among the Runners by their spec.labels (a standard LabelSelector: matchLabels, matchExpressions).',
  });

export const agentWorkloadSpecSchema = withCel(
  z.object({
    workloadId: z
      .string()
      .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
      .optional()
      .meta({ description: 'Workload id (lowercase UUID). Defaults to metadata.uid.' }),
    organizationId: z.string().max(253).optional().meta({
      description: 'Organization that owns the workload; limits placement to its runners.',
    }),
    main: containerSpecSchema.meta({ description: 'The runtime (main) container.' }),
    sidecars: keyedByName(z.array(sidecarSpecSchema).max(MAX_CONTAINERS), 'container'),
    initContainers: keyedByName(z.array(initContainerSpecSchema).max(MAX_CONTAINERS), 'container'),
    volumes: keyedByName(z.array(volumeSpecSchema).max(MAX_VOLUMES), 'volume'),
    inlineFiles: inlineFilesSchema.optional().meta({
      description: 'Small files from a Secret, mounted per container through inlineFileMounts.',
    }),
    imagePullSecretRef: localObjectReference.optional(),
    labels: labelMap('Labels added to the Pod.').optional(),
    dns: z
      .object({
        nameservers: z.array(z.string().max(64)).max(3).default([]),
        searches: z.array(z.string().max(253)).max(32).default([]),
      })
      .optional(),
    capabilities: z
      .array(z.string().min(1).max(63))
      .max(16)
      .default([])
      .meta({ description: 'Runner capabilities this workload needs (docker, gpu, ...).' }),
    flavor: z
      .string()
      .max(253)
      .optional()
      .meta({ description: "A flavor of the runner's catalog." }),
    runnerRef: localObjectReference
      .optional()
      .meta({ description: "A Runner in the operator's namespace; skips placement." }),
    runnerSelector: runnerSelectorSchema.optional(),
    stopped: z
      .boolean()
      .default(false)
      .meta({ description: 'true deletes the Pod and keeps the volumes.' }),
    restartPolicy: z.enum(['Never', 'OnFailure', 'Always']).default('Never').meta({
      description: 'Pod restart policy; Never (the default) leaves restarts to the orchestrator.',
    }),
    deleteVolumesWithWorkload: z
      .boolean()
      .default(false)
      .meta({ description: 'Delete the PVCs this workload created when it is deleted.' }),
  }),
  SPEC_RULES,
);

export const WORKLOAD_PHASES = [
  'Pending',
  'Starting',
  'Running',
  'Stopping',
  'Stopped',
  'Failed',
] as const;
export type WorkloadPhase = (typeof WORKLOAD_PHASES)[number];

export const FAILURE_REASONS = [
  'start_failed',
  'image_pull_failed',
  'config_invalid',
  'crashloop',
  'runtime_lost',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export const containerStatusSchema = z.object({
  name: z.string(),
  role: z.enum(['main', 'sidecar', 'init']),
  sidecarRole: z.enum(SIDECAR_ROLES).optional(),
  image: z.string(),
  state: z.enum(['waiting', 'running', 'terminated']),
  reason: z.string().optional(),
  message: z.string().optional(),
  exitCode: z.number().int().optional(),
  restartCount: z.number().int(),
  containerId: z.string().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
});
export type ContainerState = z.infer<typeof containerStatusSchema>;

export const agentWorkloadStatusSchema = z.object({
  observedGeneration: z.number().int().optional(),
  workloadId: z.string().optional(),
  phase: z.enum(WORKLOAD_PHASES).optional(),
  reason: z.enum(FAILURE_REASONS).optional(),
  message: z.string().optional(),
  runner: z.string().optional(),
  podName: z.string().optional(),
  startTime: z.string().optional(),
  lastActivityTime: z.string().optional(),
  containers: z.array(containerStatusSchema).optional(),
  conditions: z.array(conditionSchema).optional(),
});

export type AgentWorkloadSpec = z.output<typeof agentWorkloadSpecSchema>;
export type AgentWorkloadSpecInput = z.input<typeof agentWorkloadSpecSchema>;
export type ContainerSpec = z.output<typeof containerSpecSchema>;
export type SidecarSpec = z.output<typeof sidecarSpecSchema>;
export type InitContainerSpec = z.output<typeof initContainerSpecSchema>;
export type VolumeSpec = z.output<typeof volumeSpecSchema>;
export type AgentWorkloadStatus = z.output<typeof agentWorkloadStatusSchema>;

export interface AgentWorkload {
  apiVersion: 'agyn.io/v1alpha1';
  kind: 'AgentWorkload';
  metadata: ObjectMeta;
  spec: AgentWorkloadSpec;
  status?: AgentWorkloadStatus;
}
