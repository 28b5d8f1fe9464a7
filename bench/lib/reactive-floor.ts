/**
 * bench:workloads' reactive floor: the status floor's writes, sent the way any watch-based
 * controller must send them: in reaction to each AgentWorkload's watch event, by as many
 * workers as the operator has, with no controller logic in between (no cache of Pods, no
 * decision, no queue beyond a list). The load generator only creates the AgentWorkloads.
 */
import { pino } from 'pino';
import type { AgentWorkload } from '../../src/api/agentworkload.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import type { PhaseTiming, WorkloadBenchOptions } from './workload-options.ts';
import {
  directPhase,
  log,
  statusFloorWrites,
  writeRunning,
  type RawObjects,
  type Workload,
} from './workload-phases.ts';

/** Reacts to each new AgentWorkload of a namespace with `react`, on `workers` workers. */
class WorkloadReactor {
  private readonly informer: Informer<Workload>;
  private readonly queue: Workload[] = [];
  private readonly idle: Array<() => void> = [];
  private stopped = false;
  private workers: Array<Promise<void>> = [];

  constructor(
    kube: KubeClient,
    namespace: string,
    private readonly react: (aw: Workload) => Promise<void>,
  ) {
    this.informer = new Informer<Workload>(kube.resource<Workload>(AGENT_WORKLOADS), {
      namespace,
      logger: pino({ level: 'silent' }),
    });
    this.informer.addHandler({
      onAdd: (aw) => {
        this.queue.push(aw);
        this.idle.shift()?.();
      },
    });
  }

  async start(workers: number): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync();
    this.workers = Array.from({ length: workers }, () => this.work());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of this.idle.splice(0)) wake();
    await Promise.all(this.workers);
    await this.informer.stop();
  }

  private async work(): Promise<void> {
    while (!this.stopped) {
      const aw = this.queue.shift();
      if (!aw) {
        await new Promise<void>((resolve) => this.idle.push(resolve));
        continue;
      }
      await this.react(aw).catch((err: Error) => log(`reactive floor: ${err.message}`));
    }
  }
}

export function reactiveFloorPhase(
  kube: KubeClient,
  opts: WorkloadBenchOptions,
): Promise<{ timing: PhaseTiming; ns: string }> {
  const workloads = kube.resource<Workload>(AGENT_WORKLOADS);
  return directPhase(
    kube,
    opts,
    'reactive-floor',
    `creating ${opts.n} AgentWorkloads; ${opts.workers} workers of this process react to each one's watch event with the status floor's writes (no controller logic)`,
    async (ns, workload) => {
      await workloads.create(ns, workload as Workload);
    },
    {
      onPodRunning: (ns, name) => writeRunning(kube, ns, name, 'reactive floor'),
      setup: async (ns: string, manifests: AgentWorkload[], objects: RawObjects[]) => {
        const byName = new Map(manifests.map((m, i) => [m.metadata.name, objects[i]!]));
        const reactor = new WorkloadReactor(kube, ns, async (aw) => {
          const o = byName.get(aw.metadata.name);
          if (o) await statusFloorWrites(kube, aw, o);
        });
        await reactor.start(opts.workers);
        return () => reactor.stop();
      },
    },
  );
}
