/**
 * The WorkloadController alone in a process of its own (compiled, plain node), so that the
 * workload benchmark measures the operator's RSS itself, peak included (VmHWM), instead of
 * estimating it from a process that also holds the load generator and the observers.
 * Configured by BENCH_CONTROLLER (JSON); answers the parent over IPC.
 */
import { readFileSync } from 'node:fs';
import { WorkloadController } from '../../src/workload/controller.ts';
import { StaticRunnerDirectory } from '../../src/workload/seams.ts';
import { operatorClient, operatorLogger } from './operator.ts';
import { benchRunner } from './shapes.ts';

export interface ControllerProcessConfig {
  kubeconfig: string;
  namespace: string;
  workers: number;
  qps: number;
  burst: number;
}

export type ControllerRequest =
  { type: 'counts' } | { type: 'memory'; gc: boolean } | { type: 'stop' };

export interface ControllerCounts {
  type: 'counts';
  requestCounts: Array<[string, number]>;
  byResource: Array<[string, number]>;
}

export interface ControllerMemory {
  type: 'memory';
  rss: number;
  /** The process's peak RSS since it started (VmHWM). */
  peakRss: number;
  heapUsed: number;
  /** CPU time this process has used since it started (user + system). */
  cpuMs: number;
}

function peakRss(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  const kib = Number(line?.replace(/[^0-9]/g, ''));
  return Number.isFinite(kib) && kib > 0 ? kib * 1024 : process.memoryUsage().rss;
}

function memory(): ControllerMemory {
  const usage = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    type: 'memory',
    rss: usage.rss,
    peakRss: peakRss(),
    heapUsed: usage.heapUsed,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
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
});
await controller.startInformers();
controller.start();

process.on('disconnect', () => process.exit(0));
// An orderly exit, so that --cpu-prof (BENCH_CONTROLLER_CPU_PROF) writes its profile.
process.on('SIGTERM', () => process.exit(0));
process.on('message', (raw) => {
  const request = raw as ControllerRequest;
  const answer = async (): Promise<unknown> => {
    switch (request.type) {
      case 'counts':
        return {
          type: 'counts',
          requestCounts: [...client.requestCounts],
          byResource: [...byResource],
        } satisfies ControllerCounts;
      case 'memory':
        if (request.gc) globalThis.gc?.();
        return memory();
      case 'stop':
        await controller.stop();
        await controller.stopInformers();
        client.close();
        return { type: 'stopped' };
    }
  };
  answer().then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ type: 'error', message: String(err) }),
  );
});
process.send?.({ type: 'ready' });
