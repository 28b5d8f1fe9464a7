/**
 * The WorkloadController alone in a process of its own (bench/lib/bench-child.ts), so that
 * the workload benchmark measures the operator's RSS itself, peak included (VmHWM),
 * instead of estimating it from a process that also holds the load generator and the
 * observers. Configured by BENCH_CONTROLLER (JSON).
 */
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import { serveParent } from './child-ipc.ts';
import { operatorClient, operatorLogger } from './operator.ts';
import { benchRunner } from './shapes.ts';

export interface ControllerProcessConfig {
  kubeconfig: string;
  namespace: string;
  workers: number;
  qps: number;
  burst: number;
  /** WorkloadController's statusCoalesceMs (status-coalescing.ts); its default when absent. */
  statusCoalesceMs?: number;
}

const config = JSON.parse(process.env.BENCH_CONTROLLER ?? '{}') as ControllerProcessConfig;
const { client, byResource } = operatorClient(config.kubeconfig, {
  qps: config.qps,
  burst: config.burst,
});
const controller = new WorkloadController({
  client,
  logger: operatorLogger(),
  runners: new StaticRunnerDirectory(benchRunner()),
  namespace: config.namespace,
  workers: config.workers,
  statusCoalesceMs: config.statusCoalesceMs,
});
await controller.startInformers();
controller.start();

// An orderly exit, so that --cpu-prof (BENCH_CPU_PROF) writes its profile.
process.on('SIGTERM', () => process.exit(0));
serveParent({
  counts: () => ({ requestCounts: [...client.requestCounts], byResource: [...byResource] }),
  stop: async () => {
    await controller.stop();
    await controller.stopInformers();
    client.close();
  },
});
