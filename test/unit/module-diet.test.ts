/**
 * What the empty operator process loads (src/main.ts's modules, not run): packages needed only
 * for some kubeconfigs are loaded when such a kubeconfig is read, and the WebSocket client with
 * the first exec, not with the operator (README "Memory"): ~3 MiB of the empty process's RSS.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { entryImports } from '../../bench/lib/operator-modules.ts';

const root = path.resolve(import.meta.dirname, '../..');

/** The module URLs a fresh process resolves while it imports every module main.ts imports. */
function loadedByOperatorModules(): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const urls = [];
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); urls.push(r.url); return r; } });
    const { importEntryModules } = await import('./bench/lib/operator-modules.ts');
    await importEntryModules('src/main.ts');
    process.stdout.write(JSON.stringify(urls));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  if (r.status !== 0) throw new Error(`module probe failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

describe('the empty operator process', () => {
  it("reads the entry point's own imports", () => {
    const source = [
      "import os from 'node:os';",
      "import type { Logger } from 'pino';",
      'import {\n  a,\n  type B,\n} from "./x.ts";',
      "import './side-effect.ts';",
    ].join('\n');
    expect(entryImports(source)).toEqual(['node:os', './x.ts', './side-effect.ts']);
  });

  it('loads neither kubeconfig-only packages (YAML, exec and token-file auth) nor ws (exec)', () => {
    const loaded = loadedByOperatorModules();
    expect(loaded.some((u) => u.endsWith('/src/workload/controller.ts'))).toBe(true);
    const loadedLater = loaded.filter((u) =>
      /\/node_modules\/(yaml|ws)\/|client-node\/dist\/(exec_auth|file_auth)\.js$/.test(u),
    );
    expect(loadedLater).toEqual([]);
  }, 60_000);
});
