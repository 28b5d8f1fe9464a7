import { pino, type Logger } from 'pino';
import { ShimCaches } from '../../src/grpc/caches.ts';
import { InformerCache } from '../../src/kube/cache.ts';
import { WorkloadCaches } from '../../src/workload/caches.ts';
import { createLogger } from '../../src/observability/logging.ts';
import { startRunnerGrpcServer } from '../../src/grpc/server.ts';
import { KubeClient, type KubeClientOptions } from '../../src/kube/client.ts';
import { WorkloadController } from '../../src/workload/controller.ts';
import type { RunnerSettings } from '../../src/workload/runner-settings.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import { timeHandOff } from './handoff-timing.ts';
import { tallyRequests } from './request-tally.ts';

export { diff, snapshot, sortedEntries, writesIn } from './request-tally.ts';

/** The operator's own logger as in production (JSON at info), written to /dev/null. */
export function operatorLogger(): Logger {
  return createLogger('info', pino.destination({ dest: '/dev/null', sync: false }));
}

/**
 * The operator's API client, configured as src/main.ts does (client defaults unless
 * overridden), and a per-resource request tally on top of its per-verb requestCounts.
 */
export function operatorClient(
  kubeconfig: string,
  options: KubeClientOptions = {},
): {
  client: KubeClient;
  byResource: Map<string, number>;
} {
  const client = KubeClient.fromEnvironment(kubeconfig, options);
  return { client, byResource: tallyRequests(client) };
}

export interface InProcessOperator {
  client: KubeClient;
  byResource: Map<string, number>;
  caches: ShimCaches;
  controller: WorkloadController;
  address: string;
  /** Workload name → when this process first saw its status.phase Running. */
  running: Map<string, number>;
  stop(): Promise<void>;
}

/**
 * The operator as src/main.ts wires it in standalone mode, in this process: its own
 * KubeClient, the shim's caches shared with the WorkloadController, the gRPC listener on a
 * free loopback port (auth mode insecure).
 */
export async function startOperator(
  kubeconfig: string,
  namespace: string,
  options: { workers: number; qps: number; burst: number; runner: RunnerSettings },
): Promise<InProcessOperator> {
  const { client, byResource } = operatorClient(kubeconfig, {
    qps: options.qps,
    burst: options.burst,
  });
  const logger = operatorLogger();
  const workloadCaches = new WorkloadCaches(new InformerCache(client, logger), namespace);
  const caches = new ShimCaches(workloadCaches);
  const controller = new WorkloadController({
    client,
    logger,
    runners: new StaticRunnerDirectory(options.runner),
    namespace,
    workers: options.workers,
    caches: workloadCaches,
  });
  const running = new Map<string, number>();
  const see = (w: { metadata: { name: string }; status?: { phase?: string } }): void => {
    if (w.status?.phase === 'Running' && !running.has(w.metadata.name))
      running.set(w.metadata.name, performance.now());
  };
  caches.workloads.addHandler({
    onAdd: see,
    onUpdate: (_o, w) => see(w),
    onDelete: (w) => running.delete(w.metadata.name),
  });
  const timing = process.env.BENCH_HANDOFF_TIMING === '1' ? timeHandOff(client, caches) : undefined;
  caches.start();
  await controller.startInformers();
  controller.start();
  await caches.waitForSync();
  const server = await startRunnerGrpcServer({
    host: '127.0.0.1',
    port: 0,
    kube: client,
    caches,
    workloadNamespace: namespace,
    runnerName: options.runner.name,
    auth: { mode: 'insecure' },
    // As src/main.ts; BENCH_HANDOFF=0 measures without it (new workloads wait for the watch).
    onWorkloadCreated:
      process.env.BENCH_HANDOFF === '0' ? undefined : (workload) => controller.handOff(workload),
    logger,
  });
  return {
    client,
    byResource,
    caches,
    controller,
    address: `127.0.0.1:${server.port}`,
    running,
    async stop() {
      await server.stop();
      await controller.stop();
      await controller.stopInformers();
      await caches.stop();
      client.close();
      if (timing) process.stderr.write(`[bench:handoff] ${timing.report()}\n`);
      timing?.restore();
    },
  };
}
