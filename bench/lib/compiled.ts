import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPILED, ROOT } from './cluster.ts';
import { deployedNodeEnv } from './deployed-env.ts';

let built: string | undefined;

/**
 * Compiles src/ and the memory probe to plain JavaScript in a temp dir (as `npm run build`
 * does for production), so memory can be measured in a process without the TypeScript
 * loader: tsx's loader thread and transform caches add ~100 MiB of RSS that the deployed
 * operator does not have. Returns the directory; it is removed when this process exits.
 */
export function compiledOperator(): string {
  if (built) return built;
  if (COMPILED) {
    // npm run bench already runs the tsc output: the tree this file is part of.
    built = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    return built;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-runner-bench-js-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const tsconfig = path.join(dir, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(ROOT, 'tsconfig.build.json'),
      compilerOptions: {
        rootDir: ROOT,
        outDir: dir,
        sourceMap: false,
        declaration: false,
        typeRoots: [path.join(ROOT, 'node_modules/@types')],
      },
      include: [
        path.join(ROOT, 'src'),
        path.join(ROOT, 'bench/lib/memory-probe.ts'),
        path.join(ROOT, 'bench/lib/module-memory-child.ts'),
      ],
    }),
  );
  execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', tsconfig], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  built = dir;
  return dir;
}

export interface ProbeStep {
  step: string;
  objects: number;
  rss: number;
  heapUsed: number;
  external: number;
  /** Mean JSON size of the cached objects of this step's kind. */
  jsonBytesPerObject?: number;
  syncMs?: number;
}

/**
 * Runs the memory probe (compiled, plain node, --expose-gc, the image's environment) and
 * returns its steps: the empty operator process, then each informer cache synced in
 * `namespace` (when given).
 */
export function runMemoryProbe(kubeconfig: string, namespace?: string): ProbeStep[] {
  const dir = compiledOperator();
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', path.join(dir, 'bench/lib/memory-probe.js')],
    {
      env: {
        ...process.env,
        ...deployedNodeEnv(),
        KUBECONFIG: kubeconfig,
        BENCH_NAMESPACE: namespace ?? '',
      },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  const line = out.trim().split('\n').at(-1) ?? '[]';
  return JSON.parse(line) as ProbeStep[];
}
