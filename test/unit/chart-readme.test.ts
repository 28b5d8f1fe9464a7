/**
 * The chart README's values table names every value of values.yaml (and the required ones
 * that have no default), so a new value cannot ship undocumented.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const chart = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../charts/k8s-runner');
/** Values that are Kubernetes objects passed through as a whole: one row each. */
const WHOLE = new Set([
  'operator.resources',
  'operator.podSecurityContext',
  'operator.securityContext',
  'operator.livenessProbe',
  'operator.readinessProbe',
]);
const REQUIRED = ['gateway', 'serviceToken.existingSecret', 'resources.workloadNamespace'];

function valuePaths(value: unknown, prefix: string): string[] {
  const isMap = typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!isMap || Object.keys(value).length === 0 || WHOLE.has(prefix)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => valuePaths(v, prefix ? `${prefix}.${k}` : k));
}

describe('charts/k8s-runner/README.md', () => {
  const readme = readFileSync(path.join(chart, 'README.md'), 'utf8');
  const rows = new Set([...readme.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]));

  it('has a values table row for every value', () => {
    const values = parse(readFileSync(path.join(chart, 'values.yaml'), 'utf8')) as unknown;
    const missing = [...valuePaths(values, ''), ...REQUIRED].filter((p) => !rows.has(p));
    expect(missing).toEqual([]);
  });
});
