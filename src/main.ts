import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Runner } from './api/runner.ts';
import { loadConfig, type OperatorConfig } from './config.ts';
import type { AuthOptions } from './grpc/auth.ts';
import { ShimCaches } from './grpc/caches.ts';
import { startRunnerGrpcServer } from './grpc/server.ts';
import { ensureGrpcTokenSecret } from './grpc/token-secret.ts';
import { KubeClient, type KubeObject } from './kube/client.ts';
import { Informer } from './kube/informer.ts';
import { exitOnLostLease } from './kube/fence.ts';
import { LeaderElector } from './kube/leader-election.ts';
import { RUNNERS, SECRETS } from './kube/resources.ts';
import { registerCacheMetrics } from './observability/cache-metrics.ts';
import { startHttpServer } from './observability/http.ts';
import { createLogger } from './observability/logging.ts';
import { startTracing, traceWorkloadLifecycle } from './observability/tracing.ts';
import { RunnerController, type Secret } from './runner/controller.ts';
import { RunnerRegistry } from './runner/registry.ts';
import { GatewayStateReporter } from './runner/state-reporter.ts';
import { countWorkloads, watchWorkloadCounts } from './runner/workload-counts.ts';
import { WorkloadController } from './workload/controller.ts';
import { DEFAULT_RUNNER_SETTINGS } from './workload/runner-settings.ts';
import { StaticRunnerDirectory } from './workload/seams.ts';

function grpcAuth(config: OperatorConfig, tokenSecret: Informer<Secret>): AuthOptions {
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

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.LOG_LEVEL);
  const client = await KubeClient.connect(config.KUBECONFIG, {
    qps: config.KUBE_API_QPS,
    burst: config.KUBE_API_BURST,
  });
  const operatorNs = config.OPERATOR_NAMESPACE;
  const workloadNs = config.WORKLOAD_NAMESPACE;
  const identity = config.POD_NAME ?? `${os.hostname()}-${process.pid}`;
  const tracing = await startTracing({
    endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: config.OTEL_SERVICE_NAME,
    instanceId: identity,
    scheduledDelayMs: config.OTEL_BSP_SCHEDULE_DELAY,
    logger,
  });

  const runnerInformer = new Informer(client.resource<Runner & KubeObject>(RUNNERS), {
    namespace: operatorNs,
    logger,
  });
  const operatorSecrets = new Informer(client.resource<Secret>(SECRETS), {
    namespace: operatorNs,
    logger,
  });
  const caches = new ShimCaches(client, workloadNs, logger);
  const runnerController = new RunnerController({
    client,
    namespace: operatorNs,
    logger,
    informers: { runners: runnerInformer, secrets: operatorSecrets },
    workloadCounts: (runner) => countWorkloads(caches.workloads.list(), runner),
  });
  watchWorkloadCounts(caches.workloads, (runner) => runnerController.workloadsChanged(runner));
  const directory = config.STANDALONE
    ? new StaticRunnerDirectory({ ...DEFAULT_RUNNER_SETTINGS, name: '' })
    : new RunnerRegistry({ runners: runnerInformer, logger });
  const reporter = new GatewayStateReporter({ targets: runnerController, logger });
  const lifecycle = traceWorkloadLifecycle(tracing, reporter, caches.workloads);
  const workloads = new WorkloadController({
    client,
    logger,
    runners: directory,
    namespace: workloadNs,
    workers: config.WORKERS,
    podAnnotationPrefixes: config.POD_ANNOTATION_PREFIXES,
    stateSink: lifecycle.sink,
    informers: { workloads: caches.workloads, pods: caches.pods, pvcs: caches.pvcs },
  });

  registerCacheMetrics({ workloads: caches.workloads, runners: runnerInformer });
  runnerInformer.start();
  operatorSecrets.start();
  caches.start();
  const synced = Promise.all([
    runnerInformer.waitForSync(),
    operatorSecrets.waitForSync(),
    workloads.startInformers(),
  ]);

  let reconciling = false;
  let shuttingDown = false;
  const startReconciling = async (): Promise<void> => {
    await synced;
    workloads.start();
    await runnerController.start();
    reconciling = true;
  };
  const stopReconciling = async (): Promise<void> => {
    reconciling = false;
    await Promise.all([workloads.stop(), runnerController.stop()]);
    lifecycle.endAll('reconciling stopped');
  };

  const elector = config.LEADER_ELECTION
    ? new LeaderElector({
        client,
        namespace: operatorNs,
        name: config.LEADER_ELECTION_ID,
        identity,
        logger,
        leaseDurationMs: config.LEADER_ELECTION_LEASE_DURATION_SECONDS * 1000,
        renewDeadlineMs: config.LEADER_ELECTION_RENEW_DEADLINE_SECONDS * 1000,
        retryPeriodMs: config.LEADER_ELECTION_RETRY_PERIOD_SECONDS * 1000,
        onStartedLeading: startReconciling,
        // Lost (not given up on shutdown): stop all work and exit non-zero, as controller-runtime does.
        onStoppedLeading: () =>
          shuttingDown
            ? stopReconciling()
            : exitOnLostLease({ fence: client.fence, stopWork: stopReconciling, logger }),
        fence: client.fence,
      })
    : undefined;

  const http = await startHttpServer({
    host: config.HTTP_HOST,
    port: config.HTTP_PORT,
    logger,
    ready: () => {
      const cachesSynced =
        runnerInformer.hasSynced() && operatorSecrets.hasSynced() && workloads.hasSynced();
      if (!cachesSynced) return { ok: false, reason: 'caches not synced' };
      const leading = elector ? elector.isLeader : true;
      if (leading && !reconciling) return { ok: false, reason: 'controllers not running' };
      return { ok: true, reason: 'ok' };
    },
  });

  if (config.GRPC_AUTH_MODE === 'token' && config.GRPC_TOKEN_SECRET_CREATE) {
    await ensureGrpcTokenSecret(
      client.resource<Secret>(SECRETS),
      operatorNs,
      config.GRPC_TOKEN_SECRET,
      logger,
    );
  }
  const grpc = await startRunnerGrpcServer({
    host: config.GRPC_HOST,
    port: config.GRPC_PORT,
    kube: client,
    caches,
    workloadNamespace: workloadNs,
    auth: grpcAuth(config, operatorSecrets),
    ready: () => caches.hasSynced() && operatorSecrets.hasSynced(),
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
    await Promise.all([
      runnerInformer.stop(),
      operatorSecrets.stop(),
      caches.stop(),
      workloads.stopInformers(),
    ]);
    client.close();
    await tracing.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('unhandledRejection', (reason) => {
    logger.error(
      { err: reason instanceof Error ? reason.message : String(reason) },
      'unhandled rejection',
    );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `k8s-runner failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
