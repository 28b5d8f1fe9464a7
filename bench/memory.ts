/**
 * npm run bench -- --only memory [--memory-n 5000]   (or: node --expose-gc --import tsx bench/memory.ts --n 5000)
 *
 * Informer cache memory per object. Populates N agents through the operator (StartWorkload
 * over gRPC → Secret + AgentWorkload, the controller → PVC + Pod, kwok → Running), then
 * starts a fresh process on the compiled operator code (no TypeScript loader) that loads
 * the operator's modules, measures its heap and RSS empty (the baseline), and syncs the
 * operator's caches one kind at a time, measuring after each (after full GCs).
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from './lib/args.ts';
import {
  acquireCluster,
  createNamespace,
  deleteNamespace,
  stopOnSignals,
  unlimitedClient,
} from './lib/cluster.ts';
import { compiledOperator, runMemoryProbe, type ProbeStep } from './lib/compiled.ts';
import type { StartResult } from './lib/grpc-load.ts';
import { LoadGenerator } from './lib/load-client.ts';
import { startOperator } from './lib/operator.ts';
import { benchRunner } from './lib/shapes.ts';
import { MiB, fixed, mib, nowMs, seconds, sleep } from './lib/stats.ts';
import { verdict } from './lib/verdict.ts';

export interface MemoryBenchOptions {
  n: number;
  concurrency: number;
  /**
   * Starts per second while populating. The simulated volume provisioner (kwok) binds ~10
   * PVCs/s when the API server has room and falls to ~1/s when it is saturated, so an
   * unpaced burst of 5,000 takes far longer than a paced one.
   */
  ratePerSec: number;
}

export interface MemoryBenchResult {
  options: MemoryBenchOptions;
  populateMs: number;
  populated: number;
  startErrors: number;
  empty: ProbeStep;
  steps: ProbeStep[];
}

function log(message: string): void {
  process.stderr.write(`[bench:memory] ${message}\n`);
}

export async function runMemoryBench(
  opts: MemoryBenchOptions,
  kubeconfig?: string,
): Promise<MemoryBenchResult> {
  const cluster = acquireCluster(kubeconfig);
  stopOnSignals(cluster);
  const kube = unlimitedClient(cluster.kubeconfig);
  const loadgen = new LoadGenerator();
  try {
    log('compiling the operator to JavaScript for the probe process');
    compiledOperator();
    const ns = await createNamespace(kube, 'bench-mem');
    // Populating is setup, not the measurement: a generous client, more workers, and an hour
    // of start grace (5,000 volumes take minutes to bind in the simulated provisioner).
    const op = await startOperator(cluster.kubeconfig, ns, {
      workers: 16,
      qps: 100_000,
      burst: 100_000,
      runner: benchRunner(3_600),
    });
    log(
      `populating ${opts.n} agents through StartWorkload at ${opts.ratePerSec}/s, concurrency ${opts.concurrency}`,
    );
    const t0 = nowMs();
    const progress = setInterval(
      () => log(`  ${op.running.size}/${opts.n} Running after ${seconds(nowMs() - t0, 0)} s`),
      15_000,
    );
    const started = await loadgen.run<StartResult>({
      type: 'start',
      address: op.address,
      count: opts.n,
      concurrency: opts.concurrency,
      ratePerSec: opts.ratePerSec,
    });
    const deadline = nowMs() + Math.max(300_000, (opts.n / opts.ratePerSec) * 1500 + 120_000);
    while (op.running.size < opts.n - started.errors && nowMs() < deadline) await sleep(200);
    clearInterval(progress);
    const populateMs = nowMs() - t0;
    const populated = op.running.size;
    log(
      `populated: ${populated} Running after ${seconds(populateMs)} s; letting the cluster settle`,
    );
    await op.stop();
    await sleep(5_000);

    log('probe: fresh operator process, syncing its caches');
    const steps = runMemoryProbe(cluster.kubeconfig, ns);
    if (!cluster.dedicated) await deleteNamespace(kube, ns);
    const empty = steps[0];
    if (!empty) throw new Error('the memory probe reported nothing');
    return { options: opts, populateMs, populated, startErrors: started.errors, empty, steps };
  } finally {
    loadgen.close();
    kube.close();
    cluster.stop();
  }
}

export function renderMemoryReport(r: MemoryBenchResult): string {
  const lines: string[] = [];
  const last = r.steps.at(-1) ?? r.empty;
  const objects = last.objects;
  const heapDelta = last.heapUsed - r.empty.heapUsed;
  const rssDelta = last.rss - r.empty.rss;
  lines.push(`## Memory: informer caches with ${r.options.n} agents (${r.populated} Running)`);
  lines.push('');
  lines.push(
    `${r.options.n} agents started through StartWorkload (${r.options.ratePerSec}/s; ${r.populated} Running after ${seconds(r.populateMs, 0)} s; ${r.startErrors} errors), ` +
      `each a Secret, an AgentWorkload (with its status), a PVC and a Running Pod. Then a fresh process on the compiled ` +
      `operator code (plain node, no TypeScript loader) loads the operator's modules — the **baseline: the empty ` +
      `operator process** — and syncs the operator's caches (the shim's AgentWorkload, Pod and PVC informers with their ` +
      `indexes, the controller's Secret informer) one kind at a time; figures after full GCs. managedFields are stripped ` +
      `before caching, as the informer does.`,
  );
  lines.push('');
  lines.push(
    '| Step | Objects cached | Heap used | Δ heap | Heap bytes / object (this kind) | JSON bytes / object | RSS | Sync time |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  let prev = r.empty;
  for (const s of r.steps) {
    const added = s.objects - prev.objects;
    const dHeap = s.heapUsed - prev.heapUsed;
    lines.push(
      `| ${s.step} | ${s.objects} | ${mib(s.heapUsed)} MiB | ${s === r.empty ? '' : `${dHeap >= 0 ? '+' : ''}${mib(dHeap, 2)} MiB`} | ` +
        `${added > 0 ? fixed(dHeap / added, 0) : ''} | ${s.jsonBytesPerObject ? fixed(s.jsonBytesPerObject, 0) : ''} | ` +
        `${mib(s.rss)} MiB | ${s.syncMs !== undefined ? `${fixed(s.syncMs, 0)} ms` : ''} |`,
    );
    prev = s;
  }
  lines.push('');
  const perObject = objects > 0 ? heapDelta / objects : Number.NaN;
  const agents = r.steps.find((st) => st.step.includes('agentworkloads'))?.objects ?? r.populated;
  const perWorkload = agents > 0 ? heapDelta / agents : Number.NaN;
  const rssPerWorkload = agents > 0 ? rssDelta / agents : Number.NaN;
  const at1000 = r.empty.rss + rssPerWorkload * 1000;
  lines.push('| Figure | Measured | Baseline (empty operator process) | Target / reference |');
  lines.push('|---|---:|---:|---|');
  lines.push(
    `| Heap of all caches | ${mib(heapDelta)} MiB over ${objects} objects | ${mib(r.empty.heapUsed)} MiB heap | |`,
  );
  lines.push(
    `| Heap per cached object (all kinds) | ${fixed(perObject, 0)} B | | design note: Pod ~5 KB, small CR ~2 KB |`,
  );
  lines.push(
    `| Heap per agent (${agents} cached; its AgentWorkload, Pod, PVC, Secret) | ${fixed(perWorkload / 1024, 1)} KiB | | |`,
  );
  lines.push(
    `| Process RSS with the caches synced | ${mib(last.rss)} MiB (+${mib(rssDelta)} MiB) | ${mib(r.empty.rss)} MiB RSS | |`,
  );
  lines.push(
    `| Projected RSS at 1,000 agents (empty + 1,000 × RSS per agent) | ${mib(at1000)} MiB | | ≤ 150 MiB — ${verdict(at1000 <= 150 * MiB)} (caches only; reconcile working set comes on top, see the workloads run) |`,
  );
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = parseArgs();
  runMemoryBench({
    n: args.int('n', 5000),
    concurrency: args.int('c', 32),
    ratePerSec: args.number('rate', 8),
  })
    .then((result) => {
      console.log(renderMemoryReport(result));
      process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
