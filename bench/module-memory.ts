/**
 * tsc -p tsconfig.bench.json && node .bench-build/bench/module-memory.js [--runs 5] [--cold]
 *   (or: node --import tsx bench/module-memory.ts)
 *
 * Where the empty operator process's RSS goes, package by package: fresh processes on the
 * compiled code with the image's environment (bench/lib/deployed-env.ts), each importing one
 * more group than the last — Node's built-in modules the operator's graph uses, then each
 * package src/ imports directly (with what it pulls in), in the order the operator loads them,
 * then the operator's own modules (everything src/main.ts imports) — and measuring after full
 * GCs; medians of --runs processes per step. Each step's Δ is what that group adds on top of
 * the groups before it. Without --cold every step first makes V8 optimize a function (see
 * bench/lib/module-memory-child.ts), so the optimizing compiler's pages are not billed to
 * whichever package happens to trigger the first optimization.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from './lib/args.ts';
import { compiledOperator } from './lib/compiled.ts';
import { deployedNodeEnv } from './lib/deployed-env.ts';
import type { ModuleMemory } from './lib/module-memory-child.ts';
import { MiB, percentile } from './lib/stats.ts';

function child(dir: string, env: Record<string, string>): string {
  return execFileSync(
    process.execPath,
    ['--expose-gc', path.join(dir, 'bench/lib/module-memory-child.js')],
    {
      env: { ...process.env, ...deployedNodeEnv(), ...env },
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
}

/** Groups in load order: built-ins, then each package src/ imports (by the specifier used). */
function groupsOf(dir: string, entry: string): Array<{ name: string; modules: string[] }> {
  const trace = JSON.parse(child(dir, { ENTRY: entry, TRACE: '1' })) as string[][];
  const src = pathToFileURL(path.join(dir, 'src')).href;
  const builtins = [
    ...new Set(trace.map(([, , url]) => url!).filter((u) => u.startsWith('node:'))),
  ];
  const direct = [
    ...new Set(
      trace
        .filter(([spec, parent]) => !/^[./]|^node:|^file:/.test(spec!) && parent!.startsWith(src))
        .map(([spec]) => spec!),
    ),
  ];
  return [
    { name: 'bare node', modules: [] },
    { name: 'node built-ins', modules: builtins },
    ...direct.map((spec) => ({ name: spec, modules: [spec] })),
  ];
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const runs = args.int('runs', 5);
  const cold = args.has('cold');
  const dir = compiledOperator();
  const entry = path.join(dir, 'src/main.js');
  const warm: Record<string, string> = cold ? {} : { WARM: '1' };
  const groups = [...groupsOf(dir, entry), { name: "the operator's modules", modules: [] }];
  const mib = (n: number): string => (n / MiB).toFixed(1);
  console.log(
    `${runs} processes per step, medians; ${cold ? 'cold' : 'optimizer warmed'}; env ${JSON.stringify(deployedNodeEnv())}`,
  );
  console.log('| step | RSS | Δ RSS | RSS less young gen | Δ | heap used | Δ | file-backed RSS |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  const loaded: string[] = [];
  let prev: ModuleMemory | undefined;
  groups.forEach((g, i) => {
    loaded.push(...g.modules);
    const env: Record<string, string> = {
      ...warm,
      MODULES: JSON.stringify(loaded),
      ...(i === groups.length - 1 ? { ENTRY: entry } : {}),
    };
    const samples = Array.from({ length: runs }, () => JSON.parse(child(dir, env)) as ModuleMemory);
    const med = (k: keyof ModuleMemory): number =>
      percentile(
        samples.map((s) => s[k]),
        50,
      );
    const m: ModuleMemory = {
      rss: med('rss'),
      rssOld: med('rssOld'),
      heapUsed: med('heapUsed'),
      fileRss: med('fileRss'),
    };
    const d = (k: keyof ModuleMemory): string =>
      prev ? `${m[k] >= prev[k] ? '+' : ''}${mib(m[k] - prev[k])}` : '';
    console.log(
      `| ${g.name} | ${mib(m.rss)} | ${d('rss')} | ${mib(m.rssOld)} | ${d('rssOld')} | ${mib(m.heapUsed)} | ${d('heapUsed')} | ${mib(m.fileRss)} |`,
    );
    prev = m;
  });
}

main();
