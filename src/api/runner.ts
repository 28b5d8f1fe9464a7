import { z } from 'zod';
import {
  conditionSchema,
  dnsLabel,
  dnsSubdomain,
  labelMap,
  localObjectReference,
  secretKeyReference,
  withCel,
  type ObjectMeta,
} from './common.ts';
import { labelSelectorSchema } from './label-selector.ts';
import { LINUX_CAPABILITIES } from './linux-capabilities.ts';

export const RUNNER_KIND = 'Runner';
export const RUNNER_PLURAL = 'runners';

const quantity = z
  .string()
  .max(64)
  .regex(/^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/);

export const computeResourcesSchema = z.object({
  requests: z.object({ cpu: quantity.optional(), memory: quantity.optional() }).optional(),
  limits: z.object({ cpu: quantity.optional(), memory: quantity.optional() }).optional(),
});

export const flavorSchema = z.object({
  name: dnsLabel('Flavor name, as workloads name it in spec.flavor.'),
  resources: computeResourcesSchema.default({}),
  default: z.boolean().default(false),
  deprecated: z.boolean().default(false),
});

export const storageClassEntrySchema = z.object({
  name: dnsLabel('Catalog entry name, as workloads name it in volumes[].storageClass.'),
  storageClassName: z
    .string()
    .max(253)
    .optional()
    .meta({ description: 'Kubernetes StorageClass; absent or empty means the cluster default.' }),
  default: z.boolean().default(false),
  deprecated: z.boolean().default(false),
});

const caSecretReference = z
  .object({
    name: dnsSubdomain('Name of the Secret.'),
    key: z.string().min(1).max(253).default('ca.crt').meta({ description: 'Key in the Secret.' }),
  })
  .meta({ description: 'A key of a Secret in the same namespace holding a PEM CA bundle.' });

export const DOCKER_IMPLEMENTATIONS = ['rootless', 'privileged', 'kata-qemu', 'kata-fc'] as const;
export type DockerImplementation = (typeof DOCKER_IMPLEMENTATIONS)[number];

export const tolerationSchema = z.object({
  key: z.string().max(317).optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().max(63).optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().int().optional(),
});

export const healthThresholdsSchema = z.object({
  startGraceSeconds: z.number().int().min(1).max(86400).default(60),
  initRetryThreshold: z.number().int().min(1).max(1000).default(3),
  crashloopThreshold: z.number().int().min(1).max(1000).default(3),
  runtimeLostGraceSeconds: z.number().int().min(0).max(86400).default(30),
});
export type HealthThresholds = z.output<typeof healthThresholdsSchema>;
export const DEFAULT_HEALTH: HealthThresholds = healthThresholdsSchema.parse({});

const capabilityGrant = (role: string) =>
  z
    .array(z.enum(LINUX_CAPABILITIES))
    .max(64)
    .default([])
    .meta({ description: `Linux capabilities a ${role} container may add.` });

export const workloadSecuritySchema = z
  .object({
    allowRoot: z.boolean().default(false).meta({
      description:
        'Workload containers may run as root (uid 0); false sets runAsNonRoot on every workload container.',
    }),
    capabilities: z
      .object({
        main: capabilityGrant('main'),
        init: capabilityGrant('init'),
        mcp: capabilityGrant('mcp sidecar'),
        hook: capabilityGrant('hook sidecar'),
        ziti: capabilityGrant('ziti sidecar'),
        other: capabilityGrant('other sidecar'),
      })
      .default({ main: [], init: [], mcp: [], hook: [], ziti: [], other: [] })
      .meta({
        description:
          'Linux capabilities each container role may add (linuxCapabilities); every other capability is dropped.',
      }),
  })
  .meta({ description: 'What workload containers may do beyond Pod Security "restricted".' });
export type WorkloadSecurity = z.output<typeof workloadSecuritySchema>;
export const DEFAULT_WORKLOAD_SECURITY: WorkloadSecurity = workloadSecuritySchema.parse({});

export const acceptedNamespacesSchema = z
  .object({
    names: z
      .array(dnsLabel('A namespace name.'))
      .max(64)
      .default([])
      .meta({ description: 'Namespaces whose AgentWorkloads this Runner accepts.' }),
    selector: labelSelectorSchema('Namespace', 'namespaces').optional().meta({
      description:
        'Namespaces whose labels match (e.g. agyn.io/organization-id, which only cluster admins can set) are accepted too.',
    }),
  })
  .meta({
    description:
      'Namespaces besides workloadNamespace whose AgentWorkloads may be placed on this Runner; a workload of any other namespace never is.',
  });
export type AcceptedNamespaces = z.output<typeof acceptedNamespacesSchema>;

export const runnerSpecSchema = withCel(
  z.object({
    gateway: z.object({
      url: z
        .string()
        .min(1)
        .max(2048)
        .regex(/^(https?|grpcs?):\/\/[^\s/]+.*$/)
        .meta({ description: 'Platform gateway URL; https/grpcs use TLS.' }),
      caSecretRef: caSecretReference
        .optional()
        .meta({ description: 'CA bundle (key default ca.crt) to verify the gateway.' }),
      insecure: z.boolean().optional().meta({
        description:
          'Allow an http:// or grpc:// gateway: the service token then travels in plain text.',
      }),
    }),
    serviceToken: z.object({ secretRef: secretKeyReference }),
    workloadNamespace: dnsLabel(
      'Namespace where gRPC-created workloads go; its AgentWorkloads are always accepted.',
    ),
    acceptedNamespaces: acceptedNamespacesSchema.optional(),
    pullSecrets: z.array(localObjectReference).max(32).default([]),
    storage: z
      .object({
        defaultClass: z.string().max(253).optional(),
        defaultSize: quantity.default('10Gi'),
      })
      .default({ defaultSize: '10Gi' }),
    capabilities: z.array(z.string().min(1).max(63)).max(16).default([]),
    organizationId: z
      .string()
      .max(253)
      .optional()
      .meta({ description: 'Organization this runner serves; absent means cluster scope.' }),
    labels: labelMap('Placement labels, matched by workloads runnerSelector.').default({}),
    catalog: z
      .object({
        flavors: z.array(flavorSchema).max(64).default([]),
        storageClasses: z.array(storageClassEntrySchema).max(64).default([]),
      })
      .default({ flavors: [], storageClasses: [] }),
    capabilityImplementations: z
      .object({ docker: z.enum(DOCKER_IMPLEMENTATIONS).optional() })
      .default({}),
    scheduling: z
      .object({
        nodeSelector: z.record(z.string().max(317), z.string().max(63)).optional(),
        tolerations: z.array(tolerationSchema).max(32).optional(),
      })
      .default({}),
    health: healthThresholdsSchema.default(DEFAULT_HEALTH),
    workloadSecurity: workloadSecuritySchema.default(DEFAULT_WORKLOAD_SECURITY),
  }),
  [
    {
      rule: "!self.capabilities.exists(c, c == 'docker') || has(self.capabilityImplementations.docker)",
      message: 'the docker capability needs capabilityImplementations.docker',
      fieldPath: '.capabilityImplementations',
      reason: 'FieldValueRequired',
    },
    {
      rule: 'self.catalog.flavors.filter(f, f.default).size() <= 1',
      message: 'at most one default flavor',
      fieldPath: '.catalog.flavors',
    },
  ],
);

export const runnerStatusSchema = z.object({
  observedGeneration: z.number().int().optional(),
  conditions: z.array(conditionSchema).optional(),
  runnerId: z.string().optional(),
  identityId: z.string().optional(),
  serviceName: z.string().optional(),
  identitySecretRef: z.object({ name: z.string() }).optional(),
  enrolledAt: z.string().optional(),
  catalogReportedAt: z.string().optional(),
  scope: z.string().optional(),
  workloads: z
    .object({ total: z.number().int(), running: z.number().int(), failed: z.number().int() })
    .optional(),
});

export type RunnerSpec = z.output<typeof runnerSpecSchema>;
export type RunnerSpecInput = z.input<typeof runnerSpecSchema>;
export type RunnerStatus = z.output<typeof runnerStatusSchema>;
export type Flavor = z.output<typeof flavorSchema>;

export interface Runner {
  apiVersion: 'agyn.io/v1alpha1';
  kind: 'Runner';
  metadata: ObjectMeta;
  spec: RunnerSpec;
  status?: RunnerStatus;
}
