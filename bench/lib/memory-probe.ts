/**
 * Run compiled by compiled.ts, never through tsx: a fresh process that loads what the
 * operator loads (every module src/main.ts imports, without running it), reports its memory
 * empty, then syncs the operator's informer caches for BENCH_NAMESPACE one kind at a time and
 * reports the memory after each. Prints one JSON line (ProbeStep[]).
 */
import { pino } from 'pino';
import { InformerCache } from '../../src/kube/cache.ts';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import type { Informer } from '../../src/kube/informer.ts';
import { WorkloadCaches } from '../../src/workload/caches.ts';
import { importEntryModules, operatorEntryFile } from './operator-modules.ts';

interface Step {
  step: string;
  objects: number;
  rss: number;
  heapUsed: number;
  external: number;
  jsonBytesPerObject?: number;
  syncMs?: number;
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) gc();
}

async function settle(): Promise<NodeJS.MemoryUsage> {
  collect();
  await new Promise((r) => setTimeout(r, 300));
  collect();
  return process.memoryUsage();
}

async function main(): Promise<void> {
  const steps: Step[] = [];
  const record = async (
    step: string,
    objects: number,
    extra: Partial<Step> = {},
  ): Promise<void> => {
    const m = await settle();
    steps.push({ step, objects, rss: m.rss, heapUsed: m.heapUsed, external: m.external, ...extra });
  };
  await importEntryModules(operatorEntryFile());
  await record('empty operator process (modules loaded)', 0);
  const namespace = process.env.BENCH_NAMESPACE;
  if (namespace) {
    const logger = pino({ level: 'silent' });
    const kube = KubeClient.fromEnvironment(process.env.KUBECONFIG);
    // The workload namespace's caches as src/caches.ts declares them (shared by the shim
    // and the workload controller, with their indexes).
    const caches = new WorkloadCaches(new InformerCache(kube, logger), namespace);
    await record('client and informers created', 0);
    let total = 0;
    const kinds: Array<[string, Informer<KubeObject>]> = [
      ['agentworkloads', caches.workloads as unknown as Informer<KubeObject>],
      ['pods', caches.pods as unknown as Informer<KubeObject>],
      ['persistentvolumeclaims', caches.pvcs as unknown as Informer<KubeObject>],
      ['secrets', caches.secrets as unknown as Informer<KubeObject>],
    ];
    for (const [name, informer] of kinds) {
      const t0 = performance.now();
      informer.start();
      await informer.waitForSync();
      const syncMs = performance.now() - t0;
      const items = informer.list();
      const json = items.reduce((n, o) => n + JSON.stringify(o).length, 0);
      total += items.length;
      await record(`+ ${name} synced`, total, {
        syncMs,
        jsonBytesPerObject: items.length ? json / items.length : 0,
      });
    }
    await Promise.all(kinds.map(([, i]) => i.stop()));
    kube.close();
  }
  process.stdout.write(`${JSON.stringify(steps)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `memory probe failed: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  },
);
