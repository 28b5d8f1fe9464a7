/**
 * bench:grpc's floor servers (bench/lib/server-process.ts), each a bare grpc-js server in a
 * process of its own holding the last N's AgentWorkloads and Pods as plain objects: `bare`
 * loads nothing but grpc-js and the generated service; `bare-modules` first loads what the
 * empty operator process loads. Their memory is sampled as the operator's is.
 */
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { PODS } from '../../src/kube/resources.ts';
import { BenchChild } from './bench-child.ts';
import type { ChildMemory } from './child-ipc.ts';
import type { FloorMemory } from './grpc-options.ts';
import { MemoryPoller } from './memory-poller.ts';
import type { ServerProcessConfig } from './server-process.ts';

/**
 * The namespace's AgentWorkloads and Pods as the operator caches them (managedFields
 * dropped), in a JSON file for the floor servers to hold; removed when this process exits.
 */
export async function writeObjects(kube: KubeClient, namespace: string): Promise<string> {
  const lists = await Promise.all(
    [AGENT_WORKLOADS, PODS].map((type) => kube.resource(type).list(namespace)),
  );
  const objects = lists.flatMap((l) =>
    l.items.map((o) => {
      delete o.metadata?.managedFields;
      return o;
    }),
  );
  const file = path.join(os.tmpdir(), `k8s-runner-bench-objects-${process.pid}.json`);
  writeFileSync(file, JSON.stringify(objects));
  process.once('exit', () => rmSync(file, { force: true }));
  return file;
}

/** One floor server process: started, then sampled over the unary load. */
export class BareFloor {
  private before?: ChildMemory;
  private poller?: MemoryPoller;

  private constructor(readonly child: BenchChild) {}

  static async start(kind: 'bare' | 'bare-modules', objectsFile: string): Promise<BareFloor> {
    const config: ServerProcessConfig = { kind, objectsFile };
    return new BareFloor(
      await BenchChild.start({
        entry: 'server-process',
        env: { BENCH_SERVER: JSON.stringify(config) },
      }),
    );
  }

  get address(): string {
    return String(this.child.info.address);
  }

  /** Its RSS after GC, then samples every 250 ms and a new VmHWM window until `result`. */
  async sample(): Promise<void> {
    this.before = await this.child.memory({ gc: true, resetPeak: true });
    this.poller = new MemoryPoller(this.child).start();
  }

  async result(): Promise<FloorMemory> {
    const loadMax = this.poller?.stop();
    const after = await this.child.memory();
    if (!this.before || !loadMax) throw new Error('BareFloor.result before sample');
    const modulesRss = this.child.info.modulesRss;
    return {
      cached: Number(this.child.info.cached ?? 0),
      ...(typeof modulesRss === 'number' ? { modulesRss } : {}),
      before: this.before,
      loadPeak: after.peakRss,
      loadMax,
    };
  }

  stop(): Promise<void> {
    return this.child.stop();
  }
}

export interface BareFloors {
  bare: BareFloor;
  bareModules: BareFloor;
}

/**
 * Both floors holding `objectsFile`, started one after the other (so that neither starts
 * while the other parses the objects), then sampled; each goes into `running` as soon as it
 * runs, for the caller to stop.
 */
export async function startBareFloors(
  objectsFile: string,
  running: BareFloor[],
): Promise<BareFloors> {
  const start = async (kind: 'bare' | 'bare-modules'): Promise<BareFloor> => {
    const floor = await BareFloor.start(kind, objectsFile);
    running.push(floor);
    return floor;
  };
  const floors = { bare: await start('bare'), bareModules: await start('bare-modules') };
  for (const floor of running) await floor.sample();
  return floors;
}
