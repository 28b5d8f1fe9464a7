/**
 * Child of bench/module-memory.ts, run compiled with the image's environment and --expose-gc.
 * MODULES (a JSON list of specifiers) are imported in order, then ENTRY's own imports when set;
 * prints one JSON line: the memory after full GCs, or (TRACE=1) every module URL resolved.
 * WARM=1 first makes V8 optimize a function, so the optimizing compiler's pages (~5 MiB of the
 * node binary, paged in by the first optimization of any busy process) are in every step.
 */
import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import v8 from 'node:v8';
import { importEntryModules } from './operator-modules.ts';

export interface ModuleMemory {
  rss: number;
  /** RSS less the young generation's pages (how far it grew depends on what ran before). */
  rssOld: number;
  heapUsed: number;
  /** RSS mapped from files (the node binary's code and data). */
  fileRss: number;
}

function warmOptimizer(): number {
  const step = (x: number): number => (x * 2 + 1) % 1000;
  let a = 0;
  for (let i = 0; i < 2e6; i++) a = step(a);
  return a;
}

async function collect(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) gc();
  await new Promise((r) => setTimeout(r, 200));
  for (let i = 0; i < 3; i++) gc();
}

function measure(): ModuleMemory {
  const m = process.memoryUsage();
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? 0);
  return {
    rss: m.rss,
    rssOld: m.rss - (young?.physical_space_size ?? 0),
    heapUsed: m.heapUsed,
    fileRss: (kib('Rss') - kib('Anonymous')) * 1024,
  };
}

async function main(): Promise<void> {
  const urls: string[] = [];
  if (process.env.TRACE) {
    registerHooks({
      resolve(spec, context, next) {
        const r = next(spec, context);
        urls.push(JSON.stringify([spec, context.parentURL ?? '', r.url]));
        return r;
      },
    });
  }
  if (process.env.WARM && warmOptimizer() < 0) throw new Error('unreachable');
  for (const spec of JSON.parse(process.env.MODULES ?? '[]') as string[]) await import(spec);
  if (process.env.ENTRY) await importEntryModules(process.env.ENTRY);
  if (process.env.TRACE) {
    process.stdout.write(`[${urls.join(',')}]\n`);
    return;
  }
  await collect();
  process.stdout.write(`${JSON.stringify(measure())}\n`);
}

await main();
