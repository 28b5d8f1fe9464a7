import {
  credentials,
  Metadata,
  status as GrpcStatus,
  type CallOptions,
  type ChannelCredentials,
  type ServiceError,
} from '@grpc/grpc-js';
import type { Flavor } from '../api/runner.ts';
import { RunnersGatewayClient } from '../gen/agynio/api/gateway/v1/runners.ts';
import {
  ContainerRole,
  ContainerStatus,
  WorkloadStatus,
  type Container,
  type EnrollRunnerResponse,
  type FlavorEntry,
  type ReportRunnerCatalogResponse,
  type ReportWorkloadStateResponse,
} from '../gen/agynio/api/runners/v1/runners.ts';

export const DEFAULT_GATEWAY_TIMEOUT_MS = 10_000;
/** The longest the channel waits between connection attempts to an unreachable gateway. */
const RECONNECT_BACKOFF_MAX_MS = 5_000;

export interface GatewayClientOptions {
  /** https:// or grpcs:// dial with TLS; http:// or grpc:// dial in plaintext. */
  url: string;
  /** CA bundle to verify the gateway; without it the system roots are used. */
  caPem?: Buffer;
  /** Deadline of every call. */
  timeoutMs?: number;
}

export type GatewayMethod = 'EnrollRunner' | 'ReportRunnerCatalog' | 'ReportWorkloadState';
export type GrpcStatusName = keyof typeof GrpcStatus;
export type GatewayErrorCode = GrpcStatusName | 'MALFORMED_RESPONSE';

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  /** Numeric gRPC status; undefined for MALFORMED_RESPONSE. */
  readonly grpcCode: GrpcStatus | undefined;

  constructor(
    readonly method: GatewayMethod,
    readonly code: GatewayErrorCode,
    readonly details: string,
  ) {
    super(`${method}: ${code}${details === '' ? '' : `: ${details}`}`);
    this.grpcCode = code === 'MALFORMED_RESPONSE' ? undefined : GrpcStatus[code];
  }
}

export interface EnrollResult {
  identityJson: Buffer;
  serviceName: string;
  identityId: string;
}

export interface CatalogStorageClass {
  name: string;
  default: boolean;
  deprecated: boolean;
}

export interface CatalogReport {
  runnerId: string;
  serviceToken: string;
  flavors: readonly Flavor[];
  storageClasses: readonly CatalogStorageClass[];
  capabilities: readonly string[];
}

export interface CatalogReportResult {
  flavorCount: number;
  storageClassCount: number;
  capabilityCount: number;
}

export const REPORTED_WORKLOAD_STATUSES = [
  'STARTING',
  'RUNNING',
  'STOPPING',
  'STOPPED',
  'FAILED',
] as const;
export type ReportedWorkloadStatus = (typeof REPORTED_WORKLOAD_STATUSES)[number];
export type ReportedContainerRole = 'MAIN' | 'SIDECAR' | 'INIT';
export type ReportedContainerStatus = 'RUNNING' | 'TERMINATED' | 'WAITING';

export interface ReportedContainer {
  containerId: string;
  name: string;
  role: ReportedContainerRole;
  image: string;
  status: ReportedContainerStatus;
  reason?: string;
  message?: string;
  exitCode?: number;
  restartCount: number;
  startedAt?: Date;
  finishedAt?: Date;
}

export interface WorkloadStateReport {
  runnerId: string;
  serviceToken: string;
  workloadId: string;
  status: ReportedWorkloadStatus;
  containers: readonly ReportedContainer[];
  observedAt: Date;
}

// runner.v1 and runners.v1 share these names but not their numbers: always map by name.
const WORKLOAD_STATUS_BY_NAME: Readonly<Record<ReportedWorkloadStatus, WorkloadStatus>> = {
  STARTING: WorkloadStatus.WORKLOAD_STATUS_STARTING,
  RUNNING: WorkloadStatus.WORKLOAD_STATUS_RUNNING,
  STOPPING: WorkloadStatus.WORKLOAD_STATUS_STOPPING,
  STOPPED: WorkloadStatus.WORKLOAD_STATUS_STOPPED,
  FAILED: WorkloadStatus.WORKLOAD_STATUS_FAILED,
};

const CONTAINER_ROLE_BY_NAME: Readonly<Record<ReportedContainerRole, ContainerRole>> = {
  MAIN: ContainerRole.CONTAINER_ROLE_MAIN,
  SIDECAR: ContainerRole.CONTAINER_ROLE_SIDECAR,
  INIT: ContainerRole.CONTAINER_ROLE_INIT,
};

const CONTAINER_STATUS_BY_NAME: Readonly<Record<ReportedContainerStatus, ContainerStatus>> = {
  RUNNING: ContainerStatus.CONTAINER_STATUS_RUNNING,
  TERMINATED: ContainerStatus.CONTAINER_STATUS_TERMINATED,
  WAITING: ContainerStatus.CONTAINER_STATUS_WAITING,
};

function byName<K extends string, V>(table: Readonly<Record<K, V>>, name: K, what: string): V {
  if (!Object.hasOwn(table, name)) throw new TypeError(`unknown ${what} ${JSON.stringify(name)}`);
  return table[name];
}

export interface GatewayTarget {
  address: string;
  tls: boolean;
}

export function parseGatewayUrl(url: string): GatewayTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`gateway url is not a URL: ${JSON.stringify(url)}`);
  }
  const scheme = parsed.protocol.slice(0, -1);
  let tls: boolean;
  if (scheme === 'https' || scheme === 'grpcs') tls = true;
  else if (scheme === 'http' || scheme === 'grpc') tls = false;
  else throw new TypeError(`gateway url scheme must be https, grpcs, http or grpc, got ${scheme}`);
  if (parsed.hostname === '') throw new TypeError('gateway url has no host');
  if (parsed.pathname !== '' && parsed.pathname !== '/') {
    throw new TypeError('gateway url must not have a path: gRPC cannot route under a prefix');
  }
  const port = parsed.port === '' ? (tls ? 443 : 80) : Number(parsed.port);
  return { address: `${parsed.hostname}:${port}`, tls };
}

function redact(text: string, secret: string): string {
  return secret === '' ? text : text.split(secret).join('[redacted]');
}

function toGatewayError(method: GatewayMethod, err: ServiceError, token: string): GatewayError {
  const name = GrpcStatus[err.code] as GrpcStatusName | undefined;
  return new GatewayError(method, name ?? 'UNKNOWN', redact(err.details ?? '', token));
}

function toFlavorEntry(flavor: Flavor): FlavorEntry {
  const { requests, limits } = flavor.resources;
  return {
    name: flavor.name,
    resources: {
      requestsCpu: requests?.cpu ?? '',
      requestsMemory: requests?.memory ?? '',
      limitsCpu: limits?.cpu ?? '',
      limitsMemory: limits?.memory ?? '',
    },
    default: flavor.default,
    deprecated: flavor.deprecated,
  };
}

function toContainer(c: ReportedContainer): Container {
  return {
    containerId: c.containerId,
    name: c.name,
    role: byName(CONTAINER_ROLE_BY_NAME, c.role, 'container role'),
    image: c.image,
    status: byName(CONTAINER_STATUS_BY_NAME, c.status, 'container status'),
    reason: c.reason,
    message: c.message,
    exitCode: c.exitCode,
    restartCount: c.restartCount,
    startedAt: c.startedAt,
    finishedAt: c.finishedAt,
  };
}

type Callback<Res> = (err: ServiceError | null, res: Res) => void;

/** The runner's side of agynio.api.gateway.v1.RunnersGateway. */
export class GatewayClient {
  private readonly client: RunnersGatewayClient;
  private readonly timeoutMs: number;

  constructor(options: GatewayClientOptions) {
    const target = parseGatewayUrl(options.url);
    const creds: ChannelCredentials = target.tls
      ? credentials.createSsl(options.caPem ?? null)
      : credentials.createInsecure();
    this.timeoutMs = options.timeoutMs ?? DEFAULT_GATEWAY_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new TypeError('timeoutMs must be positive');
    // The callers retry with their own capped backoff (state reports: 60 s). grpc-js would
    // otherwise keep its own reconnect backoff (up to 120 s), failing calls fast for that
    // long after the gateway is back.
    this.client = new RunnersGatewayClient(target.address, creds, {
      'grpc.initial_reconnect_backoff_ms': 1_000,
      'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MAX_MS,
    });
  }

  async enroll(serviceToken: string, signal?: AbortSignal): Promise<EnrollResult> {
    const res = await this.call<EnrollRunnerResponse>(
      'EnrollRunner',
      serviceToken,
      (options, cb) => this.client.enrollRunner({ serviceToken }, new Metadata(), options, cb),
      signal,
    );
    if (res.identityJson.length === 0 || res.identityId === '') {
      const missing = res.identityJson.length === 0 ? 'identity_json' : 'identity_id';
      throw new GatewayError('EnrollRunner', 'MALFORMED_RESPONSE', `empty ${missing}`);
    }
    return {
      identityJson: res.identityJson,
      serviceName: res.serviceName,
      identityId: res.identityId,
    };
  }

  async reportCatalog(report: CatalogReport, signal?: AbortSignal): Promise<CatalogReportResult> {
    const request = {
      runnerId: report.runnerId,
      serviceToken: report.serviceToken,
      flavors: report.flavors.map(toFlavorEntry),
      storageClasses: report.storageClasses.map((s) => ({
        name: s.name,
        default: s.default,
        deprecated: s.deprecated,
      })),
      capabilities: [...report.capabilities],
    };
    const res = await this.call<ReportRunnerCatalogResponse>(
      'ReportRunnerCatalog',
      report.serviceToken,
      (options, cb) => this.client.reportRunnerCatalog(request, new Metadata(), options, cb),
      signal,
    );
    return {
      flavorCount: res.flavorCount,
      storageClassCount: res.storageClassCount,
      capabilityCount: res.capabilityCount,
    };
  }

  /** Resolves to whether the platform applied the report (false: it held a newer one). */
  async reportWorkloadState(report: WorkloadStateReport): Promise<boolean> {
    const request = {
      runnerId: report.runnerId,
      serviceToken: report.serviceToken,
      workloadId: report.workloadId,
      status: byName(WORKLOAD_STATUS_BY_NAME, report.status, 'workload status'),
      containers: report.containers.map(toContainer),
      observedAt: report.observedAt,
    };
    const res = await this.call<ReportWorkloadStateResponse>(
      'ReportWorkloadState',
      report.serviceToken,
      (options, cb) => this.client.reportWorkloadState(request, new Metadata(), options, cb),
    );
    return res.applied;
  }

  close(): void {
    this.client.close();
  }

  private call<Res>(
    method: GatewayMethod,
    serviceToken: string,
    invoke: (options: Partial<CallOptions>, cb: Callback<Res>) => { cancel(): void },
    signal?: AbortSignal,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      const cancel = (): void => call.cancel();
      const call = invoke({ deadline: Date.now() + this.timeoutMs }, (err, res) => {
        signal?.removeEventListener('abort', cancel);
        if (err) reject(toGatewayError(method, err, serviceToken));
        else resolve(res);
      });
      // Aborted (the reconcile was stopped): the call ends CANCELLED.
      if (signal?.aborted) cancel();
      else signal?.addEventListener('abort', cancel, { once: true });
    });
  }
}
