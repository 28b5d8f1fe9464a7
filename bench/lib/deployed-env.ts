/**
 * The environment the operator image runs with (the Dockerfile's ENV lines: NODE_OPTIONS,
 * allocator settings), so that every benchmark process running operator code is measured
 * as deployed. The Dockerfile is the one home of these settings.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './cluster.ts';

/** Variables of the runtime stage that change how Node runs the operator. */
const RUNTIME_VARIABLES = /^(NODE_ENV|NODE_OPTIONS|MALLOC_[A-Z_]+|UV_[A-Z_]+)$/;

/**
 * The ENV variables of a Dockerfile's last stage (`ENV K=V [K2=V2 ...]`, `ENV K V`;
 * double- or single-quoted values; backslash line continuations), later lines winning.
 */
export function dockerfileEnv(text: string): Record<string, string> {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  let env: Record<string, string> = {};
  for (const raw of lines) {
    const line = raw.trim();
    if (/^FROM\s/i.test(line)) env = {};
    const m = /^ENV\s+(.*)$/i.exec(line);
    if (!m?.[1]) continue;
    const body = m[1].trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(body)) {
      const [key, ...rest] = body.split(/\s+/);
      if (key) env[key] = unquote(rest.join(' '));
      continue;
    }
    for (const pair of body.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) {
      env[pair[1] ?? ''] = unquote(pair[2] ?? '');
    }
  }
  return env;
}

function unquote(value: string): string {
  if (value.startsWith('"') && value.endsWith('"') && value.length >= 2)
    return value.slice(1, -1).replace(/\\(.)/g, '$1');
  if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) return value.slice(1, -1);
  return value;
}

/** The Dockerfile's runtime variables (NODE_ENV, NODE_OPTIONS, MALLOC_*, UV_*), for a child's env. */
export function deployedNodeEnv(
  dockerfile = path.join(ROOT, 'Dockerfile'),
): Record<string, string> {
  const env = dockerfileEnv(readFileSync(dockerfile, 'utf8'));
  return Object.fromEntries(Object.entries(env).filter(([k]) => RUNTIME_VARIABLES.test(k)));
}
