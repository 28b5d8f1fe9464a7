import { z } from 'zod';
import { DEFAULT_LIMITS } from './grpc/limits.ts';
import { DEFAULT_BURST, DEFAULT_QPS } from './kube/client.ts';
import { DEFAULT_WORKLOAD_WORKERS } from './workload/controller.ts';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** Operator configuration from the environment (the Helm chart sets these). */
export const configSchema = z.object({
  OPERATOR_NAMESPACE: z.string().min(1).default('default'),
  /** Required, and never the operator's namespace: workloads must not reach its Secrets. */
  WORKLOAD_NAMESPACE: z.string().min(1),
  KUBECONFIG: z.string().optional(),
  GRPC_HOST: z.string().default('0.0.0.0'),
  GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(50051),
  GRPC_AUTH_MODE: z.enum(['mtls', 'token', 'insecure']).default('token'),
  GRPC_TLS_DIR: z.string().optional(),
  GRPC_TOKEN_SECRET: z.string().default('k8s-runner-grpc-token'),
  /** Token mode: create GRPC_TOKEN_SECRET with a random token when it does not exist. */
  GRPC_TOKEN_SECRET_CREATE: bool.default(false),
  GRPC_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(32 * 1024 * 1024),
  EXEC_MAX_SESSIONS: z.coerce.number().int().min(1).default(DEFAULT_LIMITS.exec.total),
  EXEC_MAX_SESSIONS_PER_WORKLOAD: z.coerce
    .number()
    .int()
    .min(1)
    .default(DEFAULT_LIMITS.exec.perWorkload),
  PUT_ARCHIVE_MAX_CONCURRENT: z.coerce
    .number()
    .int()
    .min(1)
    .default(DEFAULT_LIMITS.putArchive.total),
  PUT_ARCHIVE_MAX_CONCURRENT_PER_WORKLOAD: z.coerce
    .number()
    .int()
    .min(1)
    .default(DEFAULT_LIMITS.putArchive.perWorkload),
  /** Unset: GRPC_MAX_MESSAGE_BYTES. */
  PUT_ARCHIVE_MAX_BYTES: z.coerce.number().int().min(1024).optional(),
  HTTP_HOST: z.string().default('0.0.0.0'),
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  LEADER_ELECTION: bool.default(true),
  LEADER_ELECTION_ID: z.string().default('k8s-runner'),
  LEADER_ELECTION_LEASE_DURATION_SECONDS: z.coerce.number().positive().default(10),
  LEADER_ELECTION_RENEW_DEADLINE_SECONDS: z.coerce.number().positive().default(7),
  LEADER_ELECTION_RETRY_PERIOD_SECONDS: z.coerce.number().positive().default(2),
  POD_NAME: z.string().optional(),
  WORKERS: z.coerce.number().int().min(1).max(64).default(DEFAULT_WORKLOAD_WORKERS),
  KUBE_API_QPS: z.coerce.number().positive().default(DEFAULT_QPS),
  KUBE_API_BURST: z.coerce.number().int().min(1).default(DEFAULT_BURST),
  STANDALONE: bool.default(false),
  /** AgentWorkload annotation prefixes copied onto workload Pods (comma-separated). */
  POD_ANNOTATION_PREFIXES: z
    .string()
    .default('pod.agyn.io/')
    .transform((v) =>
      v
        .split(',')
        .map((p) => p.trim())
        .filter((p) => p !== ''),
    ),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Spans are exported over OTLP/HTTP only when this is set. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess((v) => (v === '' ? undefined : v), z.url().optional()),
  OTEL_SERVICE_NAME: z.string().min(1).default('k8s-runner'),
  OTEL_BSP_SCHEDULE_DELAY: z.coerce.number().int().min(0).default(5000),
});

export type OperatorConfig = z.output<typeof configSchema>;

const separateNamespaces = configSchema.refine(
  (c) => c.WORKLOAD_NAMESPACE !== c.OPERATOR_NAMESPACE,
  {
    path: ['WORKLOAD_NAMESPACE'],
    message:
      'must not be OPERATOR_NAMESPACE (workloads may not share a namespace with its Secrets)',
  },
);

export function loadConfig(env: NodeJS.ProcessEnv): OperatorConfig {
  const parsed = separateNamespaces.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}
