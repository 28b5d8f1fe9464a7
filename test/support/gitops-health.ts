/**
 * Health as GitOps tools compute it, from the real implementations: kstatus
 * (sigs.k8s.io/cli-utils, the library Flux uses; built by scripts/build-test-tools.sh) and
 * the Argo CD health scripts under Debian's Lua 5.1 interpreter (Argo CD runs gopher-lua,
 * a Lua 5.1 implementation).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export interface KstatusResult {
  name: string;
  status: string;
  message: string;
}

function testToolsDir(): string {
  const dir = process.env.K8S_RUNNER_TEST_TOOLS_DIR;
  if (!dir) throw new Error('K8S_RUNNER_TEST_TOOLS_DIR is not set (test/support/global-setup.ts)');
  return dir;
}

/** kstatus of every item of a List as `kubectl get -o json` prints it, by name. */
export function kstatus(listJson: string): Record<string, KstatusResult> {
  const out = execFileSync(path.join(testToolsDir(), 'kstatus'), { input: listJson });
  const results = JSON.parse(out.toString('utf8')) as KstatusResult[];
  return Object.fromEntries(results.map((r) => [r.name, r]));
}

function luaString(s: string): string {
  let out = '"';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += byte >= 0x20 && byte < 0x7f && c !== '"' && c !== '\\' ? c : `\\${byte}`;
  }
  return `${out}"`;
}

/** A JSON value as a Lua table constructor (null becomes nil, arrays are 1-based). */
export function luaLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'string') return luaString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `{${value.map(luaLiteral).join(', ')}}`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `[${luaString(k)}] = ${luaLiteral(v)}`);
  return `{${entries.join(', ')}}`;
}

export interface ArgoHealth {
  status: string;
  message: string;
}

/** Runs an Argo CD health script (which reads the global `obj`) on `obj` under lua5.1. */
export function argoHealth(script: string, obj: unknown): ArgoHealth {
  const program = [
    `obj = ${luaLiteral(obj)}`,
    'local function health()',
    script,
    'end',
    'local hs = health()',
    'io.write(hs.status, "\\t", hs.message or "")',
  ].join('\n');
  const out = execFileSync('lua5.1', ['-'], { input: program }).toString('utf8');
  const [status = '', message = ''] = out.split('\t');
  return { status, message };
}
