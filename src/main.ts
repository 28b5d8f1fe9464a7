import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { createOperatorCaches, type OperatorCaches } from './caches.ts';
import { loadConfig, type OperatorConfig } from './config.ts';
import type { AuthOptions } from './grpc/auth.ts';
import { startRunnerGrpcServer } from './grpc/server.ts';
import { ensureGrpcTokenSecret } from './grpc/token-secret.ts';
import { KubeClient } from './kube/client.ts';
import { exitOnLostLease } from './kube/fence.ts';
import { restClientRequestTimer } from './observability/rest-client-metrics.ts';
import { LeaderElector } from './kube/leader-election.ts';
import { setKubeMetrics } from './kube/metrics.ts';
import { promKubeMetrics } from './observability/metrics.ts';
import { SECRETS } from './kube/resources.ts';
import { registerCacheMetrics } from './observability/cache-metrics.ts';
import { startHttpServer } from './observability/http.ts';
import { createLogger } from './observability/logging.ts';
import { startTracing, traceWorkloadLifecycle, type Tracing } from './observability/tracing.ts';
import { RunnerController, type Secret } from './runner/controller.ts';
import type { SecretCache } from './runner/operator-secrets.ts';
import { RunnerRegistry } from './runner/registry.ts';
import { isRunnerEnrolled } from './runner/runner-status.ts';
import { GatewayStateReporter } from './runner/state-reporter.ts';
import { countWorkloads, watchWorkloadCounts } from './runner/workload-counts.ts';
import { WorkloadController } from './workload/controller.ts';
import { DEFAULT_RUNNER_SETTINGS } from './workload/runner-settings.ts';
import { StaticRunnerDirectory, type RunnerDirectory } from './workload/seams.ts';

function grpcAuth(config: OperatorConfig, tokenSecret: SecretCache<Secret>): AuthOptions {
  const tls = (file: string): Buffer => readFileSync(path.join(config.GRPC_TLS_DIR ?? '', file));
  if (config.GRPC_AUTH_MODE === 'insecure') return { mode: 'insecure' };
  if (config.GRPC_AUTH_MODE === 'mtls') {
    return { mode: 'mtls', caPem: tls('ca.crt'), certPem: tls('tls.crt'), keyPem: tls('tls.key') };
  }
  const tokens = (): string[] => {
    const data = tokenSecret.get(config.OPERATOR_NAMESPACE, config.GRPC_TOKEN_SECRET)?.data?.token;
    return data ? [Buffer.from(data, 'base64').toString('utf8').trim()].filter(Boolean) : [];
  };
  return config.GRPC_TLS_DIR
    ? { mode: 'token', tokens, certPem: tls('tls.crt'), keyPem: tls('tls.key') }
    : { mode: 'token', tokens };
}

/** The controllers and what they report to, reading the operator's caches. */
function wireControllers(
  config: OperatorConfig,
  client: KubeClient,
  logger: Logger,
  caches: OperatorCaches,
  tracing: Tracing,
) {
  const runnerController = new RunnerController({
    client,
    namespace: config.OPERATOR_NAMESPACE,
    logger,
    informers: caches.runner,
    workloadCounts: (runner) => countWorkloads(caches.workload.workloads.list(), runner),
  });
  watchWorkloadCounts(caches.workload.workloads, (runner) =>
    runnerController.workloadsChanged(runner),
  );
  const namespaces = caches.workloadNamespace;
  const directory = namespaces
    ? new RunnerRegistry({ runners: caches.runners, namespaces, logger })
    : new StaticRunnerDirectory({ ...DEFAULT_RUNNER_SETTINGS, name: '' });
  const reporter = new GatewayStateReporter({ targets: runnerController, logger });
  const lifecycle = traceWorkloadLifecycle(tracing, reporter, caches.workload.workloads);
  const workloads = new WorkloadController({
    client,
    logger,
    runners: directory,
    namespace: config.WORKLOAD_NAMESPACE,
    workers: config.WORKERS,
    podAnnotationPrefixes: config.POD_ANNOTATION_PREFIXES,
    stateSink: lifecycle.sink,
    caches: caches.workload,
  });
  return { runnerController, workloads, reporter, lifecycle, directory };
}

async function startGrpc(
  config: OperatorConfig,
  client: KubeClient,
  logger: Logger,
  caches: OperatorCaches,
  runners: RunnerDirectory,
  workloads: WorkloadController,
) {
  if (config.GRPC_AUTH_MODE === 'token' && config.GRPC_TOKEN_SECRET_CREATE) {
    await ensureGrpcTokenSecret(
      client.resource<Secret>(SECRETS),
      config.OPERATOR_NAMESPACE,
      config.GRPC_TOKEN_SECRET,
      logger,
    );
  }
  return startRunnerGrpcServer({
    host: config.GRPC_HOST,
    port: config.GRPC_PORT,
    kube: client,
    caches: caches.shim,
    workloadNamespace: config.WORKLOAD_NAMESPACE,
    runners,
    auth: grpcAuth(config, caches.operatorSecrets),
    ready: () => caches.shim.hasSynced() && caches.operatorSecrets.hasSynced(),
    // The controller shares this process: it need not wait for the watch to bring a new workload.
    onWorkloadCreated: (workload) => workloads.handOff(workload),
    logger,
    maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES,
    limits: {
      exec: { total: config.EXEC_MAX_SESSIONS, perWorkload: config.EXEC_MAX_SESSIONS_PER_WORKLOAD },
      putArchive: {
        total: config.PUT_ARCHIVE_MAX_CONCURRENT,
        perWorkload: config.PUT_ARCHIVE_MAX_CONCURRENT_PER_WORKLOAD,
      },
      maxArchiveBytes: config.PUT_ARCHIVE_MAX_BYTES ?? config.GRPC_MAX_MESSAGE_BYTES,
    },
  });
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.LOG_LEVEL);
  setKubeMetrics(promKubeMetrics);
  const client = await KubeClient.connect(config.KUBECONFIG, {
    qps: config.KUBE_API_QPS,
    burst: config.KUBE_API_BURST,
    observeRequest: restClientRequestTimer,
  });
  const operatorNs = config.OPERATOR_NAMESPACE;
  const workloadNs = config.WORKLOAD_NAMESPACE;
  const identity = config.POD_NAME ?? `${os.hostname()}-${process.pid}`;
  const tracing = await tracingOf(config, identity, logger);

  const operatorCaches = cachesOf(config, client, logger);
  const { runnerController, workloads, reporter, lifecycle, directory } = wireControllers(
    config,
    client,
    logger,
    operatorCaches,
    tracing,
  );
  operatorCaches.start();
  const synced = operatorCaches.waitForSync();

  const reconcilers = reconcilersOf(synced, workloads, runnerController, lifecycle);
  const startReconciling = reconcilers.start;
  const stopReconciling = reconcilers.stop;

  let shuttingDown = false;
  const elector = config.LEADER_ELECTION
    ? leaderElector(config, client, logger, identity, startReconciling, () =>
        // Lost (not given up on shutdown): stop all work and exit non-zero, as controller-runtime does.
        shuttingDown
          ? stopReconciling()
          : exitOnLostLease({ fence: client.fence, stopWork: stopReconciling, logger }),
      )
    : undefined;

  const http = await startHttpServer({
    host: config.HTTP_HOST,
    port: config.HTTP_PORT,
    logger,
    ready: () => readiness(operatorCaches, elector, reconcilers.running),
  });

  const grpc = await startGrpc(config, client, logger, operatorCaches, directory, workloads);
  logger.info(
    { grpcPort: grpc.port, httpPort: http.port, operatorNs, workloadNs, identity },
    'k8s-runner started',
  );

  // Only a replica whose caches are synced campaigns: the leader starts reconciling at once.
  if (elector) void synced.then(() => !shuttingDown && elector.start());
  else await startReconciling();

  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down');
    await elector?.stop();
    await stopReconciling();
    await Promise.all([grpc.stop(), http.close(), reporter.stop()]);
    await operatorCaches.stop();
    client.close();
    await tracing.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  logUnhandledRejections(logger);
}

function logUnhandledRejections(logger: Logger): void {
  process.on('unhandledRejection', (reason) => {
    logger.error(
      { err: reason instanceof Error ? reason.message : String(reason) },
      'unhandled rejection',
    );
  });
}

/** Every informer the process reads, with its transform and indexes (src/caches.ts), and their metrics. */
function cachesOf(config: OperatorConfig, client: KubeClient, logger: Logger): OperatorCaches {
  const caches = createOperatorCaches(client, logger, {
    operator: config.OPERATOR_NAMESPACE,
    workload: config.WORKLOAD_NAMESPACE,
    grpcTokenSecret: config.GRPC_AUTH_MODE === 'token' ? config.GRPC_TOKEN_SECRET : undefined,
    standalone: config.STANDALONE,
  });
  registerCacheMetrics({
    workloads: caches.workload.workloads,
    runners: { cache: caches.runners, enrolled: isRunnerEnrolled },
  });
  return caches;
}

/** Reconciling starts (on leading, once the caches synced) and stops together. */
function reconcilersOf(
  synced: Promise<void>,
  workloads: WorkloadController,
  runnerController: RunnerController,
  lifecycle: { endAll(reason: string): void },
) {
  const state = {
    running: false,
    start: async (): Promise<void> => {
      await synced;
      workloads.start();
      await runnerController.start();
      state.running = true;
    },
    stop: async (): Promise<void> => {
      state.running = false;
      await Promise.all([workloads.stop(), runnerController.stop()]);
      lifecycle.endAll('reconciling stopped');
    },
  };
  return state;
}

function tracingOf(config: OperatorConfig, identity: string, logger: Logger): Promise<Tracing> {
  return startTracing({
    endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: config.OTEL_SERVICE_NAME,
    instanceId: identity,
    scheduledDelayMs: config.OTEL_BSP_SCHEDULE_DELAY,
    logger,
  });
}

/** /readyz: caches synced, and a leader (or a replica without election) reconciling. */
function readiness(
  caches: OperatorCaches,
  elector: LeaderElector | undefined,
  reconciling: boolean,
): { ok: boolean; reason: string } {
  if (!caches.hasSynced()) return { ok: false, reason: 'caches not synced' };
  const leading = elector ? elector.isLeader : true;
  if (leading && !reconciling) return { ok: false, reason: 'controllers not running' };
  return { ok: true, reason: 'ok' };
}

function leaderElector(
  config: OperatorConfig,
  client: KubeClient,
  logger: Logger,
  identity: string,
  onStartedLeading: () => Promise<void>,
  onStoppedLeading: () => Promise<void>,
): LeaderElector {
  return new LeaderElector({
    client,
    namespace: config.OPERATOR_NAMESPACE,
    name: config.LEADER_ELECTION_ID,
    identity,
    logger,
    leaseDurationMs: config.LEADER_ELECTION_LEASE_DURATION_SECONDS * 1000,
    renewDeadlineMs: config.LEADER_ELECTION_RENEW_DEADLINE_SECONDS * 1000,
    retryPeriodMs: config.LEADER_ELECTION_RETRY_PERIOD_SECONDS * 1000,
    onStartedLeading,
    onStoppedLeading,
    fence: client.fence,
  });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `k8s-runner failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
