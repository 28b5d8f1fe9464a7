/**
 * Loads what the operator's entry point (src/main.ts, or its compiled main.js) imports
 * without running it: its import declarations, read from the file and imported in order.
 * The memory probe measures the empty operator process this way, bench:grpc's second floor
 * (bench/lib/server-process.ts, `bare-modules`) carries the same load, and a unit test checks
 * which packages that process loads; none keeps a list of its own.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const IMPORT = /^import\s+(?:[^;]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;

/** The specifiers of `entry`'s import declarations (not `import type`), in order. */
export function entryImports(source: string): string[] {
  return [...source.matchAll(IMPORT)]
    .filter((m) => !/^import\s+type\s/.test(m[0]))
    .map((m) => m[1]!);
}

/** Imports every module `entryFile` imports, resolved as the entry resolves them. */
export async function importEntryModules(entryFile: string): Promise<void> {
  const base = pathToFileURL(entryFile);
  for (const spec of entryImports(readFileSync(entryFile, 'utf8'))) {
    await import(spec.startsWith('.') ? new URL(spec, base).href : spec);
  }
}

/** src/main.js beside this file's compiled tree, or src/main.ts when this file runs as TypeScript. */
export function operatorEntryFile(): string {
  const ext = import.meta.url.endsWith('.js') ? 'js' : 'ts';
  return fileURLToPath(new URL(`../../src/main.${ext}`, import.meta.url));
}
